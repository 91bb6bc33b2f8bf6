"""The adversarial run of issue 17, kept as tests: never delete what isn't ours, never trust stale
state, never leak or hang.

Each test is one attack (or a family of them), tried the way a hostile user would: bad paths,
foreign folders, concurrent runs, edited inputs, damaged outputs, a stalled server, absurd
options. The inputs are small and real: a few av_digits clips decoded by the real ingest, the
store-format fixture of ``_fixtures_ingest``, a local socket server.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _fixtures_ingest import make_ingest_dir

from mmcurate.common.errors import MMCurateError
from mmcurate.execution import ArrayJobConfig
from mmcurate.ingest import DecodeConfig, IngestConfig, run_ingest
from mmcurate.store import BalancedDir, IngestDir, Workdir
from mmcurate.store.io import open_ipc_file
from mmcurate.store.lock import FileLock, folder_lock

ENV = {**os.environ, "MMCURATE_NO_PROGRESS": "1"}
TOKEN = "hf_attackerCanSeeThisToken123"


# ------------------------------------------------------------------------------------------- helpers


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, umask: int = -1, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m mmcurate ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mmcurate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**ENV, **(env or {})},
        timeout=timeout,
        umask=umask,
    )


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def mm(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    """``mmcurate ARGV`` in this process, through the console entry point (the same error handling a
    shell user meets; cheaper than a new interpreter importing torch)."""
    from mmcurate.cli import main

    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as ended:
        code = int(ended.code or 0)
    out, err = capsys.readouterr()
    return Ran(code, out, err)


def one_line_error(proc: subprocess.CompletedProcess[str] | Ran) -> str:
    """The error line of a refused command: exit 2, one line, no internal error, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "internal error" not in lines[0] and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def make_raw(av_digits: Path, root: Path, per_label: int = 2, labels: tuple[str, ...] = ("1", "2", "3")) -> Path:
    """RAW_DIR/<label>/<clip>.mp4 with ``per_label`` real av_digits clips of each label."""
    raw = root / "raw"
    src = av_digits / "mp4_h264_aac"
    for label in labels:
        (raw / label).mkdir(parents=True, exist_ok=True)
        for p in sorted(src.glob(f"{label}_*.mp4"))[:per_label]:
            shutil.copy(p, raw / label / p.name)
    return raw


def ingest(raw: Path, out: Path, manifest: Path | None = None, **kw: object):
    """The ingest stage in-process (one worker, inline)."""
    decode = {k: kw.pop(k) for k in list(kw) if k in DecodeConfig.__dataclass_fields__}
    cfg = IngestConfig(raw_dir=raw, out=out, manifest=manifest, decode=DecodeConfig(**decode), workers=1, **kw)  # type: ignore[arg-type]
    return run_ingest(Workdir(out.parent / "work"), cfg)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest_rows(out: Path) -> dict[str, dict]:
    return {r["sample_id"]: r for r in IngestDir(out).read_manifest().to_pylist()}


def write_scores_csv(ingest_dir: Path, dest: Path, seed: int = 0) -> Path:
    ids = IngestDir(ingest_dir).read_manifest(["sample_id"]).column("sample_id").to_pylist()
    rng = np.random.default_rng(seed)
    with open(dest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_id", "p_audio", "p_visual"])
        for sid in ids:
            w.writerow([sid, *rng.uniform(size=2).round(4)])
    return dest


@pytest.fixture()
def raw(av_digits: Path, tmp_path: Path) -> Path:
    return make_raw(av_digits, tmp_path)


# --------------------------------------------------------------------- 1. the Hub token in a recipe


def test_token_in_a_recipe_or_set_is_refused_and_never_written_or_printed(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"source: {{raw_dir: {raw}}}\npush: {{repo_id: org/name, token: {TOKEN}}}\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"source: {{raw_dir: {raw}}}\npush: {{repo_id: org/name}}\n")
    for args in (
        ["run", str(recipe), "--workdir", str(work), "--dry-run"],
        ["run", str(recipe), "--workdir", str(work), "--until", "ingest"],
        ["run", str(plain), "--workdir", str(work), "--set", f"push.token={TOKEN}"],
        ["run", str(plain), "--workdir", str(work), "--dry-run", "--set", f"push.token={TOKEN}"],
    ):
        proc = mm(capsys, *args)
        line = one_line_error(proc)
        assert "HF_TOKEN" in line and "push.token" in line
        assert TOKEN not in proc.stdout + proc.stderr
    assert not work.exists() or not any(TOKEN.encode() in data for data in tree(work).values())
    assert not (work / Workdir.RESOLVED_RECIPE).exists()


def test_pipeline_called_from_python_refuses_the_token_too(raw: Path, tmp_path: Path) -> None:
    from mmcurate.pipeline import Recipe, run_pipeline

    recipe = Recipe(tmp_path / "r.yaml", {"source": {"raw_dir": str(raw)}, "push": {"repo_id": "o/n", "token": TOKEN}})
    with pytest.raises(MMCurateError, match="HF_TOKEN") as err:
        run_pipeline(recipe, tmp_path / "work", dry_run=True)
    assert TOKEN not in str(err.value)
    assert not (tmp_path / "work" / Workdir.RESOLVED_RECIPE).exists()


# ------------------------------------------------------------ 2. balance --out on a user's folder


@pytest.fixture()
def scored_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A store-format ingest (30 clips, 3 classes) with imported scores, in WORK/ingest."""
    ingest_dir = make_ingest_dir(tmp_path / "work" / "ingest", n=30, with_features=False)
    proc = mm(capsys, "score", str(ingest_dir), "--scores-from", str(write_scores_csv(ingest_dir, tmp_path / "s.csv")))
    assert proc.returncode == 0, proc.stderr
    return ingest_dir


def test_balance_refuses_a_folder_that_is_not_a_balanced_output(
    scored_fixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "my-dataset"
    (mine / "data").mkdir(parents=True)
    (mine / "hf").mkdir()
    (mine / "README.md").write_text("# my notes\n")
    (mine / "data" / "labels.csv").write_text("a,b\n1,2\n")
    (mine / "hf" / "keep.txt").write_text("mine\n")
    (mine / "notes.txt").write_text("mine too\n")
    before = tree(mine)
    work = str(scored_fixture.parent)
    line = one_line_error(mm(capsys, "balance", "--workdir", work, "--out", str(mine), "--bins", "2"))
    assert "not empty" in line and "--overwrite" in line
    assert tree(mine) == before, "a refused balance changed the folder"

    proc = mm(capsys, "balance", "--workdir", work, "--out", str(mine), "--bins", "2", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert (mine / "notes.txt").read_text() == "mine too\n", "a file balance does not write was touched"
    assert BalancedDir(mine).is_complete()
    again = mm(capsys, "balance", "--workdir", work, "--out", str(mine), "--bins", "2", "--seed", "1")
    assert again.returncode == 0, "a balanced output is ours: no --overwrite needed"

    from mmcurate.export import export_balanced  # a Python caller may not replace a user's files either
    from mmcurate.store.schemas import SELECTION_SCHEMA

    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("theirs\n")
    sel = pq.read_table(mine / "selection.parquet").cast(SELECTION_SCHEMA)
    with pytest.raises(MMCurateError, match="not empty"):
        export_balanced(scored_fixture, sel, other, {}, show_summary=False)
    assert (other / "README.md").read_text() == "theirs\n"


# ----------------------------------------------------------------- 3. edits to the input manifest


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _shard_labels(out: Path) -> dict[str, str]:
    labels = {}
    for p in sorted((out / "shards").glob("shard-*.arrow")):
        t = open_ipc_file(p, fix="")
        labels.update(zip(t["sample_id"].to_pylist(), t["label"].to_pylist(), strict=True))
    return labels


def test_edits_to_the_input_manifest_redo_the_shards_and_reach_every_output(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clips = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.mp4"))
    rows = [
        {"path": c, "label": c.split("/")[0], "split": "", "group": f"s{i % 2}", "cond": "clean"}
        for i, c in enumerate(clips)
    ]
    manifest = _write_manifest(tmp_path / "inputs.csv", rows)
    out = tmp_path / "out"
    ingest(raw, out, manifest)
    store = IngestDir(out)
    proc = mm(capsys, "score", str(out), "--scores-from", str(write_scores_csv(out, tmp_path / "s.csv")))
    assert proc.returncode == 0 and store.scores_state() == "fresh"

    def edit(row: int, column: str, value: str) -> dict:
        rows[row][column] = value
        _write_manifest(manifest, rows)
        result = ingest(raw, out, manifest)
        assert result.chunks_written == 1, f"an edited {column} must decode its shard again"
        return manifest_rows(out)

    a, b = clips[0], clips[-1]  # labels 1 and 3 swap: the class list stays the same
    rows[0]["label"] = "3"
    got = edit(-1, "label", "1")
    assert got[a]["label"] == "3" and got[b]["label"] == "1"
    assert _shard_labels(out)[a] == "3" and _shard_labels(out)[b] == "1"
    assert store.scores_state().startswith("stale"), "scores made with the old labels are still called fresh"
    assert edit(1, "group", "s9")[clips[1]]["group"] == "s9"
    assert edit(2, "split", "test")[clips[2]]["split"] == "test"
    assert edit(3, "cond", "visual_noise")[clips[3]]["cond"] == "visual_noise"  # a carried column


def test_a_new_class_or_segment_in_the_input_manifest_is_new_input_not_a_refusal(raw: Path, tmp_path: Path) -> None:
    clips = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.mp4"))
    rows = [{"path": c, "label": c.split("/")[0], "start": "", "end": ""} for c in clips]
    manifest = _write_manifest(tmp_path / "inputs.csv", rows)
    out = tmp_path / "out"
    ingest(raw, out, manifest)
    rows[4]["label"] = "7"  # a class that did not exist: new input, not a changed setting
    rows[5]["start"], rows[5]["end"] = "0", "0.2"  # a segment of a clip
    _write_manifest(manifest, rows)
    ingest(raw, out, manifest)
    assert IngestDir(out).read_classes() == ["1", "2", "3", "7"]
    got = manifest_rows(out)
    assert got[clips[4]]["label"] == "7" and f"{clips[5]}#0-0.2" in got and clips[5] not in got
    assert _shard_labels(out)[clips[4]] == "7"


def test_changed_groups_make_group_fold_scores_stale(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clips = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.mp4"))
    rows = [{"path": c, "label": c.split("/")[0], "spk": f"s{i % 2}"} for i, c in enumerate(clips)]
    manifest = _write_manifest(tmp_path / "inputs.csv", rows)
    out = tmp_path / "out"
    ingest(raw, out, manifest, group_column="spk")
    store = IngestDir(out)
    assert (
        mm(capsys, "score", str(out), "--scores-from", str(write_scores_csv(out, tmp_path / "s.csv"))).returncode == 0
    )
    meta = store.read_scores_meta()
    # the provenance the built-in scorer writes when it kept groups in one fold
    meta.update(source="oof", config={"group_folds": True}, groups_fingerprint=store.groups_fingerprint())
    (out / IngestDir.SCORES_META).write_text(json.dumps(meta))
    assert store.scores_state() == "fresh"
    rows[0]["spk"] = "s1"
    _write_manifest(manifest, rows)
    ingest(raw, out, manifest, group_column="spk")
    assert store.scores_state().startswith("stale: the manifest's groups changed")


# ---------------------------------------------------------------- 4. output overlapping the input


def test_output_that_is_raw_dir_or_holds_it_is_refused(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (raw / "shards").mkdir()  # label folders that share names with ingest's own
    (raw / "chunks").mkdir()
    shutil.copy(next(raw.glob("1/*.mp4")), raw / "shards" / "clip.mp4")
    shutil.copy(next(raw.glob("1/*.mp4")), raw / "chunks" / "clip.mp4")
    before = tree(raw)
    for out in (str(raw), f"{raw}/.", str(tmp_path)):
        line = one_line_error(mm(capsys, "ingest", str(raw), "--out", out, "--overwrite", "--size", "32"))
        assert "RAW_DIR" in line
    assert tree(raw) == before, "raw clips were touched"


def test_output_inside_raw_dir_is_left_out_of_discovery(raw: Path, tmp_path: Path) -> None:
    out = raw / "_out"
    first = ingest(raw, out)
    second = ingest(raw, out)
    assert (first.n_inputs, first.n_failed) == (second.n_inputs, second.n_failed) == (6, 0)
    assert second.chunks_written == 0


def test_default_work_directory_inside_raw_dir_is_left_out(
    raw: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MMCURATE_WORKDIR", raising=False)
    monkeypatch.chdir(raw)  # `cd RAW_DIR && mmcurate ingest .`: ./mmcurate-work lands inside it
    for _ in range(2):
        proc = mm(capsys, "ingest", ".", "--workers", "1")
        assert proc.returncode == 0, proc.stderr
        stats = json.loads((raw / "mmcurate-work" / "ingest" / "stats.json").read_text())
        assert (stats["inputs"], stats["failures"], stats["skipped_entries"]) == (6, 0, 0), stats


# ------------------------------------------------------------------------ 5. push against a stall


@pytest.mark.slow
def test_push_to_an_endpoint_that_never_answers_ends_in_one_line(tmp_path: Path) -> None:
    from _hub_fixtures import build_export

    exported = build_export(tmp_path / "exp", n=12)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []

    def accept_and_ignore() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)  # never read from, never answered

    threading.Thread(target=accept_and_ignore, daemon=True).start()
    env = {
        "HF_ENDPOINT": f"http://127.0.0.1:{server.getsockname()[1]}",
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
    }
    try:
        started = time.monotonic()
        proc = cli(
            "push",
            "--workdir",
            str(exported.workdir),
            "--repo-id",
            "org/name",
            "--timeout",
            "0.5",
            "--retries",
            "2",
            env=env,
            timeout=120,
        )
        took = time.monotonic() - started
    finally:
        server.close()
        for c in accepted:
            c.close()
    line = one_line_error(proc)
    assert "did not answer in time" in line and TOKEN not in proc.stderr
    assert len(accepted) >= 3, "reads are retried"
    assert took < 30, f"a stalled endpoint held push for {took:.0f} s"


# --------------------------------------------------------------- 6. ingest into a foreign folder


def test_ingest_refuses_a_foreign_folder_and_never_deletes_what_it_did_not_write(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "project"
    (out / "shards").mkdir(parents=True)
    (out / ".tmp-notes").write_text("mine\n")
    (out / "notes.txt").write_text("mine\n")
    (out / "shards" / "shard-00007.arrow").write_text("not a shard\n")
    (out / "shards" / "shard-final.arrow").write_text("mine\n")
    before = tree(out)
    line = one_line_error(mm(capsys, "ingest", str(raw), "--out", str(out)))
    assert "not empty" in line and "--overwrite" in line
    assert tree(out) == before

    assert mm(capsys, "ingest", str(raw), "--out", str(out), "--overwrite", "--workers", "1").returncode == 0
    for name in (".tmp-notes", "notes.txt", "shards/shard-00007.arrow", "shards/shard-final.arrow"):
        assert (out / name).read_bytes() == before[name], f"{name} was deleted or changed"
    proc = mm(capsys, "ingest", str(raw), "--out", str(out), "--workers", "1")  # ours now: reruns need no --overwrite
    assert proc.returncode == 0 and "nothing was decoded" in proc.stderr
    proc = mm(capsys, "ingest", str(raw), "--out", str(out), "--workers", "1", "--size", "32", "--overwrite")
    assert proc.returncode == 0, proc.stderr  # other settings: what ingest wrote is replaced, nothing else
    for name in (".tmp-notes", "notes.txt", "shards/shard-00007.arrow", "shards/shard-final.arrow"):
        assert (out / name).read_bytes() == before[name], f"{name} was deleted or changed"

    link_target = tmp_path / "elsewhere"
    link_target.mkdir()
    (link_target / "keep.arrow").write_text("mine\n")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "shards").symlink_to(link_target)
    for args in ((), ("--overwrite",)):
        line = one_line_error(mm(capsys, "ingest", str(raw), "--out", str(linked), *args))
        assert "symbolic link" in line
    assert [p.name for p in link_target.iterdir()] == ["keep.arrow"]


def test_only_our_own_debris_is_cleaned(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ingest(raw, out)
    (out / ".tmp-notes").write_text("a user's file\n")
    debris = out / "shards" / ".tmp-shard-00000.arrow.abcd1234.arrow"
    debris.write_bytes(b"left by a killed run")
    ingest(raw, out)
    assert (out / ".tmp-notes").exists() and not debris.exists()


# ---------------------------------------------------------------- 7. concurrent runs on one output


def test_a_second_run_on_a_locked_output_is_refused_and_cleans_nothing(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = dict(shard_size=2)
    ingest(raw, out, **cfg)
    live = out / ".tmp-manifest.parquet.abcd1234.parquet"  # what a live run's atomic write looks like
    live.write_bytes(b"in flight")
    holder = folder_lock(out).acquire(exclusive=True)  # a live run (a real flock, seen by other processes)
    try:
        line = one_line_error(cli("ingest", str(raw), "--out", str(out), "--workers", "1", "--shard-size", "2"))
        assert "in use by another mmcurate run" in line
        assert live.exists(), "a live run's temporary was deleted"
    finally:
        holder.release()

    # array parts share the folder; a part that is not alone leaves temporaries alone
    part = folder_lock(out).acquire(exclusive=False)
    try:
        ingest(raw, out, array=ArrayJobConfig(3, 1), **cfg)
        assert live.exists()
    finally:
        part.release()
    ingest(raw, out, **cfg)  # alone: the debris of dead runs goes
    assert not live.exists()


def test_balance_holds_its_folder(scored_fixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "balanced"
    holder = FileLock(out / ".mmcurate.lock", "test").acquire()
    try:
        line = one_line_error(
            mm(capsys, "balance", "--workdir", str(scored_fixture.parent), "--out", str(out), "--bins", "2")
        )
        assert "in use" in line
    finally:
        holder.release()


def test_scoring_holds_the_ingest_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Scores are written into the ingest folder: a scoring while another scoring (or an ingest)
    holds it is refused in one line, for imported and built-in scores alike, and writes nothing."""
    ingest_dir = make_ingest_dir(tmp_path / "work" / "ingest", n=30, with_features=False)
    scores_csv = write_scores_csv(ingest_dir, tmp_path / "s.csv")
    holder = folder_lock(ingest_dir).acquire(exclusive=True)  # a live run (a real flock)
    before = tree(ingest_dir)
    try:
        for args in (("--scores-from", str(scores_csv)), ("--epochs", "1", "--folds", "2", "--no-save-scorers")):
            line = one_line_error(mm(capsys, "score", str(ingest_dir), *args))
            assert "in use by another mmcurate run" in line, line
        assert tree(ingest_dir) == before, "a refused scoring wrote into the folder"
    finally:
        holder.release()
    assert mm(capsys, "score", str(ingest_dir), "--scores-from", str(scores_csv)).returncode == 0


def test_reeval_refuses_a_foreign_folder_and_holds_its_own(
    scored_fixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmcurate.reeval.runner import claim_reeval_folder
    from mmcurate.store.ownership import OWNER_FILE, owner_kind

    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine\n")
    before = tree(mine)
    argv = ("reeval", str(scored_fixture), "--methods", "audio_only", "--epochs", "1")
    line = one_line_error(mm(capsys, *argv, "--out", str(mine)))
    assert "not empty" in line and "--overwrite" in line, line
    assert tree(mine) == before, "a refused reeval changed the folder"

    ours = tmp_path / "reeval"
    holder = folder_lock(ours).acquire(exclusive=True)  # a live reeval on that folder
    try:
        assert "in use by another mmcurate run" in one_line_error(mm(capsys, *argv, "--out", str(ours)))
    finally:
        holder.release()

    # --overwrite marks the folder and keeps the user's file; a reeval output (or one from before
    # owner files: a results.json that reeval wrote) needs no flag; a user's runs/ folder is not one
    claim_reeval_folder(mine, overwrite=True).release()
    assert owner_kind(mine) == "reeval" and (mine / "notes.txt").read_text() == "mine\n"
    claim_reeval_folder(mine, overwrite=False).release()
    older = tmp_path / "older"
    (older / "runs").mkdir(parents=True)
    with pytest.raises(MMCurateError, match="not empty"):
        claim_reeval_folder(older, overwrite=False)
    from mmcurate.reeval.report import PROTOCOL

    (older / "results.json").write_text(json.dumps({"protocol": PROTOCOL, "runs": []}))
    claim_reeval_folder(older, overwrite=False).release()
    assert (older / OWNER_FILE).is_file()


# ------------------------------------------------------- 8. a re-balance that dies part way


def test_a_rebalance_that_dies_leaves_no_export_push_would_trust(
    scored_fixture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = str(scored_fixture.parent)
    assert mm(capsys, "balance", "--workdir", work, "--bins", "2").returncode == 0
    balanced = BalancedDir(scored_fixture.parent / "balanced")
    assert balanced.is_complete()
    before = tree(balanced.path)

    line = one_line_error(
        mm(capsys, "balance", "--workdir", work, "--bins", "2", "--seed", "3", "--max-shard-size", "-5MB")
    )
    assert "shard" in line.lower()
    assert tree(balanced.path) == before, "an invalid option wrote before it was refused"

    shard = sorted((scored_fixture / "shards").glob("*.arrow"))[0]
    shard.rename(shard.with_suffix(".gone"))  # the export dies after the new selection is written
    proc = mm(capsys, "balance", "--workdir", work, "--bins", "2", "--seed", "3")
    assert proc.returncode == 2
    assert (balanced.path / "selection.parquet").read_bytes() != before["selection.parquet"]
    assert not balanced.is_complete()
    push = mm(capsys, "push", "--workdir", work, "--repo-id", "org/name", "--dry-run")
    assert "export.json" in one_line_error(push)


# -------------------------------------------------------------------------------- 9. NaN scores


def test_a_diverged_scorer_is_an_error_not_nan_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ingest_dir = make_ingest_dir(tmp_path / "work" / "ingest", n=24, with_features=False)
    line = one_line_error(
        mm(
            capsys,
            "score",
            str(ingest_dir),
            "--lr",
            "1e6",
            "--folds",
            "2",
            "--epochs",
            "1",
            "--repeats",
            "1",
            "--batch-size",
            "8",
        )
    )
    assert "diverged" in line and "--lr" in line
    assert not (ingest_dir / "scores.parquet").exists()


def test_balance_refuses_scores_that_are_not_numbers(scored_fixture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = IngestDir(scored_fixture)
    scores = store.read_scores()
    d = scores["discrepancy"].to_numpy().copy()
    d[::3] = np.nan  # some, not all: once an IndexError deep in sampling
    scores = scores.set_column(scores.schema.get_field_index("discrepancy"), "discrepancy", pa.array(d))
    store.write_scores(scores, store.read_scores_meta())
    line = one_line_error(mm(capsys, "balance", "--workdir", str(scored_fixture.parent), "--bins", "2"))
    assert "no finite discrepancy" in line


# ---------------------------------------------------------------- low: one-line errors everywhere


@pytest.fixture(scope="module")
def recipes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recipes")
    make_ingest_dir(root / "w" / "ingest", n=12, with_features=False)  # so that --out is what is wrong
    (root / "list.yaml").write_text("source: {raw_dir: raw}\ningest: [1, 2]\n")
    (root / "anchor.yaml").write_text("source: {raw_dir: raw}\ningest: &a\n  x: *a\n")
    (root / "latin1.yaml").write_bytes("source: {raw_dir: raw}\nname: caf\u00e9\n".encode("latin-1"))
    (root / "ok.yaml").write_text("source: {raw_dir: raw}\ningest: {frames: 2}\n")
    (root / "source_key.yaml").write_text("source: {raw_dir: raw, fps: 2}\n")
    (root / "file").write_text("a file\n")
    return root


ONE_LINE_CASES = {
    "ingest --out FILE": (["ingest", "{root}", "--out", "{root}/file"], "not a folder"),
    "balance --out FILE": (["balance", "--workdir", "{root}/w", "--out", "{root}/file"], "not a folder"),
    "reeval --out FILE": (["reeval", "--workdir", "{root}/w", "--out", "{root}/file"], "not a folder"),
    "score --seed -1": (["score", "--workdir", "{root}/w", "--seed", "-1"], "--seed"),
    "balance --seed -1": (["balance", "--workdir", "{root}/w", "--seed", "-1"], "--seed"),
    "score --weight-decay -1": (["score", "--workdir", "{root}/w", "--weight-decay", "-1"], "--weight-decay"),
    "score --width -1": (["score", "--workdir", "{root}/w", "--width", "-1"], "--width"),
    "score --label-smoothing 5": (["score", "--workdir", "{root}/w", "--label-smoothing", "5"], "--label-smoothing"),
    "score --lr nan": (["score", "--workdir", "{root}/w", "--lr", "nan"], "--lr"),
    "ingest --fps nan": (["ingest", "{root}", "--fps", "nan", "--out", "{root}/o"], "--fps"),
    "ingest --min-coverage 2": (["ingest", "{root}", "--min-coverage", "2", "--out", "{root}/o"], "--min-coverage"),
    "ingest --video-stream -1": (["ingest", "{root}", "--video-stream", "-1", "--out", "{root}/o"], "--video-stream"),
    "balance --split nan/1/1": (["balance", "--workdir", "{root}/w", "--split", "nan/1/1"], "--split"),
    "push --timeout 0": (["push", "--repo-id", "o/n", "--timeout", "0"], "--timeout"),
    "recipe section is a list": (["run", "{root}/list.yaml", "--dry-run"], "must be a mapping"),
    "recursive YAML anchor": (["run", "{root}/anchor.yaml", "--dry-run"], "refers to itself"),
    "non-UTF-8 recipe": (["run", "{root}/latin1.yaml", "--dry-run"], "UTF-8"),
    "--set a.b.c= on a scalar": (["run", "{root}/ok.yaml", "--dry-run", "--set", "ingest.frames.x=1"], "single value"),
    "--set k= (empty)": (["run", "{root}/ok.yaml", "--dry-run", "--set", "ingest.frames="], "has no value"),
    "unknown source: key": (["run", "{root}/source_key.yaml", "--dry-run"], "source.fps"),
}


@pytest.mark.parametrize("case", sorted(ONE_LINE_CASES))
def test_bad_options_and_recipes_are_one_line_errors(
    case: str, recipes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, expect = ONE_LINE_CASES[case]
    line = one_line_error(mm(capsys, *[a.replace("{root}", str(recipes)) for a in args]))
    if expect:
        assert expect in line


def _numeric_fields():
    from mmcurate.common.options import option_fields
    from mmcurate.stages import NAMES, load_stage

    for name in NAMES:
        for f in option_fields(load_stage(name).config):
            if f.base in (int, float) and not f.meta["argument"] and f.path[-1] not in ("num_shards", "shard_index"):
                yield pytest.param(load_stage(name).config, f, id=f"{name}.{f.key}")


@pytest.mark.parametrize(("config", "field"), list(_numeric_fields()))
def test_every_numeric_option_refuses_negative_and_non_finite_values(config: type, field) -> None:
    """Validation lives in the configs, so the command line and recipes both get it. (The array-job
    pair is checked when resolved, against each other and $SLURM_*.)"""
    from mmcurate.common.options import _build

    bad = [-1, -1e9] + ([math.nan, math.inf, -math.inf] if field.base is float else [])
    for value in bad:
        with pytest.raises(MMCurateError):
            _build(config, {field.path: value})


# --------------------------------------------------------------------------- low: accounting holes


def _unreadable_folder(parent: Path) -> str:
    """A folder the walk cannot list: permissions where they apply, else (as root, whom permissions
    do not stop) a folder nested deeper than PATH_MAX, made through directory descriptors. Returns
    its top folder's name."""
    if os.geteuid() != 0:
        locked = parent / "locked"
        locked.mkdir()
        shutil.copy(next(parent.rglob("*.mp4")), locked / "x.mp4")
        locked.chmod(0)
        return "locked"
    fd = os.open(parent, os.O_RDONLY)
    try:
        for k in range(20):  # 20 x 243 characters > PATH_MAX (4096)
            name = f"{k:02d}" + "d" * 240
            os.mkdir(name, dir_fd=fd)
            deeper = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = deeper
    finally:
        os.close(fd)
    return "00" + "d" * 240


def test_hidden_linked_and_unreadable_entries_are_counted(raw: Path, tmp_path: Path) -> None:
    clip = next(raw.glob("1/*.mp4"))
    shutil.copy(clip, raw / "1" / ".hidden.mp4")
    (raw / ".cache").mkdir()
    shutil.copy(clip, raw / ".cache" / "x.mp4")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(clip, outside / "x.mp4")
    (raw / "4").symlink_to(outside)
    deep = _unreadable_folder(raw / "2")
    result = ingest(raw, tmp_path / "out")
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    skipped = stats["skipped_examples"]
    assert stats["skipped_entries"] == 4, skipped
    assert "1/.hidden.mp4 (hidden file)" in skipped and ".cache (hidden folder)" in skipped
    assert "4 (link to a folder, not followed)" in skipped
    assert any(s.startswith(f"2/{deep}") and "cannot be read" in s for s in skipped), skipped
    assert result.n_inputs == 6
    if os.geteuid() != 0:
        (raw / "2" / "locked").chmod(0o755)


def test_manifest_paths_are_checked_by_real_path(raw: Path, tmp_path: Path) -> None:
    clip = sorted(raw.glob("1/*.mp4"))[0]
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(clip, outside / "secret.mp4")
    (raw / "escape").symlink_to(outside)  # a link to a folder outside RAW_DIR
    (raw / "alias").symlink_to(raw / "1")  # a second name for a folder inside it
    shutil.copy(clip, raw / "2" / "copy.mp4")  # the same bytes under another id
    rows = [
        {"path": "1/" + clip.name, "label": "1"},
        {"path": "alias/" + clip.name, "label": "2"},
        {"path": "escape/secret.mp4", "label": "3"},
        {"path": "2/copy.mp4", "label": "2"},
    ]
    out = tmp_path / "out"
    ingest(raw, out, _write_manifest(tmp_path / "m.csv", rows))
    ids = set(manifest_rows(out))
    assert ids == {"1/" + clip.name, "2/copy.mp4"}
    reasons = {f["file"]: f["reason"] for f in IngestDir(out).read_failures()}
    assert "outside the raw directory" in reasons["escape/secret.mp4"]
    assert "same file as" in reasons["alias/" + clip.name]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["same_content_examples"] == [sorted(["1/" + clip.name, "2/copy.mp4"])]


# -------------------------------------------------------------------- low: rich markup in paths


@pytest.mark.slow
def test_user_text_is_printed_literally(raw: Path, tmp_path: Path) -> None:
    (raw / "1" / "broken.mp4").write_bytes(b"not a video")  # a failure: its warning names the output folder

    def squeezed(text: str) -> str:
        return "".join(text.split())  # rich wraps long paths anywhere

    for name in ("o[/]x", "o[bold red]y"):
        out = tmp_path / name
        proc = cli("ingest", str(raw), "--out", str(out), "--workers", "1")  # the summary table's title
        assert proc.returncode == 0, proc.stderr
        assert squeezed(f"ingest -> {out}") in squeezed(proc.stderr) and proc.stdout.strip() == str(out)
        assert squeezed(f"reasons in {out}/failures.jsonl") in squeezed(proc.stderr)  # a warning
        proc = cli("ingest", str(raw), "--out", str(out), "--workers", "1", "--size", "32", "--overwrite")
        assert proc.returncode == 0, proc.stderr
        assert squeezed(f"removing the previous ingest output in {out}") in squeezed(proc.stderr)  # a log line


# ------------------------------------------------------------- low: resume artefacts that heal


def test_a_damaged_shard_is_decoded_again_on_resume(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ingest(raw, out, shard_size=2)
    reference = tree(out / "shards")
    shard = out / "shards" / "shard-00001.arrow"
    data = bytearray(shard.read_bytes())
    data[-24:] = bytes(24)  # a clobbered footer: same size, unreadable
    shard.write_bytes(bytes(data))
    assert ingest(raw, out, shard_size=2).chunks_written == 1
    shard.write_bytes(reference["shard-00001.arrow"][:1000])  # truncated
    assert ingest(raw, out, shard_size=2).chunks_written == 1
    assert tree(out / "shards") == reference
    IngestDir(out).read_media()  # readable end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store-format ingest scored by the built-in scorer (tiny: 2 folds, 1 epoch)."""
    ingest_dir = make_ingest_dir(tmp_path_factory.mktemp("trained") / "ingest", n=24, with_features=False)
    _score_tiny(ingest_dir)
    return ingest_dir


def _score_tiny(ingest_dir: Path):
    from mmcurate.score import STAGE
    from mmcurate.score.config import ScoreConfig, ScoreStageConfig

    tiny = ScoreConfig(folds=2, epochs=1, repeats=1, batch_size=8)
    return STAGE.run(Workdir(ingest_dir.parent), ScoreStageConfig(ingest_dir=ingest_dir, scorer_settings=tiny))


def test_a_corrupt_training_result_is_trained_again(trained: Path) -> None:
    store = IngestDir(trained)
    before = store.read_scores()
    part = next(store.path.glob("score_runs/*/fold1-visual.npz"))
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    part.write_bytes(bytes(data))
    _score_tiny(trained)
    folds = store.read_scores_meta()["metrics"]["folds"]
    assert [f["modality"] + str(f["fold"]) for f in folds if not f["resumed"]] == ["visual1"]
    assert store.read_scores().equals(before), "the redone job gives the same scores (deterministic)"


# ----------------------------------------------------------------------------- low: option nits


def test_input_manifest_with_a_bom_and_a_name_ending_in_a_space(raw: Path, tmp_path: Path) -> None:
    clip = sorted(raw.glob("3/*.mp4"))[0]
    clip.rename(raw / "3" / "clip.mp4 ")
    rows = [{"path": p.relative_to(raw).as_posix(), "label": p.parent.name} for p in sorted(raw.rglob("*.mp4*"))]
    manifest = tmp_path / "m.csv"
    _write_manifest(manifest, rows)
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())  # as Excel saves UTF-8
    out = tmp_path / "out"
    result = ingest(raw, out, manifest)
    assert result.n_failed == 0 and "3/clip.mp4 " in manifest_rows(out)


def test_many_more_frames_than_the_clip_has_says_so(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = mm(capsys, "ingest", str(raw), "--out", str(tmp_path / "out"), "--frames", "40", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["frames_repeated"] == 6
    assert "fewer frames than requested" in flat(proc.stderr)


# ------------------------------------------------------------------------------ low: permissions


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_follow_the_umask(raw: Path, tmp_path: Path, umask: int) -> None:
    out = tmp_path / "out"
    proc = cli("ingest", str(raw), "--out", str(out), "--workers", "1", umask=umask)
    assert proc.returncode == 0, proc.stderr
    for p in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        assert mode == want, f"{p.relative_to(tmp_path)}: {oct(mode)}, expected {oct(want)}"
