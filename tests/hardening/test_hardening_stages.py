"""The second adversarial round (issue 22), stage side: races, half states, planted files, what is
published, the browse server, hand-made launch environments, shared recipes, temporary names.

Each test is one attack tried the way a hostile (or unlucky) user would, on real parts: real
ingests of av_digits clips or the store-format fixture, the real CLI, real flocks held as a live
run holds them, a real trickling HTTP server, the local Hub-compatible server, real sockets.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from _fixtures_ingest import make_ingest_dir
from _hub_fixtures import run_mmcurate
from hub_server import HubServer, hub_env
from test_hardening import ENV, cli, make_raw, mm, one_line_error, tree, write_scores_csv

from mmcurate.store import BalancedDir, IngestDir
from mmcurate.store.lock import folder_lock

# ------------------------------------------------------------------------------------------ helpers


def scored_work(root: Path, n: int = 30, seed: int = 0, capsys: pytest.CaptureFixture[str] | None = None) -> Path:
    """A store-format ingest with imported scores in ROOT/work/ingest; returns the work directory."""
    ingest_dir = make_ingest_dir(root / "work" / "ingest", n=n, with_features=False, seed=seed)
    proc = cli("score", str(ingest_dir), "--scores-from", str(write_scores_csv(ingest_dir, root / f"s{seed}.csv")))
    assert proc.returncode == 0, proc.stderr
    return root / "work"


def real_pool(raw: Path, out: Path, scores: Path, *args: str) -> Path:
    """RAW ingested for real into OUT (one worker, 32 px unless ARGS say otherwise) and scored by import."""
    size = () if "--size" in args else ("--size", "32")
    proc = cli("ingest", str(raw), "--out", str(out), "--workers", "1", *size, *args)
    assert proc.returncode == 0, proc.stderr
    proc = cli("score", str(out), "--scores-from", str(write_scores_csv(out, scores)))
    assert proc.returncode == 0, proc.stderr
    return out


# ---------------------------------------------------------------------------------- export: a lock


@pytest.mark.slow
def test_export_holds_its_output_and_a_second_export_is_refused(tmp_path: Path) -> None:
    from mmcurate.formats.export import export_lock

    work = scored_work(tmp_path)
    assert cli("balance", "--workdir", str(work), "--bins", "2").returncode == 0
    out = tmp_path / "bmm"
    holder = export_lock(out).acquire()  # a live export of that folder (a real flock, seen by other processes)
    try:
        line = one_line_error(cli("export", "--workdir", str(work), "--out", str(out)))
        assert "in use by another mmcurate run" in line
        assert not out.exists() and not out.with_name(".bmm.partial").exists(), "a refused export wrote"
    finally:
        holder.release()
    proc = cli("export", "--workdir", str(work), "--out", str(out))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_two_exports_started_together_never_both_write(tmp_path: Path) -> None:
    """Two real `mmcurate export` processes into one folder at once: one is refused or waits its turn; the
    folder ends complete, every annotated clip with its HDF5 and .pkl."""
    work = scored_work(tmp_path, n=60)
    assert cli("balance", "--workdir", str(work), "--bins", "2").returncode == 0
    out = tmp_path / "bmm"
    argv = [sys.executable, "-m", "mmcurate", "export", "--workdir", str(work), "--out", str(out), "--chunk-size", "2"]
    procs = [subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    for code, err in results:
        if code == 2:
            assert "in use by another mmcurate run" in err and "Traceback" not in err
    doc = json.loads((out / "annotations.json").read_text())
    for clip in doc["database"]:
        assert (out / "visual" / f"{clip}.hdf5").is_file() and (out / "audio" / f"{clip}.pkl").is_file()


# ------------------------------------------------------------------------- planted saved scorers


@pytest.fixture(scope="module")
def seed_scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store-format ingest scored for real by the built-in scorer (tiny), with its saved scorers."""
    ingest_dir = make_ingest_dir(tmp_path_factory.mktemp("seed") / "ingest", n=24, with_features=False)
    proc = cli("score", str(ingest_dir), "--folds", "2", "--epochs", "1", "--batch-size", "8")
    assert proc.returncode == 0, proc.stderr
    return ingest_dir


class _RunsCode:
    """Unpickling it runs code (writes a file): what a planted checkpoint does."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __reduce__(self):  # noqa: ANN204
        return (exec, (f"open({str(self.flag)!r}, 'w').write('ran')",))


@pytest.mark.slow
def test_a_planted_scorer_checkpoint_is_refused_and_never_run(
    seed_scored: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scorer_id = json.loads((seed_scored / "scores.json").read_text())["scorer_id"]
    folder = seed_scored.parent / "planted"
    shutil.copytree(seed_scored, folder)
    target = IngestDir(folder).scorers(scorer_id) / "audio.pt"
    flag = tmp_path / "code-ran"
    target.write_bytes(pickle.dumps(_RunsCode(flag)))
    candidates = make_ingest_dir(tmp_path / "cand", n=6, with_features=False, seed=7)
    line = one_line_error(mm(capsys, "score", str(folder), "--candidates", str(candidates)))
    assert "audio.pt" in line and "not a plain weights file" in line, line
    assert not flag.exists(), "loading the saved scorer ran the planted code"

    import torch  # a weights-only file of the wrong shape (huge width, no checkpoints) is refused too

    with open(target, "wb") as fh:
        torch.save({"num_classes": 3, "width": 10**9, "audio_stats": [0.0, 1.0], "checkpoints": "x"}, fh)
    line = one_line_error(mm(capsys, "score", str(folder), "--candidates", str(candidates)))
    assert "not a saved scorer" in line


def test_saved_scorers_have_the_same_bytes_for_the_same_inputs(tmp_path: Path) -> None:
    from mmcurate.score.scorers import merge_members, model_file, save_member
    from mmcurate.score.train import FitResult

    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(2, np.float32)}  # as training returns
    res = FitResult(
        probs=np.zeros((1, 2)),
        held_true=np.zeros((1, 1), np.float32),
        epochs=np.array([0, 1]),
        train_true=np.zeros((2, 1), np.float32),
        losses=np.zeros(2),
        checkpoints=[state, state],
        audio_stats=(0.5, 2.0),
    )
    for name in ("a", "b"):  # each write goes through its own temporary file of a random name
        for fold in (0, 1):
            save_member(tmp_path / name / "members" / f"audio-fold{fold}.pt", res, "audio", 2, 8, seed=3 + fold)
        merge_members(tmp_path / name, "audio", range(2))
    for part in ("members/audio-fold0.pt", "audio.pt"):
        assert (tmp_path / "a" / part).read_bytes() == (tmp_path / "b" / part).read_bytes()
    assert model_file(tmp_path / "a", "audio").is_file()


# ------------------------------------------------------------------ push against a trickling server


@pytest.mark.slow
def test_push_to_a_server_that_trickles_its_answer_ends_within_the_timeout(tmp_path: Path) -> None:
    from _hub_fixtures import build_export

    exported = build_export(tmp_path / "exp", n=12)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    open_conns: list[socket.socket] = []

    def trickle(conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"x" * 600:
                conn.sendall(bytes([byte]))  # one byte a second: no single wait ever reaches --timeout
                time.sleep(1)
        except OSError:
            pass

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            open_conns.append(conn)
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    env = {
        "HF_ENDPOINT": f"http://127.0.0.1:{server.getsockname()[1]}",
        "HF_TOKEN": "hf_" + "x" * 30,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
    }
    try:
        started = time.monotonic()
        proc = cli(
            "push", "--workdir", str(exported.workdir), "--repo-id", "org/name", "--timeout", "3", env=env, timeout=90
        )
        took = time.monotonic() - started
    finally:
        server.close()
        for c in open_conns:
            c.close()
    line = one_line_error(proc)
    assert "answered too slowly" in line and "--timeout" in line, line
    # the interpreter and the hub client take a few seconds to start; the request itself is cut at 3 s
    assert took < 3 + 15, f"a trickling endpoint held push for {took:.0f} s"


# ------------------------------------------------------------------------- half states (one generation)


@pytest.fixture()
def rebalanced(tmp_path: Path) -> tuple[Path, BalancedDir, dict[str, bytes]]:
    """`balance --bins 5` done, then what `balance --bins 4` leaves when killed after it wrote its new
    selection: the export marker removed (the first thing a balance does), the new selection.parquet
    (the bytes a complete `--bins 4` run writes), the --bins 5 run's balance.json, data/, hf/, card."""
    work = scored_work(tmp_path, n=48)
    assert cli("balance", "--workdir", str(work), "--bins", "5").returncode == 0
    balanced = BalancedDir(work / "balanced")
    done = tree(balanced.path)
    other = tmp_path / "other"
    assert cli("balance", "--workdir", str(work), "--bins", "4", "--out", str(other)).returncode == 0
    assert (other / "selection.parquet").read_bytes() != done["selection.parquet"]
    balanced.invalidate_export()
    shutil.copy(other / "selection.parquet", balanced.selection_path)
    return work, balanced, done


@pytest.mark.slow
def test_a_balance_killed_after_its_selection_is_consumed_by_no_stage(
    rebalanced: tuple[Path, BalancedDir, dict[str, bytes]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, balanced, _ = rebalanced
    for argv, expect in (
        (("export", "--workdir", str(work), "--out", str(tmp_path / "bmm")), "selection.parquet"),
        (("browse", str(balanced.path), "--no-media"), "selection.parquet"),
        (("reeval", str(balanced.path), "--methods", "audio_only", "--epochs", "1", "--out", str(tmp_path / "r")), ""),
        (("push", "--workdir", str(work), "--repo-id", "org/name", "--dry-run"), "export.json"),
    ):
        line = one_line_error(mm(capsys, *argv))
        assert expect in line, (argv[0], line)
    assert not (tmp_path / "bmm").exists() and not (balanced.path / "browse" / "index.html").exists()
    assert not (tmp_path / "r" / "results.csv").exists()


@pytest.mark.slow
def test_a_balance_killed_before_its_export_leaves_nothing_to_train_or_push(
    rebalanced: tuple[Path, BalancedDir, dict[str, bytes]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed one step later: the new selection and its balance.json are written, the export is not (the
    --bins 5 run's data/ and hf/ are still there, its marker is gone). The selection is one generation, so
    the stages that read only it go on; the data/ beside it is not, so reeval and push refuse it."""
    work, balanced, _ = rebalanced
    meta = json.loads((tmp_path / "other" / "balance.json").read_text())
    balanced.write_meta({k: v for k, v in meta.items() if k != BalancedDir.SELECTION_ENTRY})
    argv = ("reeval", str(balanced.path), "--methods", "audio_only", "--epochs", "1", "--out", str(tmp_path / "r"))
    line = one_line_error(mm(capsys, *argv))
    assert "export.json" in line and "did not finish" in line, line
    assert not (tmp_path / "r" / "results.csv").exists()
    line = one_line_error(mm(capsys, "push", "--workdir", str(work), "--repo-id", "org/name", "--dry-run"))
    assert "export.json" in line
    assert mm(capsys, "browse", str(balanced.path), "--no-media").returncode == 0


@pytest.mark.slow
def test_an_export_is_refused_once_its_selection_or_settings_changed(
    rebalanced: tuple[Path, BalancedDir, dict[str, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The marker of the --bins 5 export back in place (a copy restored, a marker from another run): data/
    and the card describe the old selection, so push and reeval refuse them."""
    work, balanced, done = rebalanced
    balanced.marker_path.write_bytes(done["export.json"])
    line = one_line_error(mm(capsys, "push", "--workdir", str(work), "--repo-id", "org/name", "--dry-run"))
    assert "selection.parquet" in line and "not the one this export was made from" in line, line
    balanced.selection_path.write_bytes(done["selection.parquet"])  # the old selection, the old export
    assert balanced.verify_export()
    meta = json.loads(balanced.meta_path.read_text())
    meta["bin_edges"] = [-1.0, 0.0, 1.0]  # other bin edges beside the same selection
    balanced.meta_path.write_text(json.dumps(meta))
    line = one_line_error(mm(capsys, "push", "--workdir", str(work), "--repo-id", "org/name", "--dry-run"))
    assert "balance.json" in line, line


@pytest.mark.slow
def test_export_and_browse_refuse_an_ingest_that_changed_since_balance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = scored_work(tmp_path)
    assert cli("balance", "--workdir", str(work), "--bins", "2").returncode == 0
    shutil.rmtree(work / "ingest")
    make_ingest_dir(work / "ingest", n=30, with_features=False, seed=9)  # same ids, other clips
    for argv in (
        ("export", "--workdir", str(work), "--out", str(tmp_path / "bmm")),
        ("browse", str(work / "balanced"), "--no-media"),
    ):
        line = one_line_error(mm(capsys, *argv))
        assert "the ingest changed since" in line, line


@pytest.mark.slow
def test_scores_from_two_scoring_runs_are_not_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """scores.parquet of one run beside the scores.json of another (a scoring killed between the two)."""
    work = scored_work(tmp_path)
    ingest = IngestDir(work / "ingest")
    old_meta = (ingest.path / "scores.json").read_bytes()
    other = write_scores_csv(ingest.path, tmp_path / "other.csv", seed=5)
    assert cli("score", str(ingest.path), "--scores-from", str(other)).returncode == 0
    (ingest.path / "scores.json").write_bytes(old_meta)
    assert ingest.scores_state().startswith("stale: scores.parquet is not the table scores.json describes")
    for argv in (("browse", str(ingest.path), "--no-media"), ("report", str(ingest.path))):
        line = one_line_error(mm(capsys, *argv))
        assert "scores.parquet" in line and "not the table scores.json describes" in line, line


@pytest.mark.slow
def test_an_ingest_killed_part_way_is_not_read_as_one(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rerun that rewrote a shard (one input replaced) and was killed before its manifest: the old
    manifest beside the new shard. Reading media through it is refused, as are a class list or settings
    of another run beside the manifest."""
    out = tmp_path / "ingest"
    assert cli("ingest", str(raw), "--out", str(out), "--workers", "1", "--size", "32").returncode == 0
    store = IngestDir(out)
    old_manifest = store.manifest_path.read_bytes()
    clip = sorted(raw.glob("1/*.mp4"))[0]
    shutil.copy(sorted(raw.glob("2/*.mp4"))[-1], clip)  # the same name, other content: its shard is redone
    assert cli("ingest", str(raw), "--out", str(out), "--workers", "1", "--size", "32").returncode == 0
    new_manifest = store.manifest_path.read_bytes()
    store.manifest_path.write_bytes(old_manifest)
    line = one_line_error(mm(capsys, "browse", str(out), "--out", str(tmp_path / "site")))
    assert "shard-00000.arrow" in line and "another ingest run than manifest.parquet" in line, line

    store.manifest_path.write_bytes(new_manifest)
    classes = json.loads((out / "classes.json").read_text())
    (out / "classes.json").write_text(json.dumps(classes[::-1]))  # a class list of another run
    line = one_line_error(mm(capsys, "browse", str(out), "--out", str(tmp_path / "site2")))
    assert "classes.json" in line and "not the class list manifest.parquet was made with" in line, line


@pytest.fixture()
def raw(av_digits: Path, tmp_path: Path) -> Path:
    return make_raw(av_digits, tmp_path)


# ------------------------------------------------------------------------------- pools: copies, settings


@pytest.fixture()
def two_raw(av_digits: Path, tmp_path: Path) -> tuple[Path, Path]:
    """RAW A (4 clips of each of 3 labels) and RAW B: 3 clips of its own per label plus a byte-identical
    copy of A's first two clips of each label under new names."""
    a = make_raw(av_digits, tmp_path / "a", per_label=4)
    src = av_digits / "mp4_h264_aac"
    b = tmp_path / "b" / "raw"
    for label in ("1", "2", "3"):
        (b / label).mkdir(parents=True)
        for p in sorted(src.glob(f"{label}_*.mp4"))[4:7]:
            shutil.copy(p, b / label / p.name)
        for k, p in enumerate(sorted((a / label).glob("*.mp4"))[:2]):
            shutil.copy(p, b / label / f"copy{k}_{p.name}")
    return a, b


@pytest.mark.slow
def test_byte_identical_clips_in_two_pools_are_refused_or_dropped(
    two_raw: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_raw
    pa_ = real_pool(a, tmp_path / "pa", tmp_path / "sa.csv")
    pb = real_pool(b, tmp_path / "pb", tmp_path / "sb.csv")
    argv = ("balance", "--pool", str(pa_), "--pool", str(pb), "--bins", "2", "--split", "50/25/25")
    out = tmp_path / "balanced"
    line = one_line_error(mm(capsys, *argv, "--out", str(out)))
    assert "6 clip(s) are byte-identical copies" in line and "copy0_" in line and "--drop-duplicates" in line, line
    assert not (out / "selection.parquet").exists()

    proc = mm(capsys, *argv, "--out", str(out), "--drop-duplicates")
    assert proc.returncode == 0, proc.stderr
    assert "6 byte-identical copies of other clips left out" in " ".join(proc.stderr.split())
    selection = pq.read_table(out / "selection.parquet").to_pylist()
    sha = {}
    for pool in (pa_, pb):
        sha.update({(pool.name, r["sample_id"]): r["sha256"] for r in IngestDir(pool).read_manifest().to_pylist()})
    chosen = [sha[(r["pool"], r["sample_id"])] for r in selection]
    assert len(chosen) == len(set(chosen)), "a clip is in the balanced set twice"
    assert not any(r["sample_id"].split("/")[1].startswith("copy") for r in selection)
    assert "6 byte-identical copies" in (out / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setting", "value"), [("--sample-rate", "8000"), ("--frames", "1"), ("--size", "64")], ids=lambda x: str(x)
)
def test_pools_ingested_with_different_settings_are_not_mixed(
    two_raw: tuple[Path, Path], tmp_path: Path, setting: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_raw
    for p in b.rglob("copy*"):
        p.unlink()
    pa_ = real_pool(a, tmp_path / "pa", tmp_path / "sa.csv")
    pb = real_pool(b, tmp_path / "pb", tmp_path / "sb.csv", setting, value)
    out = tmp_path / "balanced"
    line = one_line_error(
        mm(capsys, "balance", "--pool", str(pa_), "--pool", str(pb), "--bins", "2", "--out", str(out))
    )
    assert f"different {setting}" in line and value in line, line
    assert not (out / "selection.parquet").exists()


# ---------------------------------------------------------------- nothing published names the machine


@pytest.mark.slow
def test_nothing_published_carries_the_machines_paths(
    two_raw: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two real pools (one ingested from an input manifest, both with a class file, given by absolute paths),
    balanced together and pushed to the local Hub; one balanced alone, browsed and exported for BalanceMM. No
    uploaded or published file holds the machine's absolute paths (balance.json and config.json are local
    bookkeeping: the stages find each other by them)."""
    a, b = two_raw
    for p in b.rglob("copy*"):
        p.unlink()
    manifest = tmp_path / "inputs.csv"
    rows = [f"{p.relative_to(b).as_posix()},{p.parent.name}\n" for p in sorted(b.rglob("*.mp4"))]
    manifest.write_text("path,label\n" + "".join(rows))
    classes = tmp_path / "classes.txt"
    classes.write_text("1\n2\n3\n")
    pa_ = real_pool(a, tmp_path / "pa", tmp_path / "sa.csv", "--classes", str(classes))
    pb = real_pool(b, tmp_path / "pb", tmp_path / "sb.csv", "--manifest", str(manifest), "--classes", str(classes))
    work, alone = tmp_path / "work", tmp_path / "alone"
    for argv in (
        ("balance", "--pool", str(pb), "--pool", str(pa_), "--bins", "2", "--out", str(work / "balanced")),
        ("balance", str(pb), "--bins", "2", "--out", str(alone / "balanced")),
        ("browse", str(alone / "balanced")),
        ("export", "--workdir", str(alone), "--out", str(alone / "balancemm")),
    ):
        proc = mm(capsys, *argv)
        assert proc.returncode == 0, (argv, proc.stderr)
    with HubServer(tmp_path / "hub") as hub:
        proc = run_mmcurate(
            ["push", "--workdir", str(work), "--repo-id", "testorg/paths"], env=hub_env(hub.url, tmp_path / "h")
        )
        assert proc.returncode == 0, proc.stderr
        published = {
            f"hub:{path}": hub.state.file_bytes("dataset", "testorg/paths", path)
            for path in hub.state.head_files("dataset", "testorg/paths")
        }
    card = published["hub:README.md"].decode()
    assert any(k.startswith("hub:data/") for k in published)
    for folder in (work / "balanced", alone / "balanced", alone / "balancemm"):
        published.update({f"{folder}/{k}": v for k, v in tree(folder).items() if k != "balance.json"})
    machine = {str(tmp_path).encode(), os.path.realpath(tmp_path).encode()}
    leaks = sorted(name for name, data in published.items() if any(m in data for m in machine))
    assert not leaks, f"the machine's paths are in {leaks[:5]}"
    # named, not located: the configuration published next to the card (mmcurate.common.public_paths)
    config = published["hub:mmcurate_config.json"].decode()
    assert '"raw_dir": "<raw>"' in config and '"manifest": "inputs.csv"' in config, config
    assert "<raw>" in card


# ----------------------------------------------------------------------------- browse: the page, the server


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    from mmcurate.browse.build import BrowseOptions, build_site

    ingest_dir = make_ingest_dir(tmp_path / "@APP@" / "ingest", n=6, with_features=False)
    return build_site(ingest_dir, options=BrowseOptions(max_frames=1)).site


def test_a_work_directory_named_like_a_placeholder_stays_a_name(site: Path) -> None:
    from importlib import resources

    page = (site / "index.html").read_text()
    app = (resources.files("mmcurate.browse") / "assets" / "app.js").read_text()
    assert page.count(app) == 1, "the page's script was inserted again inside an inserted value"
    assert "<title>@APP@/ingest \u2014 mmcurate browse</title>" in page


def _request(port: int, raw: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _get(port: int, path: str, host: str | None = None) -> tuple[int, bytes]:
    host = host or f"127.0.0.1:{port}"
    return _request(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())


def test_the_browse_server_serves_the_site_and_nothing_else(
    site: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from mmcurate.browse.serve import make_server

    secret = tmp_path / "secret.txt"
    secret.write_text("the machine's secret\n")
    (site / "media" / "leak.txt").symlink_to(secret)
    (site / "leakdir").symlink_to(tmp_path)
    server = make_server(site, 0)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        capfd.readouterr()
        assert _get(port, "/index.html")[0] == 200
        assert _get(port, "/", host="localhost")[0] == 200  # the folder is its index page
        for host in ("evil.example", "evil.example:80", "127.0.0.1.nip.io", "attacker.test:" + str(port)):
            code, body = _get(port, "/index.html", host=host)
            assert code == 421 and b"<html" not in body.lower() and b"MMB" not in body, host
        for path in ("/media/leak.txt", "/leakdir/secret.txt", "/media/", "/data/", "/data/chunks"):
            code, body = _get(port, path)
            assert code == 404 and b"secret" not in body and b"<a href" not in body, path
        for path in ("/%00", "/index.html%00.js", "/%ff", "/..%2f..%2fsecret.txt"):
            code, body = _get(port, path)
            assert code == 400 and len(body.strip().splitlines()) == 1, (path, body)
        code, _ = _request(port, b"GET /index.html HTTP/1.1\r\nConnection: close\r\n\r\n")  # no Host at all
        assert code == 421
        printed = capfd.readouterr()
        assert "Traceback" not in printed.err + printed.out
    finally:
        server.shutdown()
        server.server_close()


def test_a_browse_build_holds_its_site(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holder = folder_lock(site).acquire(exclusive=True)  # a live build of that site
    try:
        line = one_line_error(mm(capsys, "browse", str(site.parent), "--out", str(site)))
        assert "in use by another mmcurate run" in line
    finally:
        holder.release()


# --------------------------------------------------------------------- a torchrun environment by hand


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "expect"),
    [
        ({"RANK": "1", "WORLD_SIZE": "1"}, "RANK=1 with WORLD_SIZE=1"),
        ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}, "rank 0 waited 3 s"),
        ({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}, "could not meet rank 0"),
        ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "busy": "1"}, "already in use"),
        ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not a whole number"),
    ],
    ids=["rank-outside-world", "no-peer", "no-rank-0", "busy-port", "not-a-number"],
)
def test_a_hand_made_launch_environment_ends_in_one_line(tmp_path: Path, env: dict[str, str], expect: str) -> None:
    ingest_dir = make_ingest_dir(tmp_path / "ingest", n=12, with_features=False)
    busy = env.pop("busy", None) is not None
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    if busy:
        holder.listen(1)  # another program holds MASTER_PORT
    else:
        holder.close()  # a free port: nobody listens there
    launch = {"MASTER_PORT": str(port), "MMCURATE_RENDEZVOUS_TIMEOUT": "3", **env}
    try:
        started = time.monotonic()
        proc = cli("score", str(ingest_dir), "--epochs", "1", "--folds", "2", "--distributed", env=launch, timeout=90)
        took = time.monotonic() - started
    finally:
        holder.close()
    line = one_line_error(proc)
    assert expect in line, line
    assert took < 60, f"the launch took {took:.0f} s to give up"
    assert not (ingest_dir / "scores.parquet").exists()


# ------------------------------------------------------------------------------ a shared recipe


def test_a_recipe_may_not_say_overwrite_for_a_users_folder(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "thesis"
    (mine / "data").mkdir(parents=True)
    (mine / "README.md").write_text("my thesis\n")
    (mine / "data" / "results.csv").write_text("a,b\n")
    before = tree(mine)
    recipe = tmp_path / "shared.yaml"
    recipe.write_text(f"source: {{raw_dir: {raw}}}\nbalance: {{out: {mine}, overwrite: true, bins: 2}}\n")
    work = str(tmp_path / "work")
    for extra in ((), ("--dry-run",)):
        line = one_line_error(mm(capsys, "run", str(recipe), "--workdir", work, *extra))
        assert "balance.overwrite" in line and "--set balance.overwrite=true" in line, line
    assert tree(mine) == before and not (tmp_path / "work").exists()

    plain = tmp_path / "plain.yaml"
    plain.write_text(f"source: {{raw_dir: {raw}}}\nbalance: {{out: {mine}, bins: 2}}\n")
    proc = mm(capsys, "run", str(plain), "--workdir", work, "--dry-run", "--set", "balance.overwrite=true")
    assert proc.returncode == 0, proc.stderr  # the command line may say it


def test_the_stages_a_recipe_may_not_overwrite_for_come_from_the_registry() -> None:
    """Every stage whose --overwrite claims someone's folder (its help says "folder") is refused in a recipe
    file; score's --overwrite only retrains its own results and stays allowed. The list was kept by hand
    once: a stage added to the registry with a folder-claiming --overwrite would have been let through."""
    from mmcurate.common.errors import MMCurateError
    from mmcurate.pipeline.trust import folder_claiming_sections, refuse_folder_overwrite
    from mmcurate.stages import REGISTRY, load_command

    def claims(name: str) -> bool:
        option = next((p for p in load_command(name).params if p.name == "overwrite"), None)
        return option is not None and "folder" in (getattr(option, "help", "") or "")

    assert set(folder_claiming_sections()) == {e.name for e in REGISTRY if claims(e.name)} == {
        "ingest", "report", "balance", "reeval"}  # fmt: skip
    refuse_folder_overwrite({"score": {"overwrite": True}}, "r.yaml")  # retraining is no claim on a folder
    with pytest.raises(MMCurateError, match="report.overwrite may not be set"):
        refuse_folder_overwrite({"report": {"overwrite": True}}, "r.yaml")


# --------------------------------------------------------------------------------- temporary names


@pytest.mark.slow
def test_temporary_names_never_take_a_users_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = scored_work(tmp_path)
    out = work / "balanced"
    out.mkdir()
    for name in ("notes.txt", ".tmp-export.notes", ".tmp-export.keep/a.txt"):  # the export's staging prefix
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("mine\n")
    mine = tree(out)
    for seed in ("0", "1"):  # the second run cleans the debris of earlier exports before it builds its own
        proc = mm(capsys, "balance", "--workdir", str(work), "--bins", "2", "--seed", seed, "--overwrite")
        assert proc.returncode == 0, proc.stderr
    assert {k: v for k, v in tree(out).items() if k in mine} == mine, "a user's file was deleted"

    bmm = tmp_path / "bmm"
    old = tmp_path / ".bmm.old"  # the name the export used to move a replaced output to, then delete
    old.mkdir()
    (old / "keep.txt").write_text("mine\n")
    assert mm(capsys, "export", "--workdir", str(work), "--out", str(bmm)).returncode == 0
    assert mm(capsys, "balance", "--workdir", str(work), "--bins", "2", "--seed", "2").returncode == 0
    proc = mm(capsys, "export", "--workdir", str(work), "--out", str(bmm))  # replaces the first export
    assert proc.returncode == 0 and "nothing to do" not in proc.stderr, proc.stderr
    assert (old / "keep.txt").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".bmm")) == [
        ".bmm.mmcurate.lock",
        ".bmm.old",
    ]

    partial = tmp_path / ".other.partial"  # the name of the export's staging folder, a user's folder
    (partial / "visual").mkdir(parents=True)
    (partial / "visual" / "mine.hdf5").write_text("mine\n")
    line = one_line_error(mm(capsys, "export", "--workdir", str(work), "--out", str(tmp_path / "other")))
    assert ".other.partial" in line and "not made by mmcurate" in line, line
    assert (partial / "visual" / "mine.hdf5").read_text() == "mine\n"


def test_a_browse_rebuild_keeps_a_users_folder_named_like_its_old_data(site: Path) -> None:
    from mmcurate.browse.build import build_site

    (site / ".tmp-data.old").mkdir()  # the name data/ used to be moved to (and deleted) on a rebuild
    (site / ".tmp-data.old" / "a.txt").write_text("mine\n")
    build_site(site.parent, site)
    assert (site / ".tmp-data.old" / "a.txt").read_text() == "mine\n"
