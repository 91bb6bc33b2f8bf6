"""Load an export back, with audio readable whether or not torchcodec is installed.

The export stores audio as the Hub's ``Audio`` type (decoding on), which is what Hub users
expect. ``datasets`` 5.x decodes audio only through torchcodec, so on a machine without it,
touching a row raises ImportError. Decoding is a read-time choice in ``datasets``; these helpers
make it: ``decode_audio=None`` decodes only where torchcodec is importable and otherwise returns
``{"bytes": <FLAC>, "path": ...}`` dicts that soundfile reads directly.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from datasets import Audio, Dataset, DatasetDict, load_dataset, load_from_disk

from mmcurate.common.errors import MMCurateError
from mmcurate.store import BalancedDir

DATA_DIR, HF_DIR = BalancedDir.DATA_DIR, BalancedDir.HF_DIR


def torchcodec_available() -> bool:
    """Whether ``datasets`` can decode audio here."""
    return importlib.util.find_spec("torchcodec") is not None


def with_audio_decoding(ds: Dataset | DatasetDict, decode: bool | None = None) -> Dataset | DatasetDict:
    """``ds`` with its ``audio`` column set to decode (torchcodec) or to return FLAC bytes.

    ``decode=None`` picks decoding exactly when torchcodec is available.
    """
    decode = torchcodec_available() if decode is None else decode
    features = next(iter(ds.values())).features if isinstance(ds, DatasetDict) else ds.features
    audio = features.get("audio")
    if not isinstance(audio, Audio) or audio.decode == decode:
        return ds
    return ds.cast_column("audio", Audio(sampling_rate=audio.sampling_rate, decode=decode))


def load_balanced(
    export_dir: Path,
    source: Literal["hf", "parquet"] = "hf",
    decode_audio: bool | None = None,
    cache_dir: Path | None = None,
) -> DatasetDict:
    """The exported DatasetDict, from ``hf/`` (save_to_disk) or from the Hub-layout ``data/`` shards.

    Both give the same splits, features and rows; ``parquet`` is what a Hub user gets (it goes
    through ``load_dataset``, which caches an Arrow copy under ``cache_dir``, default
    ``HF_DATASETS_CACHE``).
    """
    export_dir = Path(export_dir)
    if source == "hf":
        where = export_dir / HF_DIR
        if not (where / "dataset_dict.json").is_file():
            raise MMCurateError(f"{where}: no exported dataset here; run `mmcurate balance` to export")
        dsd = load_from_disk(str(where))
    elif source == "parquet":
        where = export_dir / DATA_DIR
        if not any(where.glob("*.parquet")):
            raise MMCurateError(f"{where}: no Parquet shards here; run `mmcurate balance` to export")
        dsd = load_dataset("parquet", data_dir=str(where), cache_dir=str(cache_dir) if cache_dir else None)
    else:
        raise MMCurateError(f"unknown export source '{source}'; use 'hf' or 'parquet'")
    return with_audio_decoding(dsd, decode_audio)
