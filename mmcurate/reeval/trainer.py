"""The one training loop every method runs through, with validation-based model selection.

Protocol choices, all deliberate:

* The checkpoint that is tested is the epoch with the best **validation** accuracy (ties: lower
  validation loss, then the earlier epoch). Public toolkits (BalanceMM, OGM-GE, MMPareto's code)
  select on the test set, which inflates every number they report.
* Same data, epochs, batch size, optimiser, schedule and seeds for every method.
* Deterministic given the seed: model init and the GE noise are seeded; epoch e's batch order
  depends only on (seed, e).
* Resumable: ``RESULTS_DIR/runs/<method>/seed<k>/last.pt`` is written atomically after every
  epoch; a rerun with the same settings continues from it, a finished run is not retrained.
  Changed settings (any option, or different data) start the run afresh.
* Nothing but ``_validate`` reads the validation split while a run trains; the test split is read
  once, by the selected checkpoint, for the metrics and the modality contribution.
"""

from __future__ import annotations

import functools
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.atomic import atomic_path, atomic_write_json
from mmcurate.common.console import warn
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.common.memory import keep_heap_for_training
from mmcurate.common.progress import epoch_progress
from mmcurate.execution import distributed
from mmcurate.execution.distributed import SINGLE, Ranks
from mmcurate.reeval.batches import epoch_order, iter_batches, num_batches
from mmcurate.reeval.contribution import coalition_correctness, shapley_contribution
from mmcurate.reeval.data import ReevalData, SplitData
from mmcurate.reeval.methods import Method, Prediction, TrainContext, get_method
from mmcurate.reeval.metrics import evaluate_predictions
from mmcurate.reeval.optim import build_optimizer
from mmcurate.reeval.settings import TrainConfig
from mmcurate.store.completion import UnitMarker

RESULT_FILE = "result.json"
#: bumped when what a finished run stores changes, so older cached results are retrained
RESULT_VERSION = 2


@dataclass
class RunResult:
    """One (method, seed) run: its selection and its test metrics."""

    method: str
    seed: int
    best_epoch: int
    best_val_acc: float
    best_val_loss: float
    test: dict[str, Any]
    history: list[dict[str, Any]]
    method_info: dict[str, Any]
    #: how this call got it: "trained", "resumed" or "cached" (not saved: it differs between calls)
    status: str = "trained"
    seconds: float = 0.0
    #: process CPU seconds of this call's training and testing (all of torch's threads)
    cpu_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seed": self.seed,
            "best_epoch": self.best_epoch,
            "best_val_acc": self.best_val_acc,
            "best_val_loss": self.best_val_loss,
            "test": self.test,
            "history": self.history,
            "method_info": self.method_info,
        }


def run_dir_for(out_dir: Path, method: str, seed: int) -> Path:
    return Path(out_dir) / "runs" / method / f"seed{seed}"


def run_identity(
    method: Method, cfg: TrainConfig, data: ReevalData, seed: int, device: torch.device
) -> dict[str, Any]:
    """Everything that determines a run's outcome; its hash guards resume and caching."""
    train = cfg.to_dict()
    train.pop("method_params")
    return {
        "method": method.describe(),
        "train": train,
        "data": data.fingerprint(),
        "seed": seed,
        "device_type": device.type,
        "result_version": RESULT_VERSION,
    }


def train_run(
    method_name: str,
    data: ReevalData,
    cfg: TrainConfig,
    seed: int,
    out_dir: Path,
    device: torch.device,
    fresh: bool = False,
) -> RunResult:
    """Train (or resume, or reuse) one method with one seed; test the validation-selected model."""
    result, predictions = fit_run(method_name, data, cfg, seed, out_dir, device, fresh=fresh)
    if predictions is not None:
        record_run(out_dir, result, predictions)
    return result


def run_identity_hash(method_name: str, data: ReevalData, cfg: TrainConfig, seed: int, device: torch.device) -> str:
    """The identity hash of one (method, seed) run (what its checkpoints and result marker are checked against)."""
    method = get_method(
        method_name, width=cfg.width, fusion=cfg.fusion, epochs=cfg.epochs, seed=seed, **cfg.params_for(method_name)
    )
    return config_hash(run_identity(method, cfg, data, seed, device))


def finished_run(
    out_dir: Path, method_name: str, data: ReevalData, cfg: TrainConfig, seed: int, device: torch.device
) -> RunResult | None:
    """The recorded result of a finished run with these settings (status "cached"), else None."""
    cached = _load_finished(
        run_dir_for(out_dir, method_name, seed), run_identity_hash(method_name, data, cfg, seed, device)
    )
    if cached is not None:
        cached.status = "cached"
    return cached


def fit_run(
    method_name: str,
    data: ReevalData,
    cfg: TrainConfig,
    seed: int,
    out_dir: Path,
    device: torch.device,
    fresh: bool = False,
    ranks: Ranks = SINGLE,
) -> tuple[RunResult, pa.Table | None]:
    """Train (or resume) one run and test its validation-selected model; or reuse a finished one.

    Returns the result and its test predictions (None for a reused run): the caller records them
    with :func:`record_run` (the driver, where an executor ran this elsewhere). The run's own
    checkpoints (``last.pt``, ``best.pt``) are written here, as training goes (by rank 0 only under
    ``--distributed``; every rank then returns the same result).
    """
    keep_heap_for_training()
    started, cpu_started = time.perf_counter(), time.process_time()
    method = get_method(
        method_name, width=cfg.width, fusion=cfg.fusion, epochs=cfg.epochs, seed=seed, **cfg.params_for(method_name)
    )
    run_dir = run_dir_for(out_dir, method_name, seed)
    identity = run_identity(method, cfg, data, seed, device)
    ident_hash = config_hash(identity)
    writer = ranks.is_main

    if fresh and writer:
        for name in (RESULT_FILE, "last.pt", "best.pt", "predictions.parquet"):
            (run_dir / name).unlink(missing_ok=True)
    distributed.barrier(ranks)
    cached = _load_finished(run_dir, ident_hash)
    if cached is not None:
        cached.status = "cached"
        return cached, None

    torch.manual_seed(seed)
    model = method.build_model(len(data.classes)).to(device)
    optimizer, scheduler = build_optimizer(model, cfg)
    subset = method.train_subset(data)
    steps = num_batches(
        len(data.train) if subset is None else len(subset), cfg.batch_size, drop_singleton=True, ranks=ranks
    )
    ctx = TrainContext(
        0,
        cfg.epochs,
        0,
        steps,
        device,
        data,
        cfg.batch_size,
        seed,
        cfg=cfg,
        optimizer=optimizer,
        out_dir=Path(out_dir),
        run_of=runs_of(data, cfg, seed, Path(out_dir), device),
    )
    state = _load_checkpoint(run_dir / "last.pt", ident_hash, device)
    distributed.barrier(ranks)  # every rank has read the checkpoint before rank 0 writes the next one
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        method.load_state_dict(state["method"])
        torch.set_rng_state(state["rng"])
        start_epoch, history, best = state["epoch"] + 1, state["history"], state["best"]
        status = "resumed"
    else:
        if writer:
            atomic_write_json(run_dir / "config.json", {**identity, "config_hash": ident_hash})
        model.train()
        method.on_train_start(model, ctx)
        start_epoch, history, best = 0, [], None
        status = "trained"

    # progress by epoch (a method may run more or fewer batches than `steps`: counting batches overshot its total)
    with epoch_progress(f"reeval {method_name} seed {seed}", cfg.epochs, start=start_epoch) as report:
        for epoch in range(start_epoch, cfg.epochs):
            ctx.epoch, ctx.step = epoch, epoch * steps
            ctx.lr = float(optimizer.param_groups[0]["lr"])
            logs = _train_epoch(method, model, optimizer, data, cfg, ctx, seed, subset, ranks)
            scheduler.step()
            distributed.broadcast_buffers(model, ranks)  # every rank evaluates rank 0's model
            logs.update({f"epoch_end_{k}": v for k, v in method.on_epoch_end(model, ctx).items()})
            val_acc, val_loss = _validate(method, model, data.val, data, cfg.batch_size, device)
            history.append({"epoch": epoch, "val_acc": val_acc, "val_loss": val_loss, **logs})
            report(epoch + 1, loss=logs.get("train_loss", float("nan")), val_acc=val_acc)
            if best is None or (val_acc, -val_loss) > (best["val_acc"], -best["val_loss"]):
                best = {"epoch": epoch, "val_acc": val_acc, "val_loss": val_loss}
                if writer:
                    _save(run_dir / "best.pt", {"model": model.state_dict(), "epoch": epoch})
            if writer:
                _save(
                    run_dir / "last.pt",
                    {
                        "config_hash": ident_hash,
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "method": method.state_dict(),
                        "rng": torch.get_rng_state(),
                        "history": history,
                        "best": best,
                    },
                )

    assert best is not None, "training ran no epoch"
    distributed.barrier(ranks)  # best.pt is on disk for every rank
    model.load_state_dict(_load_weights(run_dir / "best.pt", device)["model"])
    pred = predict_split(method, model, data.test, data, cfg.batch_size, device)
    test = evaluate_predictions(
        pred["pred"],
        data.test.labels.numpy(),
        data.test.discrepancy,
        data.test.bins,
        data.num_bins,
        len(data.classes),
        pred.get("pred_audio"),
        pred.get("pred_visual"),
    )
    contribution, per_sample = shapley_contribution(
        coalition_correctness(method, model, data.test, data, cfg.batch_size, device)
    )
    test["contribution"] = contribution
    pred["shapley_audio"], pred["shapley_visual"] = per_sample["audio"], per_sample["visual"]
    result = RunResult(
        method=method_name,
        seed=seed,
        best_epoch=best["epoch"],
        best_val_acc=best["val_acc"],
        best_val_loss=best["val_loss"],
        test=test,
        history=history,
        method_info=method.describe(),
        status=status,
        extra={"identity_hash": ident_hash},
    )
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu_started
    return result, _predictions_table(data.test, pred)


def runs_of(
    data: ReevalData, cfg: TrainConfig, seed: int, out_dir: Path, device: torch.device
) -> Callable[[str], tuple[RunResult, Path]]:
    """``TrainContext.run_of`` of a comparison: another method's run with this seed (trained here if not
    finished) and its ``best.pt``."""
    return functools.partial(_run_of, data, cfg, seed, Path(out_dir), device)


def _run_of(
    data: ReevalData, cfg: TrainConfig, seed: int, out_dir: Path, device: torch.device, method_name: str
) -> tuple[RunResult, Path]:
    run = train_run(method_name, data, cfg, seed, out_dir, device)
    return run, run_dir_for(out_dir, method_name, seed) / "best.pt"


def record_run(out_dir: Path, result: RunResult, predictions: pa.Table) -> None:
    """Write a finished run's test predictions, then its completion marker (``result.json``)."""
    files = write_predictions(out_dir, result, predictions)
    run_marker(out_dir, result.method, result.seed).record(result.extra["identity_hash"], files, result.to_dict())


def run_marker(out_dir: Path, method: str, seed: int) -> UnitMarker:
    """The completion marker of one (method, seed) run: ``result.json``, whose payload is the result."""
    run_dir = run_dir_for(out_dir, method, seed)
    return UnitMarker(run_dir / RESULT_FILE, run_dir)


def write_predictions(out_dir: Path, result: RunResult, predictions: pa.Table) -> list[Path]:
    """Write a finished run's test predictions; the files its marker vouches for (with ``best.pt``)."""
    run_dir = run_dir_for(out_dir, result.method, result.seed)
    with atomic_path(run_dir / "predictions.parquet") as tmp:
        pq.write_table(predictions, tmp)
    return [run_dir / "best.pt", run_dir / "predictions.parquet"]


def cached_result(doc: dict[str, Any]) -> RunResult:
    """The result a finished run's marker recorded (status "cached")."""
    return RunResult(
        method=doc["method"],
        seed=doc["seed"],
        best_epoch=doc["best_epoch"],
        best_val_acc=doc["best_val_acc"],
        best_val_loss=doc["best_val_loss"],
        test=doc["test"],
        history=doc["history"],
        method_info=doc["method_info"],
        status="cached",
    )


def _train_epoch(
    method: Method,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: ReevalData,
    cfg: TrainConfig,
    ctx: TrainContext,
    seed: int,
    subset: torch.Tensor | None = None,
    ranks: Ranks = SINGLE,
) -> dict[str, float]:
    model.train()
    method.on_epoch_start(model, ctx)
    model.train()
    if subset is None:
        order = epoch_order(len(data.train), seed, ctx.epoch)
    else:  # the method keeps part of train aside: shuffle the rest the same way
        order = subset[epoch_order(len(subset), seed, ctx.epoch)]
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    batches = method.train_batches(ctx)
    if batches is None:
        batches = iter_batches(
            data.train, data, cfg.batch_size, ctx.device, order=order, drop_singleton=True, ranks=ranks
        )
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        out = method.forward(model, batch, ctx)
        loss, logs = method.loss(model, batch, out, ctx)
        if not torch.isfinite(loss):
            raise MMCurateError(
                f"{method.name}: the training loss became {float(loss.detach())} at epoch {ctx.epoch}; lower --lr"
            )
        loss.backward()
        logs = {**logs, **method.after_backward(model, batch, out, ctx)}
        # --distributed: the batch-weighted sum of the ranks' (modulated) gradients, after the method's
        # after_backward (averaging during backward, as DDP's wrapper does, would precede the modulation)
        distributed.average_gradients(model.parameters(), ranks, batch.share)
        optimizer.step()
        ctx.step += 1
        for k, v in {"train_loss": float(loss.detach()), **logs}.items():
            sums[k] = sums.get(k, 0.0) + float(v)
            counts[k] = counts.get(k, 0) + 1
    return {k: v / counts[k] for k, v in sums.items()}  # each log averaged over the steps that reported it


@torch.no_grad()
def predict_split(
    method: Method, model: nn.Module, split: SplitData, data: ReevalData, batch_size: int, device: torch.device
) -> dict[str, np.ndarray]:
    """Predicted classes (fused, and per modality where defined) and fused logits of a split."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {"logits": [], "audio": [], "visual": []}
    for batch in iter_batches(split, data, batch_size, device):
        p: Prediction = method.predict(model, batch)
        parts["logits"].append(p.logits.float().cpu())
        if p.audio_logits is not None:
            parts["audio"].append(p.audio_logits.argmax(1).cpu())
        if p.visual_logits is not None:
            parts["visual"].append(p.visual_logits.argmax(1).cpu())
    logits = torch.cat(parts["logits"])
    out = {"logits": logits.numpy(), "pred": logits.argmax(1).numpy()}
    if len(parts["audio"]) == len(parts["logits"]):
        out["pred_audio"] = torch.cat(parts["audio"]).numpy()
    if len(parts["visual"]) == len(parts["logits"]):
        out["pred_visual"] = torch.cat(parts["visual"]).numpy()
    return out


def _validate(
    method: Method, model: nn.Module, split: SplitData, data: ReevalData, batch_size: int, device: torch.device
) -> tuple[float, float]:
    pred = predict_split(method, model, split, data, batch_size, device)
    labels = split.labels
    loss = float(F.cross_entropy(torch.from_numpy(pred["logits"]), labels))
    return float((pred["pred"] == labels.numpy()).mean()), loss


def _save(path: Path, obj: dict[str, Any]) -> None:
    # through a file object: given a path, torch.save names the archive's folder after the (random)
    # temporary file, and two identical runs would write different bytes
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def _load_weights(path: Path, device: torch.device) -> dict[str, Any]:
    """A checkpoint loaded with ``weights_only`` (tensors, numbers, strings, lists, dicts): a planted pickle that
    would run code is refused with a one-line error, never executed."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise MMCurateError(
            f"{path}: not a plain weights checkpoint (it holds objects that loading would execute); refusing to load "
            "it: delete it, or rerun with --fresh"
        ) from None


def _load_checkpoint(path: Path, ident_hash: str, device: torch.device) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = _load_weights(path, device)
    except MMCurateError:
        raise
    except Exception as exc:  # a checkpoint from an older version or a damaged disk: start over
        warn(f"{path}: unreadable checkpoint ({type(exc).__name__}); training this run from scratch")
        return None
    if not isinstance(state, dict) or state.get("config_hash") != ident_hash:
        warn(f"{path}: written with other settings or data; training this run from scratch")
        return None
    if "rng" in state:
        state["rng"] = state["rng"].cpu()
    return state


def _load_finished(run_dir: Path, ident_hash: str) -> RunResult | None:
    """The finished run's result when its marker matches these settings and its files are intact."""
    doc = UnitMarker(run_dir / RESULT_FILE, run_dir).read(ident_hash)
    return cached_result(doc) if doc else None


def _predictions_table(split: SplitData, pred: dict[str, np.ndarray]) -> pa.Table:
    """Per test sample: label, prediction(s) and discrepancy, for analyses beyond the tables."""
    cols: dict[str, Any] = {
        "sample_id": pa.array(split.sample_ids, pa.string()),
        "label": pa.array(split.labels.numpy(), pa.int32()),
        "pred": pa.array(pred["pred"], pa.int32()),
        "pred_audio": pa.array(pred["pred_audio"], pa.int32())
        if "pred_audio" in pred
        else pa.nulls(len(split), pa.int32()),
        "pred_visual": pa.array(pred["pred_visual"], pa.int32())
        if "pred_visual" in pred
        else pa.nulls(len(split), pa.int32()),
        "discrepancy": pa.array(np.where(np.isfinite(split.discrepancy), split.discrepancy, np.nan), pa.float64()),
        "bin": pa.array(split.bins, pa.int32()),
        # sample-level Shapley contribution of each modality (see mmcurate.reeval.contribution)
        "shapley_audio": pa.array(pred["shapley_audio"], pa.float64()),
        "shapley_visual": pa.array(pred["shapley_visual"], pa.float64()),
    }
    return pa.table(cols)
