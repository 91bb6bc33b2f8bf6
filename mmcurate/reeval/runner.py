"""Run a whole re-evaluation: every method with every seed on one dataset, then the report.

This is what ``mmcurate reeval`` and a pipeline recipe call; it knows nothing about the
command line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from mmcurate.common.console import info, summary_table, warn
from mmcurate.common.errors import MMCurateError
from mmcurate.execution import TRAINING_IMPORTS, ExecutionConfig, WorkUnit, distributed, make_executor
from mmcurate.execution.device import describe_device, execution_device
from mmcurate.execution.distributed import SINGLE, Ranks
from mmcurate.execution.driver import Completion, UnitDriver, Written
from mmcurate.execution.local import processes_for
from mmcurate.reeval.config import ReevalConfig
from mmcurate.reeval.data import ReevalData
from mmcurate.reeval.data import resplit as resplit_data
from mmcurate.reeval.methods import METHODS, get_method
from mmcurate.reeval.report import PROTOCOL, write_report
from mmcurate.reeval.settings import TrainConfig
from mmcurate.reeval.sources import load_source, resolve_source
from mmcurate.reeval.split_audit import small_split_warnings
from mmcurate.reeval.timings import record_timings, time_table_rows
from mmcurate.reeval.trainer import (
    RunResult,
    cached_result,
    fit_run,
    run_dir_for,
    run_identity_hash,
    run_marker,
    write_predictions,
)
from mmcurate.store import Workdir
from mmcurate.store.lock import FileLock, folder_lock
from mmcurate.store.ownership import BOOKKEEPING, check_output_path, claim_locked


@dataclass
class ReevalOutcome:
    runs: list[RunResult]
    paths: dict[str, Path]
    data: ReevalData
    device: str


def check_methods(methods: list[str], cfg: TrainConfig) -> None:
    """Fail before any decoding when a method name, parameter or fusion combination is wrong."""
    if not methods:
        raise MMCurateError("--methods is empty; choose from " + ", ".join(METHODS))
    for name in methods:
        get_method(name, width=cfg.width, fusion=cfg.fusion, epochs=cfg.epochs, seed=0, **cfg.params_for(name))
    for name in cfg.method_params:
        if name not in METHODS:
            raise MMCurateError(f"--method-param names unknown method {name!r}; choose from {', '.join(METHODS)}")


def run_reeval_stage(workdir: Workdir, cfg: ReevalConfig) -> ReevalOutcome:
    """The ``mmcurate reeval`` stage: SOURCE (default WORKDIR/balanced) into ``cfg.out`` (default WORKDIR/reeval).

    ``--threads``: torch intra-op threads on CPU. One is the default: CPU-sized models gain little from
    more, and when other jobs share the cores, OpenMP threads that wait for each other at every layer made
    a training step 17x slower in our measurements.

    Each (method, seed) run is a work unit: finished ones (their completion marker matches) are
    reused, the others are mapped through the executor of ``--engine`` (locally one after the
    other, in this process; on Ray one task each, the data put in the object store once), and this
    process writes each run's predictions and marker, then the tables.
    """
    out_dir = Path(cfg.out or workdir.reeval_dir)
    check_output_path(out_dir)  # before minutes of loading, not after
    device = execution_device(cfg.device, cfg.execution)
    check_methods(cfg.method_list(), cfg.train_config(device.type))
    ranks = SINGLE
    if cfg.execution.distributed:
        ranks, device = distributed.start(device)
    # rank 0 owns the folder (the other ranks write nothing): checked and locked before any loading
    created = _missing_folders(out_dir)
    lock = claim_reeval_folder(out_dir, cfg.overwrite) if ranks.is_main else None
    try:
        return _run_reeval_locked(cfg, out_dir, workdir, device, ranks)
    except BaseException:
        if lock is not None:
            lock.release()
            lock = None
            _undo_claim(out_dir, created)
        raise
    finally:
        if lock is not None:
            lock.release()


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet (what claiming it creates), deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _undo_claim(out_dir: Path, created: list[Path]) -> None:
    """A run that failed before writing anything leaves no trace in folders it created: no lock file, no
    owner file, no empty ``mmcurate-work/reeval`` (a failed first try in an empty folder left them behind)."""
    if not created or not out_dir.is_dir() or {p.name for p in out_dir.iterdir()} - BOOKKEEPING:
        return
    for name in BOOKKEEPING:
        with contextlib.suppress(FileNotFoundError):
            (out_dir / name).unlink()
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


def claim_reeval_folder(out_dir: Path, overwrite: bool) -> FileLock:
    """Check that ``out_dir`` may hold reeval results, lock it, mark it as a reeval output.

    A non-empty folder that is not a reeval output (a project folder, an ingest or balanced
    output) is refused unless ``overwrite``; even then reeval writes only its own names. The lock
    refuses a second reeval on the same folder while this one runs."""

    def legacy() -> bool:  # a results.json that reeval wrote (a user's folder may well hold "runs/" or a results.*)
        try:
            doc = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        return isinstance(doc, dict) and doc.get("protocol") == PROTOCOL and "runs" in doc

    return claim_locked(out_dir, "reeval", overwrite, folder_lock(out_dir, f"reeval folder {out_dir}"), legacy=legacy)


@dataclass
class RunJob:
    """The per-unit function an executor maps over (method, seed) pairs: train, test, return the result
    and its predictions (the driver writes them)."""

    data: ReevalData
    cfg: TrainConfig
    out_dir: Path
    device: torch.device
    threads: int | None = None
    ranks: Ranks = SINGLE
    resplit: bool = False

    def data_for(self, seed: int) -> ReevalData:
        """The data a seed's runs train on (with ``--resplit``, the seed's own train/val draw)."""
        return resplit_data(self.data, seed) if self.resplit else self.data

    def __call__(self, key: tuple[str, int]) -> tuple[RunResult, pa.Table | None]:
        method, seed = key
        data = self.data_for(seed)
        before = torch.get_num_threads()
        if self.threads is not None and self.device.type == "cpu":
            torch.set_num_threads(self.threads)
        try:
            return fit_run(method, data, self.cfg, seed, self.out_dir, self.device, ranks=self.ranks)
        finally:
            torch.set_num_threads(before)


def _run_reeval_locked(
    cfg: ReevalConfig, out_dir: Path, workdir: Workdir | None, device: torch.device, ranks: Ranks
) -> ReevalOutcome:
    threads = cfg.execution.threads(cfg.threads)
    train, settings = cfg.train_config(device.type), cfg.tensor_settings(device.type)
    if device.type == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    kind, location = resolve_source(cfg.source, workdir)
    info(f"source: {location} ({kind})")
    data = load_source(kind, location, settings, bins=cfg.bins, cache_dir=cfg.cache_dir, scratch=out_dir)
    sizes = ", ".join(f"{n} {len(data.split(n))}" for n in ("train", "val", "test"))
    info(f"data: {len(data.classes)} classes; {sizes}; {data.split_note}")
    for note in data.notes:
        info(f"note: {note}")
    for line in small_split_warnings(data):  # before minutes of training, not after
        warn(f"reeval: {line}")
    device_text = describe_device(device)
    info(f"device: {device_text}; model width {train.width}, frames {settings.num_frames} x {settings.image_size} px")
    job = RunJob(data, train, out_dir, device, threads, ranks, cfg.resplit)
    runs = _train_all(job, cfg.method_list(), cfg.seed_list(), cfg.fresh, cfg.execution)
    if runs is None or not ranks.is_main:  # other array parts still owe runs; only rank 0 writes
        return ReevalOutcome(runs or [], {}, data, device_text)
    seeds, resplit = cfg.seed_list(), cfg.resplit
    run_settings: dict[str, Any] = {
        **train.to_dict(),
        **settings.to_dict(),
        "seeds": seeds,
        "methods": cfg.method_list(),
        "bins": cfg.bins,
        **({"resplit": True} if resplit else {}),
    }
    if resplit:
        data = dataclasses.replace(
            data,
            split_note=f"{data.split_note}; train/val re-drawn for every seed (stratified by bin and class, "
            "groups kept whole where known; test fixed)",
        )
    paths = write_report(out_dir, data, runs, run_settings, device.type)
    timings = record_timings(out_dir, runs, device_text)
    summary_table(
        "reeval: test accuracy (model chosen on validation)",
        ["method", "seed", "run", "best epoch", "val acc", "test acc", "audio-pref", "visual-pref", "seconds"],
        [
            [
                r.method,
                r.seed,
                r.status,
                r.best_epoch,
                r.best_val_acc,
                r.test["accuracy"]["overall"],
                _fmt(r.test["accuracy"]["audio_pref"]),
                _fmt(r.test["accuracy"]["visual_pref"]),
                round(r.seconds, 1),
            ]
            for r in runs
        ],
    )
    summary_table(
        "reeval: time per run of each method (this call's runs, or what a reused run recorded)",
        ["method", "runs timed", "wall s", "CPU-s", "CPU vs joint"],
        time_table_rows(timings),
    )
    return ReevalOutcome(runs, paths, data, device_text)


def _train_all(
    job: RunJob, methods: list[str], seeds: list[int], fresh: bool, execution: ExecutionConfig
) -> list[RunResult] | None:
    """Every (method, seed) run's result, in (method, seed) order: reused, or trained through the driver;
    None when other array parts still owe some (the last part writes the tables).

    With ``resplit`` each seed trains on its own train/val draw (:func:`mmcurate.reeval.data.resplit`)."""
    keys = [(name, seed) for name in methods for seed in seeds]
    if fresh and job.ranks.is_main:
        for name, seed in keys:
            for file in ("result.json", "last.pt", "best.pt", "predictions.parquet"):
                (run_dir_for(job.out_dir, name, seed) / file).unlink(missing_ok=True)
    distributed.barrier(job.ranks)
    units = [WorkUnit(f"{name}/seed{seed}", i, ((name, seed),)) for i, (name, seed) in enumerate(keys)]
    identity = {key: run_identity_hash(key[0], job.data_for(key[1]), job.cfg, key[1], job.device) for key in keys}
    completion: Completion[tuple[str, int]] = Completion(
        marker=lambda unit: run_marker(job.out_dir, *unit.items[0]), identity=lambda unit: identity[unit.items[0]]
    )
    results = {u.items[0]: cached_result(payload) for u in units if (payload := completion.payload(u))}
    if len(results) == len(units):
        distributed.barrier(job.ranks)
        return [results[k] for k in keys]  # all reused: no executor (no Ray instance) needed
    executor = make_executor(
        parallel_runs(job, execution),
        None,
        execution,
        cpus=job.threads or 1,
        threads=job.threads,
        preload=TRAINING_IMPORTS,
    )
    driver = UnitDriver("reeval", "run", units, completion, executor, job.ranks)
    if driver.pending:
        info(
            f"reeval: {len(driver.pending)} run(s) on {executor.describe()}, {job.threads or 'default'} thread(s) each"
        )

    def collect(unit: WorkUnit[tuple[str, int]], out: list[tuple[RunResult, pa.Table | None]]) -> None:
        results[unit.items[0]] = out[0][0]

    def write(unit: WorkUnit[tuple[str, int]], out: list[tuple[RunResult, pa.Table | None]]) -> Written | None:
        result, predictions = out[0]
        return (
            None
            if predictions is None
            else Written(write_predictions(job.out_dir, result, predictions), result.to_dict())
        )

    driver.run(lambda: job, write, collect=collect)
    if job.ranks.is_main and not driver.finish("results.json"):
        return None
    for unit in units:  # runs another array part finished meanwhile
        if unit.items[0] not in results:
            results[unit.items[0]] = cached_result(completion.payload(unit))
    return [results[k] for k in keys]


def parallel_runs(job: RunJob, execution: ExecutionConfig) -> int:
    """How many (method, seed) runs the local engine trains at once: on CPU one per core (``--threads``
    cores each), as scoring runs its jobs; one on a GPU and under --distributed.

    Why: a run trains a CPU-sized model with one thread, so one run at a time left all other cores idle
    (8 methods x 3 seeds on 433 clips, 2 cores: 360 s one at a time, 196 s one per core, the same results;
    benchmarks/results/reeval_time.md). Each run is fixed by its seed and thread count, so the results do
    not depend on how many train together; the forked workers share the loaded tensors. Runs are started
    in list order, so the unimodal runs that UMT builds on are under way first (were UMT's own copy of one
    to race with them, both write the same bytes)."""
    if job.device.type != "cpu" or job.ranks.world > 1 or execution.engine != "local":
        return 1
    return processes_for(job.threads or 1)


def _fmt(v: float | None) -> str | float:
    return "n/a" if v is None else v
