"""Real-format inputs for the reeval tests: balanced exports and ingest+score dirs.

Until the balance stage exists, this builds them the way the export is specified
(``mmcurate.store.schemas``): JPEG frames as a list of ``datasets.Image``, FLAC audio as
``datasets.Audio`` built from {bytes, path} structs and cast (no torchcodec), ClassLabel labels,
``data/{split}-00000-of-00001.parquet`` written by ``datasets``. Media come either from real
av_digits clips decoded with PyAV, or from small synthetic pictures and tones.

av_digits has no scores yet, so its discrepancy is faked from the ground-truth ``condition``:
strongly audio-preferred for visual_mismatch / visual_noise, strongly visual-preferred for
audio_noise, mildly audio-preferred for clean clips (on clean clips the audio model is the more
confident one: ~98 % against ~77-90 % accuracy, see the av_digits README).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import soundfile as sf
from PIL import Image

SAMPLE_RATE = 16000
DIGITS = [str(d) for d in range(10)]
#: condition -> range of the faked discrepancy
FAKE_D = {"clean": (0.0, 0.3), "visual_mismatch": (0.6, 1.0), "visual_noise": (0.4, 0.9), "audio_noise": (-1.0, -0.4)}


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def flac_bytes(wave: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1, 1).astype(np.float32), rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_clip(path: Path, image_size: int = 64, max_frames: int = 6) -> tuple[list[bytes], bytes]:
    """A real clip -> evenly chosen JPEG frames and 16 kHz mono FLAC, decoded with PyAV."""
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks = []
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    picks = np.round(np.linspace(0, len(frames) - 1, min(max_frames, len(frames)))).astype(int)
    jpegs = []
    for k in picks:
        img = Image.fromarray(frames[k]).convert("RGB")
        if img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), Image.BILINEAR)
        jpegs.append(jpeg_bytes(np.asarray(img)))
    return jpegs, flac_bytes(np.concatenate(chunks))


def av_digits_rows(root: Path, per_label: dict[str, int | None], seed: int = 0) -> list[dict]:
    """Decode a deterministic subset of av_digits: ``per_label[split]`` clips per digit (None: all).

    test is labels.csv's test split; every 10th train clip of a digit goes to val, the rest to
    train. Within a split and digit, corrupted conditions come first (up to a third of the
    quota), then clean clips, in file order, so small subsets still hold every condition.
    """
    rng = np.random.default_rng(seed)
    with open(root / "labels.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    pools: dict[tuple[str, str], list[dict]] = {}
    for digit in DIGITS:
        train = [r for r in table if r["split"] == "train" and r["label"] == digit]
        pools[("train", digit)] = [r for i, r in enumerate(train) if i % 10 != 9]
        pools[("val", digit)] = [r for i, r in enumerate(train) if i % 10 == 9]
        pools[("test", digit)] = [r for r in table if r["split"] == "test" and r["label"] == digit]
    chosen: list[tuple[str, dict]] = []
    for split, n in per_label.items():
        for digit in DIGITS:
            pool = pools[(split, digit)]
            if n is None:
                chosen += [(split, r) for r in pool]
                continue
            special = [r for r in pool if r["condition"] != "clean"]
            clean = [r for r in pool if r["condition"] == "clean"]
            picked = special[: max(1, n // 3)] + clean
            chosen += [(split, r) for r in picked[:n]]
    rows = []
    for split, r in chosen:
        frames, audio = decode_clip(root / r["path"])
        lo, hi = FAKE_D[r["condition"]]
        rows.append(
            {
                "sample_id": r["path"],
                "label": r["label"],
                "split": split,
                "frames": frames,
                "audio": audio,
                "condition": r["condition"],
                "discrepancy": float(rng.uniform(lo, hi)),
            }
        )
    return rows


def synthetic_rows(n_per_split: dict[str, int], classes: Sequence[str], seed: int = 0, frames: int = 4) -> list[dict]:
    """Tiny learnable-looking rows: class-coloured noisy frames and class-pitched tones."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in n_per_split.items():
        for i in range(n):
            k = i % len(classes)
            imgs = []
            for _ in range(frames):
                base = np.full((24, 24, 3), 30 * k, dtype=np.int32) + rng.integers(0, 40, (24, 24, 3))
                imgs.append(jpeg_bytes(np.clip(base, 0, 255).astype(np.uint8)))
            t = np.arange(int(0.2 * SAMPLE_RATE)) / SAMPLE_RATE
            wave = 0.5 * np.sin(2 * np.pi * 300 * (k + 1) * t) + 0.05 * rng.standard_normal(t.size)
            rows.append(
                {
                    "sample_id": f"{split}/{classes[k]}/{i:03d}",
                    "label": classes[k],
                    "split": split,
                    "frames": imgs,
                    "audio": flac_bytes(wave),
                    "condition": "clean",
                    "discrepancy": float(rng.uniform(-1, 1)),
                }
            )
    return rows


def bin_of(d: float, bins: int) -> int:
    return min(bins - 1, int(np.floor((d + 1) / 2 * bins)))


def write_balanced_export(
    rows: list[dict],
    classes: Sequence[str],
    out_dir: Path,
    bins: int = 10,
    split_names: dict | None = None,
    one_file: bool = False,
) -> Path:
    """``out_dir/data/{split}-00000-of-00001.parquet`` with the export columns, written by ``datasets``.

    ``one_file``: every row in ``train-00000-of-00001.parquet``, the ``split`` column saying where it belongs.
    """
    import datasets

    features = datasets.Features(
        {
            "sample_id": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(classes)),
            "frames": datasets.List(datasets.Image()),
            "audio": datasets.Audio(sampling_rate=SAMPLE_RATE, decode=False),
            "audio_sample_rate": datasets.Value("int32"),
            "p_audio": datasets.Value("float64"),
            "p_visual": datasets.Value("float64"),
            "discrepancy": datasets.Value("float64"),
            "bin": datasets.Value("int32"),
            "split": datasets.Value("string"),
        }
    )
    split_names = split_names or {}
    out_dir = Path(out_dir)
    (out_dir / "data").mkdir(parents=True, exist_ok=True)
    groups = (
        {"train": rows}
        if one_file
        else {sp: [r for r in rows if r["split"] == sp] for sp in sorted({r["split"] for r in rows})}
    )
    for split, part in groups.items():
        name = split_names.get(split, split)
        table = pa.table(
            {
                "sample_id": [r["sample_id"] for r in part],
                "label": [list(classes).index(r["label"]) for r in part],
                "frames": [[{"bytes": b, "path": None} for b in r["frames"]] for r in part],
                "audio": [{"bytes": r["audio"], "path": None} for r in part],
                "audio_sample_rate": pa.array([SAMPLE_RATE] * len(part), pa.int32()),
                "p_audio": [max(r["discrepancy"], 0.0) for r in part],
                "p_visual": [max(-r["discrepancy"], 0.0) for r in part],
                "discrepancy": [r["discrepancy"] for r in part],
                "bin": pa.array([bin_of(r["discrepancy"], bins) for r in part], pa.int32()),
                "split": [split_names.get(r["split"], r["split"]) for r in part],
            }
        )
        ds = datasets.Dataset(table).cast(features)
        ds.to_parquet(str(out_dir / "data" / f"{name}-00000-of-00001.parquet"))
    return out_dir


def write_ingest_dir(
    rows: list[dict],
    classes: Sequence[str],
    out_dir: Path,
    with_splits: str = "all",
    rows_per_shard: int = 7,
    with_groups: bool = False,
) -> Path:
    """An ingest+score directory per mmcurate.store.schemas (manifest, Arrow shards, scores, classes.json).

    ``with_splits``: "all" keeps the rows' splits, "no_val" turns val rows into train, "none"
    leaves every split null.
    """
    from mmcurate.store import IngestDir
    from mmcurate.store.ingest_dir import shard_name
    from mmcurate.store.schemas import SCORES_SCHEMA, SHARD_SCHEMA

    out_dir = Path(out_dir)
    store = IngestDir(out_dir)
    ordered = sorted(rows, key=lambda r: r["sample_id"])
    manifest, scores = [], []
    for start in range(0, len(ordered), rows_per_shard):
        part = ordered[start : start + rows_per_shard]
        name = shard_name(start // rows_per_shard)
        shard = pa.Table.from_pylist(
            [
                {
                    "sample_id": r["sample_id"],
                    "label": r["label"],
                    "frames": r["frames"],
                    "frame_times": [0.1 * k for k in range(len(r["frames"]))],
                    "audio": r["audio"],
                    "audio_sample_rate": SAMPLE_RATE,
                    "audio_num_samples": 0,
                    "audio_features": None,
                }
                for r in part
            ],
            schema=SHARD_SCHEMA,
        )
        store.write_shard(start // rows_per_shard, shard)
        for k, r in enumerate(part):
            split = {"all": r["split"], "no_val": "train" if r["split"] == "val" else r["split"], "none": None}[
                with_splits
            ]
            manifest.append(
                {
                    "sample_id": r["sample_id"],
                    "path": r["sample_id"],
                    "size_bytes": 1,
                    "sha256": "0" * 64,
                    "label": r["label"],
                    "split": split,
                    "group": r.get("group") if with_groups else None,
                    "start": None,
                    "end": None,
                    "duration": 0.5,
                    "container": "mp4",
                    "video_codec": "h264",
                    "audio_codec": "flac",
                    "fps": 15.0,
                    "width": 64,
                    "height": 64,
                    "native_frame_count": len(r["frames"]),
                    "native_sample_rate": SAMPLE_RATE,
                    "native_channels": 1,
                    "native_audio_samples": 0,
                    "num_frames": len(r["frames"]),
                    "num_audio_samples": 0,
                    "has_audio": True,
                    "has_video": True,
                    "shard": name,
                    "shard_row": k,
                }
            )
            d = r["discrepancy"]
            scores.append(
                {
                    "sample_id": r["sample_id"],
                    "label": r["label"],
                    "fold": 0,
                    "p_audio": r.get("p_audio", max(d, 0.0)),
                    "p_visual": r.get("p_visual", max(-d, 0.0)),
                    "discrepancy": d,
                    "preferred": "audio" if d > 0 else "visual",
                    "pred_audio": None,
                    "pred_visual": None,
                    "entropy_audio": None,
                    "entropy_visual": None,
                    "scorer_id": "fixture",
                }
            )
    store.write_manifest(manifest)
    store.write_classes(list(classes))
    store.write_scores(
        pa.Table.from_pylist(scores, schema=SCORES_SCHEMA), {"source": "fixture", "scorer_id": "fixture"}
    )
    return out_dir


def tensor_split(name: str, n: int, classes: int = 4, seed: int = 0, frames: int = 2, size: int = 16):
    """A small in-memory split with class-dependent frames and spectrograms (no decoding).

    Labels cycle through the classes; discrepancy runs evenly over [-1, 1]; every two samples
    share a group, so group-aware code has groups to respect.
    """
    import torch

    from mmcurate.reeval.data import SplitData

    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    shade = (labels * (200 // max(1, classes - 1))).to(torch.float32)
    pix = torch.rand(n, frames, 3, size, size, generator=g) * 50 + shade[:, None, None, None, None]
    audio = torch.randn(n, 1, 32, 24, generator=g) + labels[:, None, None, None].float()
    d = np.linspace(-1, 1, n) if n > 1 else np.zeros(n)
    bins = np.minimum(((d + 1) / 2 * 4).astype(np.int64), 3)
    return SplitData(
        name,
        pix.clamp(0, 255).to(torch.uint8),
        audio,
        labels,
        [f"{name}/{i:03d}" for i in range(n)],
        d,
        bins,
        [f"{name}-g{i // 2}" for i in range(n)],
    )


def tensor_data(n_train: int = 16, n_val: int = 8, n_test: int = 8, classes: int = 4):
    """In-memory ReevalData for fast trainer and method tests (4 equal-width discrepancy bins)."""
    from mmcurate.reeval.data import ReevalData

    return ReevalData(
        tensor_split("train", n_train, classes, 1),
        tensor_split("val", n_val, classes, 2),
        tensor_split("test", n_test, classes, 3),
        [str(k) for k in range(classes)],
        "memory",
        "balanced",
        "in-memory test data",
        4,
        [-1.0, -0.5, 0.0, 0.5, 1.0],
        {},
    )
