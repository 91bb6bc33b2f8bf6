"""Run a whole re-evaluation: every method with every seed on one dataset, then the report.

This is what ``mmcurate reeval`` and a pipeline recipe call; it knows nothing about the
command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmcurate.common.atomic import atomic_write_json
from mmcurate.common.console import info, summary_table
from mmcurate.common.errors import MMCurateError
from mmcurate.reeval.config import ReevalConfig, TensorSettings, TrainConfig
from mmcurate.reeval.data import ReevalData
from mmcurate.reeval.methods import METHODS, get_method
from mmcurate.reeval.report import write_report
from mmcurate.reeval.sources import load_source, resolve_source
from mmcurate.reeval.trainer import RunResult, train_run
from mmcurate.store import Workdir
from mmcurate.store.ownership import check_output_path


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
    device = resolve_device(cfg.device)
    return run_reeval(
        cfg.source, cfg.out or workdir.reeval_dir, cfg.method_list(), cfg.seed_list(), cfg.train_config(device.type),
        cfg.tensor_settings(device.type), device, workdir=workdir, bins=cfg.bins, fresh=cfg.fresh,
        cache_dir=cfg.cache_dir, threads=cfg.threads,
    )


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
) -> ReevalOutcome:
    """Load the source, train and test every (method, seed), write the report into ``out_dir``.

    ``threads``: torch intra-op threads on CPU (None: leave torch's default). One is the default:
    CPU-sized models gain little from more, and when other jobs share the cores, OpenMP threads
    that wait for each other at every layer made a training step 17x slower in our measurements.
    """
    check_methods(methods, cfg)
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
    device_text = describe_device(device)
    info(f"device: {device_text}; model width {cfg.width}, frames {settings.num_frames} x {settings.image_size} px")
    runs: list[RunResult] = []
    for name in methods:
        for seed in seeds:
            runs.append(train_run(name, data, cfg, seed, out_dir, device, fresh=fresh))
    run_settings: dict[str, Any] = {**cfg.to_dict(), **settings.to_dict(), "seeds": seeds, "methods": methods, "bins": bins}
    paths = write_report(out_dir, data, runs, run_settings, device.type)
    atomic_write_json(
        out_dir / "timings.json",
        {"device": device_text, "runs": [{"method": r.method, "seed": r.seed, "status": r.status, "seconds": round(r.seconds, 2)} for r in runs]},
    )
    summary_table(
        "reeval: test accuracy (model chosen on validation)",
        ["method", "seed", "run", "best epoch", "val acc", "test acc", "audio-pref", "visual-pref", "seconds"],
        [
            [
                r.method, r.seed, r.status, r.best_epoch, r.best_val_acc, r.test["accuracy"]["overall"],
                _fmt(r.test["accuracy"]["audio_pref"]), _fmt(r.test["accuracy"]["visual_pref"]), round(r.seconds, 1),
            ]
            for r in runs
        ],
    )
    return ReevalOutcome(runs, paths, data, device_text)


def _fmt(v: float | None) -> str | float:
    return "n/a" if v is None else v
