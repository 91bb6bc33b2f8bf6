"""Models shared by the score and reeval stages: ResNet-18 encoders, fusion heads, classifiers.

Everything trains from scratch (no pretrained weights can be downloaded); ``width`` scales the
ResNet-18 layout down to CPU size (64 is the standard network).
"""

from mmcurate.models.av_model import AVClassifier, AVOutput
from mmcurate.models.encoders import AudioEncoder, VisualEncoder
from mmcurate.models.fusion import (
    FUSIONS,
    FUSIONS_WITH_MODALITY_LOGITS,
    ConcatFusion,
    FiLMFusion,
    FusionOutput,
    GatedFusion,
    SumFusion,
    build_fusion,
)
from mmcurate.models.mmtm import MMTM, MMTMClassifier
from mmcurate.models.resnet import BasicBlock, ResNet18
from mmcurate.models.unimodal import MODALITIES, UnimodalClassifier, build_unimodal

__all__ = [
    "AVClassifier",
    "AVOutput",
    "AudioEncoder",
    "BasicBlock",
    "ConcatFusion",
    "FUSIONS",
    "FUSIONS_WITH_MODALITY_LOGITS",
    "FiLMFusion",
    "FusionOutput",
    "GatedFusion",
    "MMTM",
    "MMTMClassifier",
    "MODALITIES",
    "ResNet18",
    "SumFusion",
    "UnimodalClassifier",
    "VisualEncoder",
    "build_fusion",
    "build_unimodal",
]
