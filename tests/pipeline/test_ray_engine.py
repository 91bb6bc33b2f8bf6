"""``--engine ray``: the same bytes as the local engine, and a worker that dies costs its unit only.

One Ray instance for the whole module (starting one costs seconds): 2 CPUs, loopback only, no
dashboard. The stages run in this process and find it through ``ray.is_initialized()``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import write_av_digits_manifest

from mmcurate.common.errors import MMCurateError
from mmcurate.execution import ExecutionConfig, WorkUnit
from mmcurate.ingest import DecodeConfig, IngestConfig, run_ingest
from mmcurate.reeval.config import ReevalConfig
from mmcurate.reeval.runner import run_reeval_stage
from mmcurate.score import ScoreConfig, ScoreStageConfig, run_score
from mmcurate.store import Workdir

pytestmark = pytest.mark.slow  # quick lane: python -m pytest -m 'not slow'

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'mmcurate[ray]')")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module

RAY = ExecutionConfig(engine="ray")
LOCAL = ExecutionConfig()
TINY_SCORE = ScoreConfig(
    repeats=1, folds=2, epochs=2, avg_last=1, width=4, image_size=16, audio_frames=32, device="cpu"
)
TASK_TITLE = "ray::mmcurate-job"


@pytest.fixture(scope="module", autouse=True)
def ray_instance() -> Iterator[None]:
    ray.init(
        num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False
    )
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> Iterator[None]:
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def inputs(av_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """70 real av_digits clips (10 of each container family) listed in an input manifest."""
    return write_av_digits_manifest(av_digits, tmp_path_factory.mktemp("ray_inputs") / "inputs.csv", per_format=10)


def _ingest(av_digits: Path, inputs: Path, work: Path, execution: ExecutionConfig) -> None:
    cfg = IngestConfig(
        raw_dir=av_digits,
        manifest=inputs,
        group_column="speaker",
        execution=execution,
        decode=DecodeConfig(size=32, shard_size=8),
    )
    run_ingest(Workdir(work), cfg)


def _digests(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


INGEST_OUTPUTS = ("manifest.parquet", "failures.jsonl", "classes.json")


def _ingest_digests(work: Path) -> dict[str, str]:
    d = _digests(work / "ingest")
    return {k: v for k, v in d.items() if k in INGEST_OUTPUTS or k.startswith(("shards/", "chunks/"))}


@pytest.fixture(scope="module")
def local_ingest(av_digits: Path, inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("local") / "work"
    _ingest(av_digits, inputs, work, LOCAL)
    return work


class WorkerKiller:
    """Kills (SIGKILL) the first Ray worker seen running one of our tasks, from outside, as an OOM killer would."""

    def __init__(self) -> None:
        self.killed: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    #: a worker must show the task's title on two scans this far apart: a task seen only once may
    #: be one that has just returned its result (Ray resets the title a moment after), and killing
    #: that worker would cost no unit
    SEEN_FOR = 0.02

    def _run(self) -> None:
        first_seen: dict[int, float] = {}
        while not self._stop.is_set() and self.killed is None:
            now = time.monotonic()
            running = set()
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                except OSError:
                    continue
                if title.startswith(TASK_TITLE):
                    running.add(int(pid))
            first_seen = {pid: first_seen.get(pid, now) for pid in running}
            for pid, since in first_seen.items():
                if now - since >= self.SEEN_FOR:
                    os.kill(pid, signal.SIGKILL)
                    self.killed = pid
                    return
            time.sleep(0.005)


def test_ingest_on_ray_writes_the_local_bytes(
    av_digits: Path, inputs: Path, local_ingest: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    _ingest(av_digits, inputs, work, RAY)
    expected = _ingest_digests(local_ingest)
    assert len([k for k in expected if k.startswith("shards/")]) == 9
    assert _ingest_digests(work) == expected


def test_a_killed_worker_is_retried_and_nothing_is_lost(
    av_digits: Path, inputs: Path, local_ingest: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    with WorkerKiller() as killer:
        _ingest(av_digits, inputs, work, RAY)
    assert killer.killed is not None, "no worker was seen running a task"
    assert _ingest_digests(work) == _ingest_digests(local_ingest)


def test_a_unit_whose_worker_died_is_redone_by_a_rerun_under_the_other_engine(
    av_digits: Path, inputs: Path, local_ingest: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    with WorkerKiller() as killer, pytest.raises(MMCurateError) as err:
        _ingest(av_digits, inputs, work, ExecutionConfig(engine="ray", task_retries=0))
    assert killer.killed is not None
    assert "1 of 9 work unit(s) failed" in str(err.value) and "rerun" in str(err.value)
    assert "\n" not in str(err.value)
    # the dead worker cost its unit only: every other shard and marker is written, no manifest yet
    assert len(list((work / "ingest" / "chunks").glob("*.json"))) == 8
    assert not (work / "ingest" / "manifest.parquet").exists()
    _ingest(av_digits, inputs, work, LOCAL)
    assert _ingest_digests(work) == _ingest_digests(local_ingest)


def test_executor_yields_units_in_order_and_reraises_a_bad_input_error() -> None:
    from mmcurate.execution.ray import RayExecutor

    units = [WorkUnit(f"u{i}", i, tuple(range(i * 5, i * 5 + 5))) for i in range(4)]
    out = list(RayExecutor(cpus=1).map_units(_square, units))
    assert [u.key for u, _ in out] == ["u0", "u1", "u2", "u3"]
    assert [r for _, rs in out for r in rs] == [x * x for x in range(20)]
    with pytest.raises(MMCurateError, match="bad item 7"):
        list(RayExecutor(cpus=1).map_units(_refuse_seven, units))


def _square(x: int) -> int:
    return x * x


def _refuse_seven(x: int) -> int:
    if x == 7:
        raise MMCurateError("bad item 7")
    return x


def test_score_on_ray_writes_the_local_bytes(local_ingest: Path, tmp_path: Path) -> None:
    """One Ray task per (fold, modality) job, the decoded inputs in the object store once."""
    digests = {}
    for name, execution in (
        ("local", ExecutionConfig(cpus_per_job=1)),
        ("ray", ExecutionConfig(engine="ray", cpus_per_job=1)),
    ):
        work = tmp_path / name
        shutil.copytree(local_ingest, work)
        result = run_score(Workdir(work), ScoreStageConfig(scorer_settings=TINY_SCORE, execution=execution))
        assert result.finished
        digests[name] = _digests(work / "ingest" / "score_runs") | {
            "scores.parquet": hashlib.sha256((work / "ingest" / "scores.parquet").read_bytes()).hexdigest()
        }
    assert len(digests["local"]) == 9  # 4 jobs x (result + marker) + scores
    assert digests["ray"] == digests["local"]


def test_reeval_on_ray_writes_the_local_tables(tmp_path: Path, small_export: Path) -> None:
    """Each (method, seed) run a Ray task; every output but the timings is the same bytes."""
    outputs = {}
    for name, execution in (("local", LOCAL), ("ray", RAY)):
        cfg = ReevalConfig(
            source=str(small_export),
            out=tmp_path / name,
            methods="joint,ogm_ge",
            seeds="0,1",
            epochs=2,
            width=4,
            image_size=16,
            batch_size=16,
            device="cpu",
            execution=execution,
        )
        run_reeval_stage(Workdir(tmp_path / "w"), cfg)
        outputs[name] = _digests(tmp_path / name, skip=("timings.json", "timing.json"))
    assert "runs/ogm_ge/seed1/predictions.parquet" in outputs["local"] and "results.json" in outputs["local"]
    assert outputs["ray"] == outputs["local"]


@pytest.fixture(scope="module")
def small_export(av_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from _reeval_fixtures import DIGITS, av_digits_rows, write_balanced_export

    rows = av_digits_rows(av_digits, {"train": 4, "val": 2, "test": 2})
    return write_balanced_export(rows, DIGITS, tmp_path_factory.mktemp("ray_avd") / "balanced")
