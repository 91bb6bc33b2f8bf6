"""``--distributed``: one model trained data-parallel by the processes of a torchrun launch (2 CPU
processes on gloo here): exact gradients, the single-process metrics format, accuracy within noise
of the single-process run, model selection on validation, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mmcurate.ingest import DecodeConfig, IngestConfig, run_ingest
from mmcurate.store import Workdir

pytestmark = pytest.mark.slow  # quick lane: python -m pytest -m 'not slow'

TESTS = Path(__file__).resolve().parents[1]  # tests/, where the helpers are
# --no-augment: under DDP each rank draws its own augmentation (its share of a batch), so with it the
# two runs would differ by augmentation noise as well; this compares the data-parallel training itself
SCORE = [
    "--repeats",
    "1",
    "--folds",
    "2",
    "--epochs",
    "5",
    "--width",
    "4",
    "--image-size",
    "16",
    "--audio-frames",
    "32",
    "--batch-size",
    "16",
    "--no-augment",
    "--no-save-scorers",
]
REEVAL = [
    "--methods",
    "ogm_ge",
    "--epochs",
    "4",
    "--width",
    "4",
    "--image-size",
    "16",
    "--batch-size",
    "16",
    "--device",
    "cpu",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "MMCURATE_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}


#: what a rank prints when gloo's runtime aborts it (SIGABRT from C++, not from the code under test);
#: seen in 5 of 25 runs of the DDP-step test under pytest on this torch, with the old test code too
GLOO_ABORT = "terminate called without an active exception"


def torchrun(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc-per-node 2 ARGS`` on this machine (loopback), as a user would launch it;
    launched again (up to 3 launches) when a rank died of gloo's abort: the last launch is the one judged
    (two aborts in a row were seen once, in a run of the test files together)."""
    for _ in range(3):
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "1",
            "--nproc-per-node",
            "2",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(_free_port()),
            *args,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout)
        if proc.returncode == 0 or GLOO_ABORT not in proc.stderr:
            break
    return proc


def mmcurate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmcurate", *args], capture_output=True, text=True, env=_env(), timeout=600
    )


def test_a_data_parallel_step_equals_the_single_process_step(tmp_path: Path) -> None:
    """Each rank's share of a 7-sample batch (4 and 3): DDP with the loss weight, and the averaging
    after gradient modulation, give the whole-batch gradient; ranks agree."""
    proc = torchrun(str(TESTS / "_ddp_step.py"), str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [(tmp_path / f"rank{k}.txt").read_text() for k in (0, 1)] == ["ok", "ok"]


@pytest.fixture(scope="module")
def shapes_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 synthetic clips of 6 shape/sound classes (learnable in a few CPU epochs), ingested."""
    from mmcurate.synth import generate_demo_dataset

    root = tmp_path_factory.mktemp("ddp")
    raw = generate_demo_dataset(root / "raw", n_per_class=20, seconds=1.0, size=32)
    run_ingest(Workdir(root / "work"), IngestConfig(raw_dir=raw, decode=DecodeConfig(size=32), workers=1))
    return root / "work"


@pytest.fixture(scope="module")
def scored_single(shapes_work: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-process scores (one thread per job): the reference, and the reeval tests' source."""
    work = tmp_path_factory.mktemp("single") / "work"
    shutil.copytree(shapes_work, work)
    proc = mmcurate("score", "--workdir", str(work), *SCORE, "--cpus-per-job", "1")
    assert proc.returncode == 0, proc.stderr
    return work


def _metrics(work: Path) -> dict:
    return json.loads((work / "ingest" / "scores.json").read_text())["metrics"]


@pytest.mark.slow
def test_score_under_torchrun_matches_the_single_process_run(
    shapes_work: Path, scored_single: Path, tmp_path: Path
) -> None:
    """About 40 s on 2 busy cores: two torch processes train 4 scorers together (the smallest run
    whose accuracy is far enough above chance to compare)."""
    single, ddp = scored_single, tmp_path / "ddp"
    shutil.copytree(shapes_work, ddp)
    proc = torchrun("-m", "mmcurate", "score", "--workdir", str(ddp), *SCORE, "--distributed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("scores.parquet") == 1  # rank 0 reports (and writes); rank 1 does not
    assert "data-parallel over 2 ranks" in proc.stderr
    a, b = _metrics(single), _metrics(ddp)
    assert a.keys() == b.keys() and [f.keys() for f in a["folds"]] == [f.keys() for f in b["folds"]]
    assert json.loads((ddp / "ingest" / "scores.json").read_text())["execution"]["ranks"] == 2
    # 60 held-out clips per fold, 6 classes (chance 0.17): the audio scorer learns in both, by about as much
    assert a["oof_accuracy_audio"] > 0.4 and b["oof_accuracy_audio"] > 0.4, (a, b)
    assert abs(a["oof_accuracy_audio"] - b["oof_accuracy_audio"]) <= 0.15, (a, b)
    assert abs(a["oof_accuracy_visual"] - b["oof_accuracy_visual"]) <= 0.2, (a, b)


@pytest.mark.slow
def test_reeval_under_torchrun_matches_the_single_process_run(scored_single: Path, tmp_path: Path) -> None:
    """About 50 s on 2 busy cores: OGM-GE (gradient modulation after backward, so the ranks' gradients
    are averaged after it) trained once in one process and once by two."""
    source = str(scored_single / "ingest")  # reeval reads ingest + scores
    proc = mmcurate("reeval", source, "--out", str(tmp_path / "single"), *REEVAL)
    assert proc.returncode == 0, proc.stderr
    proc = torchrun("-m", "mmcurate", "reeval", source, "--out", str(tmp_path / "ddp"), *REEVAL, "--distributed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("results.json") == 1
    a, b = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("single", "ddp"))
    assert a.keys() == b.keys()
    for ra, rb in zip(a["runs"], b["runs"]):
        assert ra.keys() == rb.keys() and ra["method"] == rb["method"]
        assert [h.keys() for h in ra["history"]] == [h.keys() for h in rb["history"]]
        best = max(rb["history"], key=lambda h: (h["val_acc"], -h["val_loss"]))  # still chosen on validation
        assert rb["best_epoch"] == best["epoch"]
        assert abs(ra["test"]["accuracy"]["overall"] - rb["test"]["accuracy"]["overall"]) <= 0.25, (
            ra["test"],
            rb["test"],
        )
        assert rb["test"]["accuracy"]["overall"] > 0.4
