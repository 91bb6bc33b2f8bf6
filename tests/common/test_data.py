"""mmcurate.data on real media: av_digits clips decoded with PyAV, stored as JPEG + FLAC in real
Arrow shards with a manifest, then read back and decoded to tensors."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import soundfile
import torch
from _av_fixtures import CLASSES, build_rows, pick_clips, replicate, write_ingest_dir
from PIL import Image

from mmcurate.common.errors import MMCurateError, StageNotReadyError
from mmcurate.data import (
    FEATURES_METADATA_KEY,
    AVDataset,
    TensorConfig,
    audio_features_from_flac,
    build_av_tensors,
    decode_flac,
    decode_jpeg_frames,
    normalize_frames,
    read_class_list,
    read_shards,
    select_frame_indices,
)
from mmcurate.features import compute_audio_features, get_preset
from mmcurate.store import Workdir
from mmcurate.store.schemas import SHARD_SCHEMA

CFG = TensorConfig(image_size=32, num_frames=3)


@pytest.fixture(scope="module")
def rows(av_digits: Path) -> list[dict[str, Any]]:
    """42 real clips (6 per container family) as shard rows."""
    return build_rows(av_digits, per_family=6)


@pytest.fixture(scope="module")
def ingest_dir(rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ingest_dir(tmp_path_factory.mktemp("ingest"), rows, shard_size=16)


@pytest.fixture(scope="module")
def cached_ingest_dir(rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same rows with the logmel cache filled the way ingest must fill it."""
    logmel = get_preset("logmel")
    cached = [dict(r, audio_features=audio_features_from_flac(r["audio"], logmel).tolist()) for r in rows]
    return write_ingest_dir(tmp_path_factory.mktemp("cached"), cached, shard_size=16, config={"features": "logmel"})


@pytest.fixture(scope="module")
def tensors(ingest_dir: Path) -> Any:
    return build_av_tensors(read_shards(ingest_dir), CLASSES, CFG)


def shard_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SHARD_SCHEMA)


# ----------------------------------------------------------------------------- read_shards


def test_read_shards_in_manifest_order_and_in_requested_order(ingest_dir: Path, rows: list[dict[str, Any]]) -> None:
    table = read_shards(ingest_dir)
    ids = sorted(r["sample_id"] for r in rows)
    assert table.column("sample_id").to_pylist() == ids
    by_id = {r["sample_id"]: r for r in rows}
    assert table.column("audio").to_pylist() == [by_id[i]["audio"] for i in ids]
    # a subset across both shards, in caller order, with a repeat
    wanted = [ids[40], ids[3], ids[17], ids[3]]
    sub = read_shards(ingest_dir, wanted)
    assert sub.column("sample_id").to_pylist() == wanted
    assert sub.column("frames").to_pylist()[0] == by_id[ids[40]]["frames"]
    assert read_class_list(ingest_dir) == CLASSES


def test_read_shards_is_memory_mapped(ingest_dir: Path) -> None:
    shard_bytes = sum(p.stat().st_size for p in (ingest_dir / "shards").iterdir())
    before = pa.total_allocated_bytes()
    table = read_shards(ingest_dir, sorted(read_shards(ingest_dir).column("sample_id").to_pylist())[:16])
    assert table.num_rows == 16
    # only offsets/indices are allocated; media bytes stay in the mapped files
    assert pa.total_allocated_bytes() - before < shard_bytes / 4


def test_read_shards_errors_name_the_file(ingest_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(StageNotReadyError, match="manifest.parquet missing.*mmcurate ingest"):
        read_shards(tmp_path)
    with pytest.raises(MMCurateError, match="not in the manifest.*'nope.mp4'"):
        read_shards(ingest_dir, ["nope.mp4"])
    broken = tmp_path / "broken"
    (broken / "shards").mkdir(parents=True)
    (broken / "manifest.parquet").write_bytes((ingest_dir / "manifest.parquet").read_bytes())
    (broken / "shards" / "shard-00000.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(MMCurateError, match=r"shard-00000\.arrow: not a readable Arrow IPC shard"):
        read_shards(broken)
    (broken / "shards" / "shard-00000.arrow").unlink()
    with pytest.raises(MMCurateError, match=r"shard-00000\.arrow: shard named by the manifest is missing"):
        read_shards(broken)


# ----------------------------------------------------------------------------- building tensors


def test_tensors_shapes_dtypes_labels(tensors: Any, rows: list[dict[str, Any]]) -> None:
    n = len(rows)
    assert tensors.frames.shape == (n, 3, 3, 32, 32) and tensors.frames.dtype == torch.uint8
    assert tensors.audio.shape[:3] == (n, 1, 64) and tensors.audio.dtype == torch.float32
    assert tensors.labels.dtype == torch.int64
    by_id = {r["sample_id"]: r for r in rows}
    assert [CLASSES[i] for i in tensors.labels.tolist()] == [by_id[s]["label"] for s in tensors.sample_ids]
    assert tensors.has_audio.all() and tensors.has_frames.all()
    # automatic length: the 95th percentile of the clips' frame counts (1 + samples // 160)
    counts = [1 + r["audio_num_samples"] // 160 for r in rows]
    assert tensors.audio_frames == int(np.ceil(np.percentile(counts, 95)))
    assert torch.isfinite(tensors.audio).all()
    # audio values are float16-exact (same as a float16 cache would give)
    assert torch.equal(tensors.audio, tensors.audio.half().float())


def test_tensor_content_matches_independent_decoding(tensors: Any, rows: list[dict[str, Any]]) -> None:
    by_id = {r["sample_id"]: r for r in rows}
    for i in (0, 13, 41):
        row = by_id[tensors.sample_ids[i]]
        # audio: soundfile decode + features, computed here, then the clip's own frames repeated
        wave, rate = soundfile.read(io.BytesIO(row["audio"]), dtype="float32")
        feats = compute_audio_features(wave, rate, get_preset("logmel")).half().float()
        length = tensors.audio_frames
        expect = feats.repeat(1, -(-length // feats.shape[1]))[:, :length]
        assert torch.equal(tensors.audio[i, 0], expect)
        # frames: a full-resolution decode + the same antialiased bilinear resize; ours decodes at
        # a reduced DCT scale first, which moves pixels by ~0.6/255 on average (measured <= 1.5)
        for t in range(3):
            img = Image.open(io.BytesIO(row["frames"][t])).convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)
            ref = torch.from_numpy(np.asarray(img).transpose(2, 0, 1).copy()).float()
            assert (tensors.frames[i, t].float() - ref).abs().mean() < 2.0


def test_build_is_deterministic_across_worker_counts(ingest_dir: Path, tensors: Any) -> None:
    again = build_av_tensors(read_shards(ingest_dir), CLASSES, CFG, workers=2)
    assert again.sample_ids == tensors.sample_ids
    assert torch.equal(again.frames, tensors.frames)
    assert torch.equal(again.audio, tensors.audio)
    assert torch.equal(again.labels, tensors.labels)


def test_dataset_items_equal_tensors(ingest_dir: Path, tensors: Any, rows: list[dict[str, Any]]) -> None:
    table = read_shards(ingest_dir)
    ds = AVDataset(table, CLASSES, CFG)
    assert len(ds) == len(tensors) and ds.audio_frames == tensors.audio_frames
    for i in range(len(ds)):
        item = ds[i]
        assert item["sample_id"] == tensors.sample_ids[i]
        assert torch.equal(item["frames"], tensors.frames[i])
        assert torch.equal(item["audio"], tensors.audio[i])
        assert int(item["label"]) == int(tensors.labels[i])
    # sizing from FLAC headers when the length column is absent gives the same audio length
    headers_only = AVDataset(table.drop_columns(["audio_num_samples"]), CLASSES, CFG)
    assert headers_only.audio_frames == tensors.audio_frames
    assert torch.equal(headers_only[9]["audio"], tensors.audio[9])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert torch.equal(batch["audio"], tensors.audio[:5]) and batch["sample_id"] == tensors.sample_ids[:5]


def test_hub_style_rows_give_the_same_tensors(ingest_dir: Path, tensors: Any) -> None:
    """Exported rows: label as ClassLabel index, frames/audio as {bytes, path} cells."""
    table = read_shards(ingest_dir)
    hub_rows = [
        {
            "sample_id": r["sample_id"],
            "label": CLASSES.index(r["label"]),
            "frames": [{"bytes": f, "path": None} for f in r["frames"]],
            "audio": {"bytes": r["audio"], "path": None},
            "audio_sample_rate": r["audio_sample_rate"],
        }
        for r in table.to_pylist()
    ]
    built = build_av_tensors(hub_rows, CLASSES, CFG)
    assert torch.equal(built.frames, tensors.frames) and torch.equal(built.audio, tensors.audio)
    assert torch.equal(built.labels, tensors.labels)
    ds = AVDataset(hub_rows, CLASSES, CFG)
    assert torch.equal(ds[7]["audio"], tensors.audio[7])


def test_datasets_library_rows(ingest_dir: Path, tensors: Any) -> None:
    """A ``datasets.Dataset`` laid out like the export: Image frames, Audio cast to decode=False
    (decoding audio would need torchcodec)."""
    import datasets

    table = read_shards(ingest_dir)
    features = datasets.Features(
        {
            "sample_id": datasets.Value("string"),
            "label": datasets.ClassLabel(names=CLASSES),
            "frames": datasets.Sequence(datasets.Image()),
            "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
        }
    )
    ds = datasets.Dataset.from_dict(
        {
            "sample_id": table.column("sample_id").to_pylist(),
            "label": [CLASSES.index(x) for x in table.column("label").to_pylist()],
            "frames": [[{"bytes": f, "path": None} for f in fr] for fr in table.column("frames").to_pylist()],
            "audio": [{"bytes": a, "path": None} for a in table.column("audio").to_pylist()],
        },
        features=features,
    ).cast_column("audio", datasets.Audio(sampling_rate=16000, decode=False))
    # frames kept as bytes: bit-identical to the shard path
    as_bytes = ds.cast_column("frames", datasets.Sequence(datasets.Image(decode=False)))
    built = build_av_tensors(as_bytes, CLASSES, CFG)
    assert torch.equal(built.audio, tensors.audio) and torch.equal(built.frames, tensors.frames)
    assert torch.equal(AVDataset(as_bytes, CLASSES, CFG)[3]["frames"], tensors.frames[3])
    # frames decoded by datasets (PIL images, already full size): same audio, frames within resize noise
    decoded = build_av_tensors(ds, CLASSES, CFG)
    assert torch.equal(decoded.audio, tensors.audio)
    assert (decoded.frames.float() - tensors.frames.float()).abs().mean() < 2.0


# ----------------------------------------------------------------------------- feature cache


def test_cached_features_equal_the_computed_path(cached_ingest_dir: Path, tensors: Any) -> None:
    table = read_shards(cached_ingest_dir)
    assert json.loads(table.schema.metadata[FEATURES_METADATA_KEY]) == get_preset("logmel").to_dict()
    cached = build_av_tensors(table, CLASSES, CFG)
    assert cached.stats["cached_features_used"] == len(table)
    assert torch.equal(cached.audio, tensors.audio)
    # the cache really stands in for the FLAC: drop the audio bytes, keep the cache
    no_flac = table.set_column(table.column_names.index("audio"), "audio", pa.nulls(len(table), pa.binary()))
    assert torch.equal(build_av_tensors(no_flac, CLASSES, CFG).audio, tensors.audio)
    # and AVDataset reads the same cache
    assert torch.equal(AVDataset(table, CLASSES, CFG)[4]["audio"], tensors.audio[4])


def test_cache_of_another_config_is_not_used(cached_ingest_dir: Path, tensors: Any) -> None:
    table = read_shards(cached_ingest_dir)
    off = build_av_tensors(table, CLASSES, CFG.replace(use_cached_features=False))
    assert off.stats["cached_features_used"] == 0 and torch.equal(off.audio, tensors.audio)
    other = CFG.replace(audio=get_preset("logmel").replace(n_mels=40))
    built = build_av_tensors(table, CLASSES, other)
    assert built.stats["cached_features_used"] == 0 and built.audio.shape[2] == 40
    # without a recorded config (plain table, no metadata) the cache is never trusted
    plain = table.replace_schema_metadata(None)
    assert build_av_tensors(plain, CLASSES, CFG).stats["cached_features_used"] == 0
    assert build_av_tensors(plain, CLASSES, CFG, features_config="logmel").stats["cached_features_used"] == len(table)


def test_real_ingest_cache_is_used_and_equals_decoding(av_digits: Path, tmp_path: Path) -> None:
    """End to end with the ingest stage itself: `--features logmel` shards read back through
    read_shards use the cache, and give the same tensors as decoding the FLAC."""
    import shutil

    import mmcurate.ingest as ingest

    raw = tmp_path / "raw"
    for clip in pick_clips(av_digits, 2):
        (raw / clip["label"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(av_digits / clip["path"], raw / clip["label"] / Path(clip["path"]).name)
    out = tmp_path / "ingest"
    cfg = ingest.IngestConfig(raw_dir=raw, out=out, workers=1, decode=ingest.DecodeConfig(features="logmel"))
    ingest.run_ingest(Workdir(tmp_path), cfg)
    table = read_shards(out)
    assert table.num_rows == 14
    classes = read_class_list(out)
    cached = build_av_tensors(table, classes, CFG)
    assert cached.stats["cached_features_used"] == 14
    decoded = build_av_tensors(table, classes, CFG.replace(use_cached_features=False))
    assert torch.equal(cached.audio, decoded.audio) and torch.equal(cached.frames, decoded.frames)


# ----------------------------------------------------------------------------- lengths and padding


def test_audio_length_choices(rows: list[dict[str, Any]]) -> None:
    table = shard_table(rows[:10])
    fixed = build_av_tensors(table, CLASSES, CFG.replace(audio_frames=300))
    assert fixed.audio_frames == 300
    # repeat padding tiles the clip's own features; silence padding uses log(1e-6)
    one = fixed.audio[0, 0]
    n = 1 + rows[0]["audio_num_samples"] // 160
    assert torch.equal(one[:, n : 2 * n], one[:, :n])
    quiet = build_av_tensors(table, CLASSES, CFG.replace(audio_frames=300, audio_pad="silence"))
    assert torch.equal(quiet.audio[0, 0, :, :n], one[:, :n])
    assert torch.allclose(quiet.audio[0, 0, :, n:], torch.tensor(np.log(1e-6), dtype=torch.float16).float())
    capped = build_av_tensors(table, CLASSES, CFG.replace(max_audio_frames=20))
    assert capped.audio_frames == 20
    cremad = build_av_tensors(
        [dict(r, audio=_reflac(r["audio"], 22050), audio_sample_rate=22050, audio_num_samples=None) for r in rows[:3]],
        CLASSES,
        CFG.replace(audio=get_preset("cremad_stft")),
    )
    assert cremad.audio.shape == (3, 1, 257, 188)


def test_missing_modalities_are_zero_filled(rows: list[dict[str, Any]]) -> None:
    row = dict(rows[0], audio=None, frames=[])
    built = build_av_tensors([row, rows[1]], CLASSES, CFG)
    assert not built.has_audio[0] and not built.has_frames[0] and built.has_audio[1]
    assert built.frames[0].eq(0).all()
    assert torch.allclose(built.audio[0], torch.tensor(np.log(1e-6), dtype=torch.float16).float())


def _reflac(data: bytes, rate: int) -> bytes:
    import librosa

    wave, old = decode_flac(data)
    buf = io.BytesIO()
    soundfile.write(buf, librosa.resample(wave, orig_sr=old, target_sr=rate), rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


# ----------------------------------------------------------------------------- bad input


def test_corrupt_media_errors_name_the_sample(rows: list[dict[str, Any]]) -> None:
    good = rows[:3]
    jpeg = rows[1]["frames"][1]
    cases = {
        "frame 2 of 3 is not a decodable image": dict(rows[1], frames=[jpeg, jpeg[: len(jpeg) // 2], jpeg]),
        "audio is not decodable FLAC": dict(rows[1], audio=b"fLaC" + b"\x00" * 40),
    }
    for message, bad in cases.items():
        table = shard_table([good[0], bad, good[2]])
        for build in (lambda t: build_av_tensors(t, CLASSES, CFG, workers=2), lambda t: AVDataset(t, CLASSES, CFG)[1]):
            with pytest.raises(MMCurateError) as err:
                build(table)
            text = str(err.value)
            assert f"sample {rows[1]['sample_id']!r}" in text and message in text and "\n" not in text


def test_wrong_rate_and_unknown_label_are_clear_errors(rows: list[dict[str, Any]]) -> None:
    with pytest.raises(
        MMCurateError, match=r"stored at 16000 Hz but the audio features need 22050 Hz.*--sample-rate 22050"
    ):
        build_av_tensors(shard_table(rows[:2]), CLASSES, CFG.replace(audio=get_preset("cremad_stft")))
    with pytest.raises(MMCurateError, match=r"label 'eleven' is not in the class list"):
        build_av_tensors([dict(rows[0], label="eleven")], CLASSES, CFG)
    with pytest.raises(MMCurateError, match="lacks column"):
        build_av_tensors(shard_table(rows[:2]).drop_columns(["frames"]), CLASSES, CFG)


# ----------------------------------------------------------------------------- small pieces


def test_frame_selection_and_decoding_order() -> None:
    assert select_frame_indices(10, 3) == [1, 5, 8]
    assert select_frame_indices(3, 3) == [0, 1, 2]
    assert select_frame_indices(2, 3) == [0, 1, 1]
    assert select_frame_indices(1, 4) == [0, 0, 0, 0]
    colours = []
    for k in range(10):
        buf = io.BytesIO()
        Image.new("RGB", (48, 40), (25 * k, 255 - 25 * k, 100)).save(buf, format="JPEG", quality=95)
        colours.append(buf.getvalue())
    out = decode_jpeg_frames(colours, 16, 3)
    assert out.shape == (3, 3, 16, 16) and out.dtype == np.uint8
    assert [round(float(out[t, 0].mean()) / 25) for t in range(3)] == [1, 5, 8]


def test_normalize_frames_by_hand() -> None:
    x = torch.zeros(2, 3, 3, 4, 4, dtype=torch.uint8)
    x[:, :, 1] = 255
    y = normalize_frames(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.allclose(y[0, 0, 0], torch.full((4, 4), -0.485 / 0.229))
    assert torch.allclose(y[0, 0, 1], torch.full((4, 4), (1 - 0.456) / 0.224))
    with pytest.raises(MMCurateError):
        normalize_frames(torch.zeros(2, 4, 8, 8, dtype=torch.uint8))


def test_decode_flac_scale_and_channels() -> None:
    pcm = np.array([[0, 0], [16384, -16384], [-32768, 32767]], dtype=np.int16)
    buf = io.BytesIO()
    soundfile.write(buf, pcm, 8000, format="FLAC", subtype="PCM_16")
    wave, rate = decode_flac(buf.getvalue())
    assert rate == 8000 and wave.dtype == np.float32
    np.testing.assert_array_equal(wave, np.array([0.0, 0.0, (-1.0 + 32767 / 32768) / 2], dtype=np.float32))


@pytest.mark.slow
def test_build_speed_on_3000_av_digits_sized_items(rows: list[dict[str, Any]]) -> None:
    """The scale the score stage runs at: 3000 clips x 3 frames (224 px JPEG) + ~0.5 s FLAC."""
    table = shard_table(replicate(rows, 3000))
    started = time.perf_counter()
    built = build_av_tensors(table, CLASSES, TensorConfig(), workers=2)
    seconds = time.perf_counter() - started
    print(f"\nbuild_av_tensors: 3000 items, 64 px, logmel, workers=2: {seconds:.1f} s")
    assert built.frames.shape == (3000, 3, 3, 64, 64)
    assert seconds < 120
