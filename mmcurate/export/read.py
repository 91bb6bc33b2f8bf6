"""Load an export back, with audio readable whether or not torchcodec is installed.

The export stores audio as the Hub's ``Audio`` type declared with ``decode=False``: ``datasets``
5.x decodes audio only through torchcodec (not a dependency), and with decoding on, touching a
row raised ImportError on the documented install. So a row's audio is
``{"bytes": <FLAC>, "path": ...}``, which :func:`audio_samples` (soundfile) turns into samples.
Decoding is a read-time choice in ``datasets``; ``load_balanced(decode_audio=True)`` or
:func:`with_audio_decoding` turns it on where torchcodec is installed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile
from datasets import Audio, Dataset, DatasetDict, load_dataset, load_from_disk

from mmcurate.common.errors import MMCurateError
from mmcurate.store import BalancedDir

DATA_DIR, HF_DIR = BalancedDir.DATA_DIR, BalancedDir.HF_DIR


def with_audio_decoding(ds: Dataset | DatasetDict, decode: bool | None = None) -> Dataset | DatasetDict:
    """``ds`` with its ``audio`` column set to decode (torchcodec) or to return FLAC bytes.

    ``decode=None`` keeps what the export declares (no decoding: FLAC bytes).
    """
    if decode is None:
        return ds
    features = next(iter(ds.values())).features if isinstance(ds, DatasetDict) else ds.features
    audio = features.get("audio")
    if not isinstance(audio, Audio) or audio.decode == decode:
        return ds
    return ds.cast_column("audio", Audio(sampling_rate=audio.sampling_rate, decode=decode))


def audio_samples(cell: dict | None) -> tuple[np.ndarray, int] | None:
    """An exported row's ``audio`` cell (``{"bytes": <FLAC>, ...}``) as (float32 samples, sample rate).

    The three lines a user writes (README, the card): ``soundfile.read(io.BytesIO(cell["bytes"]))``.
    ``None`` for a clip without audio.
    """
    if cell is None or cell.get("bytes") is None:
        return None
    samples, rate = soundfile.read(io.BytesIO(cell["bytes"]), dtype="float32")
    return samples, int(rate)


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
