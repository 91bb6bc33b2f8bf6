"""Run a whole re-evaluation: every method with every seed on one dataset, then the report.

This is what ``mmcurate reeval`` and a pipeline recipe call; it knows nothing about the
command line.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from mmcurate.common.atomic import atomic_write_json
from mmcurate.common.console import info, summary_table, warn
from mmcurate.common.errors import MMCurateError
from mmcurate.execution import ExecutionConfig, WorkUnit, distributed, make_executor
from mmcurate.execution.distributed import SINGLE, Ranks
from mmcurate.reeval.config import ReevalConfig, TensorSettings, TrainConfig
from mmcurate.reeval.data import ReevalData
from mmcurate.reeval.data import resplit as resplit_data
from mmcurate.reeval.methods import METHODS, get_method
from mmcurate.reeval.report import PROTOCOL, write_report
from mmcurate.reeval.sources import load_source, resolve_source
from mmcurate.reeval.split_audit import small_split_warnings
from mmcurate.reeval.trainer import RunResult, finished_run, fit_run, record_run, run_dir_for
from mmcurate.store import Workdir
from mmcurate.store.lock import FileLock, folder_lock
from mmcurate.store.ownership import check_output_path, claim_locked


@dataclass
class ReevalOutcome:
    runs: list[RunResult]
    paths: dict[str, Path]
    data: ReevalData
    device: str


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an explicit CUDA device must exist."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise MMCurateError(f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MMCurateError(f"--device {spec}: CUDA is not available here; use --device cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise MMCurateError(f"--device {spec}: only cpu and cuda are supported")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


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
    """The ``mmcurate reeval`` stage: SOURCE (default WORKDIR/balanced) into ``cfg.out`` (default WORKDIR/reeval)."""
    check_output_path(cfg.out or workdir.reeval_dir)  # before minutes of loading, not after
    execution = cfg.execution
    if execution.engine == "ray" and execution.gpus_per_job > 0:
        device = torch.device("cuda")  # Ray gives each task its GPU; this process may have none
    else:
        device = resolve_device(cfg.device)
    return run_reeval(
        cfg.source,
        cfg.out or workdir.reeval_dir,
        cfg.method_list(),
        cfg.seed_list(),
        cfg.train_config(device.type),
        cfg.tensor_settings(device.type),
        device,
        workdir=workdir,
        bins=cfg.bins,
        fresh=cfg.fresh,
        cache_dir=cfg.cache_dir,
        threads=execution.threads(cfg.threads),
        execution=execution,
        resplit=cfg.resplit,
        overwrite=cfg.overwrite,
    )


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

    def __call__(self, key: tuple[str, int]) -> tuple[RunResult, pa.Table | None]:
        method, seed = key
        data = resplit_data(self.data, seed) if self.resplit else self.data
        before = torch.get_num_threads()
        if self.threads is not None and self.device.type == "cpu":
            torch.set_num_threads(self.threads)
        try:
            return fit_run(method, data, self.cfg, seed, self.out_dir, self.device, ranks=self.ranks)
        finally:
            torch.set_num_threads(before)


def run_reeval(
    source: str | None,
    out_dir: Path,
    methods: list[str],
    seeds: list[int],
    cfg: TrainConfig,
    settings: TensorSettings,
    device: torch.device,
    *,
    workdir: Workdir | None = None,
    bins: int = 10,
    fresh: bool = False,
    cache_dir: str | None = None,
    threads: int | None = 1,
    execution: ExecutionConfig | None = None,
    resplit: bool = False,
    overwrite: bool = False,
) -> ReevalOutcome:
    """Load the source, train and test every (method, seed), write the report into ``out_dir``.

    ``threads``: torch intra-op threads on CPU (None: leave torch's default). One is the default:
    CPU-sized models gain little from more, and when other jobs share the cores, OpenMP threads
    that wait for each other at every layer made a training step 17x slower in our measurements.

    Each (method, seed) run is a work unit: finished ones (their completion marker matches) are
    reused, the others are mapped through the executor of ``execution`` (locally one after the
    other, in this process; on Ray one task each, the data put in the object store once), and this
    process writes each run's predictions and marker, then the tables.
    """
    check_methods(methods, cfg)
    execution = execution or ExecutionConfig()
    ranks = SINGLE
    if execution.distributed:
        ranks, device = distributed.start(device)
    # rank 0 owns the folder (the other ranks write nothing): checked and locked before any loading
    lock = claim_reeval_folder(Path(out_dir), overwrite) if ranks.is_main else None
    try:
        return _run_reeval_locked(
            source,
            Path(out_dir),
            methods,
            seeds,
            cfg,
            settings,
            device,
            workdir,
            bins,
            fresh,
            cache_dir,
            threads,
            execution,
            ranks,
            resplit,
        )
    finally:
        if lock is not None:
            lock.release()


def _run_reeval_locked(
    source: str | None,
    out_dir: Path,
    methods: list[str],
    seeds: list[int],
    cfg: TrainConfig,
    settings: TensorSettings,
    device: torch.device,
    workdir: Workdir | None,
    bins: int,
    fresh: bool,
    cache_dir: str | None,
    threads: int | None,
    execution: ExecutionConfig,
    ranks: Ranks,
    resplit: bool,
) -> ReevalOutcome:
    if device.type == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    kind, location = resolve_source(source, workdir)
    info(f"source: {location} ({kind})")
    data = load_source(kind, location, settings, bins=bins, cache_dir=cache_dir)
    sizes = ", ".join(f"{n} {len(data.split(n))}" for n in ("train", "val", "test"))
    info(f"data: {len(data.classes)} classes; {sizes}; {data.split_note}")
    for note in data.notes:
        info(f"note: {note}")
    for line in small_split_warnings(data):  # before minutes of training, not after
        warn(f"reeval: {line}")
    device_text = describe_device(device)
    info(f"device: {device_text}; model width {cfg.width}, frames {settings.num_frames} x {settings.image_size} px")
    runs = _train_all(data, cfg, methods, seeds, out_dir, device, fresh, threads, execution, ranks, resplit)
    if not ranks.is_main:  # only rank 0 writes
        return ReevalOutcome(runs, {}, data, device_text)
    run_settings: dict[str, Any] = {
        **cfg.to_dict(),
        **settings.to_dict(),
        "seeds": seeds,
        "methods": methods,
        "bins": bins,
        **({"resplit": True} if resplit else {}),
    }
    if resplit:
        data = dataclasses.replace(
            data,
            split_note=f"{data.split_note}; train/val re-drawn for every seed (stratified by bin and class, "
            "groups kept whole where known; test fixed)",
        )
    paths = write_report(out_dir, data, runs, run_settings, device.type)
    atomic_write_json(
        out_dir / "timings.json",
        {
            "device": device_text,
            "runs": [
                {"method": r.method, "seed": r.seed, "status": r.status, "seconds": round(r.seconds, 2)} for r in runs
            ],
        },
    )
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
    return ReevalOutcome(runs, paths, data, device_text)


def _train_all(
    data: ReevalData,
    cfg: TrainConfig,
    methods: list[str],
    seeds: list[int],
    out_dir: Path,
    device: torch.device,
    fresh: bool,
    threads: int | None,
    execution: ExecutionConfig,
    ranks: Ranks,
    resplit: bool = False,
) -> list[RunResult]:
    """Every (method, seed) run's result, in (method, seed) order: reused, or trained through the executor.

    With ``resplit`` each seed trains on its own train/val draw (:func:`mmcurate.reeval.data.resplit`)."""
    keys = [(name, seed) for name in methods for seed in seeds]
    if fresh and ranks.is_main:
        for name, seed in keys:
            for file in ("result.json", "last.pt", "best.pt", "predictions.parquet"):
                (run_dir_for(out_dir, name, seed) / file).unlink(missing_ok=True)
    distributed.barrier(ranks)
    results: dict[tuple[str, int], RunResult] = {}
    for key in keys:
        cached = finished_run(out_dir, key[0], resplit_data(data, key[1]) if resplit else data, cfg, key[1], device)
        if cached is not None:
            results[key] = cached
    pending = [WorkUnit(f"{k[0]}/seed{k[1]}", i, (k,)) for i, k in enumerate(keys) if k not in results]
    distributed.barrier(ranks)  # every rank has decided what to train before rank 0 writes anything
    if pending:
        executor = make_executor(1, None, execution, cpus=threads or 1, threads=threads)
        if execution.engine != "local":
            info(f"reeval: {len(pending)} run(s) on {executor.describe()}")
        job = RunJob(data, cfg, out_dir, device, threads, ranks, resplit)
        for unit, [(result, predictions)] in executor.map_units(job, pending):
            if predictions is not None and ranks.is_main:
                record_run(out_dir, result, predictions)
            results[unit.items[0]] = result
    return [results[k] for k in keys]


def _fmt(v: float | None) -> str | float:
    return "n/a" if v is None else v
