"""Export of a balanced selection as a Hugging Face dataset: layout, round trips, card, determinism,
atomicity and error messages, on a real ingest-format fixture (JPEG, FLAC, Arrow IPC, Parquet)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml
from _fixtures_ingest import (
    DEFAULT_CLASSES,
    fixture_provenance,
    make_ingest_dir,
    make_selection,
)
from _hub_fixtures import REPO_ROOT, SMALL_SHARD, ExportFixture, build_export
from datasets import Audio, ClassLabel, Image, List

from mmcurate.common.errors import MMCurateError, StageNotReadyError
from mmcurate.export import export_balanced, load_balanced
from mmcurate.export.sharding import parse_shard_size, plan_shards
from mmcurate.store import BalancedDir


def verify_export(folder: Path, check_hashes: bool = True) -> dict:
    return BalancedDir(folder).verify_export(check_hashes)


SHARD_NAME = re.compile(r"^(train|validation|test)-(\d{5})-of-(\d{5})\.parquet$")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Export and local loading never need the network; make any attempt fail loudly."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ExportFixture:
    return build_export(tmp_path_factory.mktemp("export"))


def _tree_hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _shard_rows(ingest_dir: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for path in sorted((ingest_dir / "shards").glob("*.arrow")):
        for row in ipc.open_file(path).read_all().to_pylist():
            rows[row["sample_id"]] = row
    return rows


def test_hub_layout_and_shard_budget(exported: ExportFixture) -> None:
    data = exported.balanced_dir / "data"
    names = sorted(p.name for p in data.iterdir())
    assert names and all(SHARD_NAME.match(n) for n in names), names
    by_split: dict[str, list[re.Match[str]]] = {}
    for n in names:
        m = SHARD_NAME.match(n)
        assert m is not None
        by_split.setdefault(m.group(1), []).append(m)
    assert set(by_split) == {"train", "validation", "test"}  # the selection's "val" is the Hub's "validation"
    for split, matches in by_split.items():
        count = int(matches[0].group(3))
        assert sorted(int(m.group(2)) for m in matches) == list(range(count)), split
    assert len(by_split["train"]) >= 2, "the 100KB budget must split the ~250KB train split"
    budget = parse_shard_size(SMALL_SHARD)
    for p in data.iterdir():
        assert p.stat().st_size <= budget * 1.1, f"{p.name} is {p.stat().st_size} bytes, budget {budget}"
    # the selection's rows, and no others, are exported
    total = sum(pq.read_metadata(p).num_rows for p in data.iterdir())
    assert total == exported.selection.num_rows
    # selection.parquet/report written by other stages would sit next to these and survive
    assert {p.name for p in exported.balanced_dir.iterdir()} >= {"data", "hf", "README.md", "export.json"}


def test_plan_shards_respects_budget() -> None:
    sizes = np.array([40, 40, 40, 250, 10, 10, 90])
    ranges = plan_shards(sizes, 100)
    assert ranges == [(0, 2), (2, 3), (3, 4), (4, 6), (6, 7)]
    for start, stop in ranges:
        assert stop - start == 1 or sizes[start:stop].sum() <= 100
    assert plan_shards(np.array([], dtype=np.int64), 100) == []


def test_both_loaders_agree_with_each_other_and_with_inputs(exported: ExportFixture, tmp_path: Path) -> None:
    from_disk = load_balanced(exported.balanced_dir, "hf")
    from_parquet = load_balanced(exported.balanced_dir, "parquet", cache_dir=tmp_path / "cache")
    assert list(from_disk) == list(from_parquet) == ["train", "validation", "test"]
    classes = json.loads((exported.ingest_dir / "classes.json").read_text())
    shard_rows = _shard_rows(exported.ingest_dir)
    manifest = {r["sample_id"]: r for r in pq.read_table(exported.ingest_dir / "manifest.parquet").to_pylist()}
    selection = {r["sample_id"]: r for r in exported.selection.to_pylist()}
    seen: set[str] = set()
    for split in from_disk:
        a, b = from_disk[split], from_parquet[split]
        assert a.features == b.features
        assert isinstance(a.features["label"], ClassLabel) and a.features["label"].names == classes
        assert isinstance(a.features["frames"], List) and isinstance(a.features["frames"].feature, Image)
        assert isinstance(a.features["audio"], Audio) and a.features["audio"].sampling_rate == 16000
        table_a = a.with_format("arrow")[:]
        table_b = b.with_format("arrow")[:]
        assert table_a.equals(table_b), f"{split}: load_from_disk and load_dataset('parquet') differ"
        ids = table_a["sample_id"].to_pylist()
        assert ids == sorted(ids), "rows are ordered by sample_id"
        for row in table_a.to_pylist():
            sid = row["sample_id"]
            seen.add(sid)
            src, man, sel = shard_rows[sid], manifest[sid], selection[sid]
            assert [f["bytes"] for f in row["frames"]] == src["frames"]
            if src["audio"] is None:
                assert row["audio"] is None
            else:
                assert row["audio"]["bytes"] == src["audio"]
            assert row["audio_features"] == src["audio_features"]
            assert classes[row["label"]] == sel["label"]
            assert (row["p_audio"], row["p_visual"], row["discrepancy"], row["bin"]) == (
                sel["p_audio"],
                sel["p_visual"],
                sel["discrepancy"],
                sel["bin"],
            )
            assert row["split"] == sel["split"]
            assert (row["path"], row["sha256"]) == (man["path"], man["sha256"])
    assert seen == set(selection)


def test_rows_decode_without_torchcodec(exported: ExportFixture) -> None:
    """Audio comes back as FLAC bytes soundfile decodes; frames decode to images through PIL."""
    ds = load_balanced(exported.balanced_dir, "hf", decode_audio=False)["train"]
    assert ds.features["audio"].decode is False
    row = next(r for r in ds if r["audio"] is not None)
    samples, rate = sf.read(io.BytesIO(row["audio"]["bytes"]))
    assert rate == 16000 and samples.shape == (4000,)
    assert row["audio_sample_rate"] == 16000
    assert len(row["frames"]) == 4 and row["frames"][0].size == (48, 48)
    assert np.asarray(row["frames"][0]).std() > 5  # real pixels, not a blank frame


def _no_constant(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


def test_card_header_and_provenance(exported: ExportFixture) -> None:
    text = (exported.balanced_dir / "README.md").read_text()
    assert text.startswith("---\n")
    header = yaml.safe_load(text.split("\n---\n", 1)[0][4:])
    for key in ("configs", "dataset_info", "license", "task_categories", "size_categories", "source_datasets"):
        assert key in header, key
    assert header["license"] == "cc-by-sa-4.0"
    assert header["size_categories"] == ["n<1K"]
    assert header["source_datasets"] == ["extended|synthetic-fixture"]
    files = header["configs"][0]["data_files"]
    assert [f["split"] for f in files] == ["train", "validation", "test"]
    assert all(f["path"] == f"data/{f['split']}-*" for f in files)
    splits = {s["name"]: s["num_examples"] for s in header["dataset_info"]["splits"]}
    assert splits == {s: int(n) for s, n in load_balanced(exported.balanced_dir, "hf").num_rows.items()}
    # datasets itself reads the same features back from the card
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    infos = DatasetInfosDict.from_dataset_card_data(DatasetCard(text).data)
    stored = load_balanced(exported.balanced_dir, "hf")["train"].features
    assert infos["default"].features == stored
    prov = fixture_provenance()
    body = text.split("\n---\n", 1)[1]
    for needle in (
        prov["scorer_id"],
        "CC BY-SA 4.0",
        "https://example.org/fixture",
        "mmcurate 0.1.0",
        "-0.3333, 0.3333",
    ):
        assert needle in body, needle
    config = json.loads(
        (exported.balanced_dir / "mmcurate_config.json").read_text(), parse_constant=_no_constant
    )  # the resolved config, in strict JSON next to the card
    assert config["balance"]["seed"] == 0 and config["balance"]["balance_config"]["bins"] == 3
    assert "`val` in the selection" in body


def test_export_is_deterministic_and_replaces_previous(exported: ExportFixture, tmp_path: Path) -> None:
    reversed_selection = exported.selection.take(pa.array(range(exported.selection.num_rows - 1, -1, -1)))
    other = tmp_path / "balanced"
    export_balanced(
        exported.ingest_dir,
        reversed_selection,
        other,
        fixture_provenance(),
        max_shard_size=SMALL_SHARD,
        show_summary=False,
    )
    assert _tree_hashes(other) == _tree_hashes(exported.balanced_dir)
    # a second export into the same folder replaces data/ whole (fewer shards: no stale files) and keeps other files
    (other / "selection.parquet").write_bytes(b"written by the balance stage")
    (other / "report").mkdir()
    (other / "report" / "plot.png").write_bytes(b"png")
    export_balanced(
        exported.ingest_dir, exported.selection, other, fixture_provenance(), max_shard_size="10MB", show_summary=False
    )
    assert sorted(p.name for p in (other / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    assert (other / "selection.parquet").read_bytes() == b"written by the balance stage"
    assert (other / "report" / "plot.png").exists()
    assert not [p for p in other.iterdir() if p.name.startswith(".tmp-")]
    verify_export(other)


def test_failed_export_keeps_the_previous_one(exported: ExportFixture, tmp_path: Path) -> None:
    ingest = make_ingest_dir(tmp_path / "ingest", n=12)
    out = tmp_path / "balanced"
    export_balanced(ingest, make_selection(ingest), out, fixture_provenance(), show_summary=False)
    before = _tree_hashes(out)
    shard = ingest / "shards" / "shard-00000.arrow"
    shard.write_bytes(shard.read_bytes()[:100])  # truncated by a crashed copy, say
    with pytest.raises(MMCurateError, match=r"shard-00000\.arrow: not a readable Arrow IPC shard"):
        export_balanced(ingest, make_selection(ingest, drop_every=4), out, fixture_provenance(), show_summary=False)
    assert _tree_hashes(out) == before
    verify_export(out)


_KILL_SCRIPT = """
import sys
from pathlib import Path
import pyarrow.parquet as pq
from _fixtures_ingest import fixture_provenance
from mmcurate.export import export_balanced
export_balanced(Path(sys.argv[1]), pq.read_table(sys.argv[2]), Path(sys.argv[3]), fixture_provenance(),
                max_shard_size="60KB", show_summary=False)
"""


@pytest.mark.slow
def test_killed_export_leaves_old_export_or_none(tmp_path: Path) -> None:
    """SIGKILL an export at several points: the folder verifies as the old or the new export, or
    not at all (the marker is gone), never as a mix; a rerun then completes cleanly."""
    ingest = make_ingest_dir(tmp_path / "ingest", n=60)
    sel_old, sel_new = make_selection(ingest), make_selection(ingest, drop_every=3, seed=1)
    pq.write_table(sel_new, tmp_path / "new.parquet")
    reference = tmp_path / "reference"
    export_balanced(ingest, sel_new, reference, fixture_provenance(), max_shard_size="60KB", show_summary=False)
    new_hashes = {k: v for k, v in _tree_hashes(reference).items()}
    out = tmp_path / "balanced"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]),
        "MMCURATE_NO_PROGRESS": "1",
    }

    def start_export_and_wait_for_staging() -> tuple[subprocess.Popen[bytes], float]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILL_SCRIPT, str(ingest), str(tmp_path / "new.parquet"), str(out)],
            env=env,
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if any(p.name.startswith(".tmp-export.") for p in out.iterdir()):
                break
            time.sleep(0.002)
        return proc, time.monotonic()

    # How long the writing phase takes on this machine, to spread the kills over it.
    export_balanced(ingest, sel_old, out, fixture_provenance(), max_shard_size="60KB", show_summary=False)
    proc, staged = start_export_and_wait_for_staging()
    while proc.poll() is None and any(p.name.startswith(".tmp-export.") for p in out.iterdir()):
        time.sleep(0.002)
    window = max(0.01, time.monotonic() - staged)  # staging appears ... staging removed after the swap
    proc.wait(timeout=60)
    outcomes = []
    for fraction in (0.5, 0.97):
        export_balanced(ingest, sel_old, out, fixture_provenance(), max_shard_size="60KB", show_summary=False)
        old_hashes = _tree_hashes(out)
        proc, _ = start_export_and_wait_for_staging()
        time.sleep(window * fraction)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        try:
            verify_export(out)
        except StageNotReadyError:
            outcomes.append("none")
        else:
            now = _tree_hashes(out)
            visible = {k: v for k, v in now.items() if not k.startswith(".tmp-")}
            assert visible in (old_hashes, new_hashes), "a verified export must be exactly the old or the new one"
            outcomes.append("old" if visible == old_hashes else "new")
    print(f"kill outcomes {outcomes}, write window {window:.3f}s")
    export_balanced(ingest, sel_new, out, fixture_provenance(), max_shard_size="60KB", show_summary=False)
    assert _tree_hashes(out) == new_hashes  # debris from the killed runs is gone too
    verify_export(out)


_KILL_AT_MARKER_SCRIPT = """
import os, signal, sys
from pathlib import Path
import pyarrow.parquet as pq
from _fixtures_ingest import fixture_provenance
from mmcurate.common import atomic
from mmcurate.export import export_balanced
real_fsync = atomic._fsync_file
def fsync_then_die(path):
    real_fsync(path)
    if Path(path).name.startswith(atomic.TMP_PREFIX + "export.json."):
        os.kill(os.getpid(), signal.SIGKILL)  # the marker's temporary is written, not yet renamed
atomic._fsync_file = fsync_then_die
export_balanced(Path(sys.argv[1]), pq.read_table(sys.argv[2]), Path(sys.argv[3]), fixture_provenance(),
                max_shard_size="60KB", show_summary=False)
"""


def test_export_killed_while_writing_its_marker_leaves_no_debris(tmp_path: Path) -> None:
    """A kill in the one window the timed kills above hit only by chance (CI found it once): the marker's
    temporary is written but not renamed. The folder must not verify as a mix, and a rerun must leave
    exactly the new export, with no temporary left beside data/ (the marker is written in staging)."""
    ingest = make_ingest_dir(tmp_path / "ingest", n=30)
    sel_old, sel_new = make_selection(ingest), make_selection(ingest, drop_every=3, seed=1)
    pq.write_table(sel_new, tmp_path / "new.parquet")
    reference = tmp_path / "reference"
    export_balanced(ingest, sel_new, reference, fixture_provenance(), max_shard_size="60KB", show_summary=False)
    out = tmp_path / "balanced"
    export_balanced(ingest, sel_old, out, fixture_provenance(), max_shard_size="60KB", show_summary=False)
    old_hashes = _tree_hashes(out)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]),
        "MMCURATE_NO_PROGRESS": "1",
    }
    args = [sys.executable, "-c", _KILL_AT_MARKER_SCRIPT, str(ingest), str(tmp_path / "new.parquet"), str(out)]
    done = subprocess.run(args, env=env, cwd=tmp_path, timeout=120, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    try:
        verify_export(out)
    except StageNotReadyError:
        pass
    else:
        visible = {k: v for k, v in _tree_hashes(out).items() if not k.startswith(".tmp-")}
        assert visible == old_hashes, "a verified export must be exactly the old one here"
    export_balanced(ingest, sel_new, out, fixture_provenance(), max_shard_size="60KB", show_summary=False)
    assert _tree_hashes(out) == _tree_hashes(reference)
    verify_export(out)


def test_verify_export_detects_tampering(exported: ExportFixture, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported.balanced_dir, copy)
    verify_export(copy)
    shard = sorted((copy / "data").iterdir())[0]
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    with pytest.raises(MMCurateError, match="changed since it was exported"):
        verify_export(copy)
    (copy / "export.json").unlink()
    with pytest.raises(StageNotReadyError, match="did not finish"):
        verify_export(copy)


def test_bad_inputs_give_one_line_errors(exported: ExportFixture, tmp_path: Path) -> None:
    prov = fixture_provenance()
    cases: list[tuple[dict, str]] = [
        (dict(ingest_dir=tmp_path / "nope"), r"nope: ingest directory not found"),
        (dict(selection=tmp_path / "missing.parquet"), r"missing\.parquet: the selection is missing"),
        (dict(max_shard_size="lots"), r"max shard size 'lots' is not a positive size"),
    ]
    bad_sel = exported.selection.set_column(
        0, "sample_id", pa.array(["ghost/clip.mp4"] + exported.selection["sample_id"].to_pylist()[1:])
    )
    cases.append(
        (
            dict(selection=bad_sel),
            r"1 selected sample\(s\) are not in .*manifest\.parquet \(first: 'ghost/clip\.mp4'\)",
        )
    )
    dup = pa.concat_tables([exported.selection, exported.selection.slice(0, 1)])
    cases.append((dict(selection=dup), r"sample_id values repeat"))
    bad_label = exported.selection.set_column(1, "label", pa.array(["seven"] * exported.selection.num_rows))
    cases.append((dict(selection=bad_label), r"label\(s\) \['seven'\] are not in .*classes\.json"))
    for overrides, pattern in cases:
        kwargs = dict(
            ingest_dir=exported.ingest_dir,
            selection=exported.selection,
            out_dir=tmp_path / "out",
            provenance=prov,
            show_summary=False,
        )
        kwargs.update(overrides)
        with pytest.raises(MMCurateError) as info:
            export_balanced(**kwargs)  # type: ignore[arg-type]
        message = str(info.value)
        assert re.search(pattern, message), message
        assert "\n" not in message
    assert not (tmp_path / "out" / "data").exists()


def test_plain_bytes_audio_when_not_a_container(tmp_path: Path) -> None:
    """Audio that is not in a container the Hub's Audio type decodes is exported as bytes + rate."""
    ingest = make_ingest_dir(tmp_path / "ingest", n=6, classes=DEFAULT_CLASSES[:2], with_features=False)
    for shard in (ingest / "shards").glob("*.arrow"):
        table = ipc.open_file(shard).read_all()
        raw = pa.array([b"\x00\x01" * 50 for _ in range(table.num_rows)], pa.binary())
        table = table.set_column(table.schema.get_field_index("audio"), table.schema.field("audio"), raw)
        with ipc.new_file(shard, table.schema) as w:
            w.write_table(table)
    result = export_balanced(
        ingest, make_selection(ingest), tmp_path / "out", fixture_provenance(), show_summary=False
    )
    assert result.audio_as_hub_type is False and result.with_features is False
    ds = load_balanced(tmp_path / "out", "hf")["train"]
    assert ds.features["audio"] == datasets.Value("binary")
    assert "audio_features" not in ds.features
    assert ds[0]["audio"] == b"\x00\x01" * 50 and ds[0]["audio_sample_rate"] == 16000


def test_card_configuration_is_strict_json() -> None:
    from mmcurate.export.card import config_document

    text = config_document({"p": float("nan"), "edges": [float("-inf"), 0.0, float("inf")]}, {"x": 1}, "0.1.0")
    doc = json.loads(text, parse_constant=_no_constant)
    assert doc["balance"] == {"p": None, "edges": [None, 0.0, None]} and doc["ingest"] == {"x": 1}
