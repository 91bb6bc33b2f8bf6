"""From stored media (ingest shards or the exported dataset) to training tensors.

``read_shards`` gives the rows; ``build_av_tensors`` decodes them all into :class:`AVTensors`
(in memory, the CPU default) and :class:`AVDataset` decodes per item (for sets too big for
memory); both give identical tensors for the same rows and :class:`TensorConfig`.
"""

from mmcurate.data.audio import audio_features_from_flac, decode_flac, flac_num_samples
from mmcurate.data.config import TensorConfig
from mmcurate.data.dataset import AVDataset
from mmcurate.data.frames import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    decode_jpeg_frames,
    normalize_frames,
    select_frame_indices,
    standardize_frames,
)
from mmcurate.data.shards import (
    FEATURES_METADATA_KEY,
    cached_features_config,
    ingest_features_config,
    read_class_list,
    read_shards,
)
from mmcurate.data.tensors import AVTensors, build_av_tensors

__all__ = [
    "FEATURES_METADATA_KEY",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AVDataset",
    "AVTensors",
    "TensorConfig",
    "audio_features_from_flac",
    "build_av_tensors",
    "cached_features_config",
    "decode_flac",
    "decode_jpeg_frames",
    "flac_num_samples",
    "ingest_features_config",
    "normalize_frames",
    "standardize_frames",
    "read_class_list",
    "read_shards",
    "select_frame_indices",
]
