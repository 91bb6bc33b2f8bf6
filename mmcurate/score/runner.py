"""``mmcurate score``: out-of-fold unimodal confidences and the per-sample discrepancy.

For each of K stratified folds, an audio-only and a visual-only classifier train on the other
folds and score the held-out one. With ``repeats`` > 1 the whole cross-fitting is repeated
with other fold assignments and seeds and the held-out probabilities are averaged (repeated
cross-fitting): every confidence is still out-of-fold, with less model-to-model noise. Each
(fold, modality) result is saved as soon as it exists (``score_runs/<scorer>/``), so an
interrupted run resumes where it stopped, and the final
``scores.parquet`` is written atomically once every sample has both confidences. Calibration,
per-sample uncertainty and bin probability are assembled from the jobs' arrays by the pure
functions of :mod:`mmcurate.score.assemble`. With ``--save-scorers`` (the default) each fold's
models are also kept, a fold ensemble per modality that scores new clips later
(:mod:`mmcurate.score.scorers`, ``--candidates``) at no extra training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmcurate import __version__
from mmcurate.common.atomic import atomic_path
from mmcurate.common.console import info, warn
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.data import AVDataset, TensorConfig, build_av_tensors, read_shards
from mmcurate.data.tensor_cache import TensorCache, key_of
from mmcurate.execution import (
    TRAINING_IMPORTS,
    ArrayJobConfig,
    ExecutionConfig,
    Executor,
    WorkUnit,
    distributed,
    make_executor,
)
from mmcurate.execution.device import execution_device
from mmcurate.execution.distributed import SINGLE, Ranks
from mmcurate.execution.driver import Completion, UnitDriver, Written
from mmcurate.execution.local import processes_for
from mmcurate.score.assemble import ModalityRuns, assemble_scores
from mmcurate.score.config import BUILTIN_SCORER, ScoreConfig, ScoreStageConfig
from mmcurate.score.folds import check_fold_feasible, group_folds, resolve_group_folds, stratified_folds
from mmcurate.score.health import check_scores
from mmcurate.score.registry import get_scorer
from mmcurate.score.schedule import STOP_RULE
from mmcurate.score.scorers import (
    calibration_params,
    member_file,
    merge_members,
    model_file,
    save_member,
    write_scorer_meta,
)
from mmcurate.score.table import (
    MODALITIES,
    ScoreResult,
    check_modalities,
    scores_table,
    write_external_scores,
)
from mmcurate.score.train import EpochProgress, FitResult, InMemorySource, StreamingSource, fit_predict
from mmcurate.store import IngestDir, UnitMarker, Workdir


def scores_state(ingest_dir: Path, cfg: ScoreConfig | None = None) -> str:
    """``"fresh"``, ``"missing"`` or ``"stale: <why>"`` for the scores in ``ingest_dir`` (the store's
    answer); with ``cfg``, scores made by another scorer config count as stale."""
    want = None if cfg is None else (lambda on_gpu: cfg.resolved(on_gpu).content_hash())
    return IngestDir(ingest_dir).scores_state(want)


@dataclass(frozen=True)
class ScoreJob:
    """One training job of the cross-fitting: a modality's scorer trained without one fold."""

    repeat: int
    fold: int
    modality: str

    @property
    def name(self) -> str:
        return (
            f"fold{self.fold}-{self.modality}"
            if self.repeat == 0
            else f"repeat{self.repeat}-fold{self.fold}-{self.modality}"
        )


def job_seed(seed: int, job: ScoreJob) -> int:
    """The training seed of a job: distinct per (repeat, fold, modality)."""
    return seed * 1000 + job.repeat * 100 + job.fold * 10 + MODALITIES.index(job.modality)


class FoldTrainer:
    """The per-job function an executor maps: train on the other folds, return held-out probabilities."""

    def __init__(
        self,
        sources: dict[str, Any],
        fold_sets: list[np.ndarray],
        num_classes: int,
        cfg: ScoreConfig,
        device: torch.device,
        n_frames: int,
        threads: int | None = None,
        ranks: Ranks = SINGLE,
    ) -> None:
        self.sources, self.fold_sets, self.num_classes = sources, fold_sets, num_classes
        self.cfg, self.device, self.n_frames = cfg, device, n_frames
        self.threads, self.ranks = threads, ranks
        #: keep the first repeat's weights (``--save-scorers``: the fold ensemble that scores new clips)
        self.keep_models = False
        #: the tensor config with ``audio_frames`` fixed to what the inputs were decoded with
        self.tensor_config: TensorConfig | None = None

    def __call__(self, job: ScoreJob) -> tuple[FitResult, float]:
        started = time.monotonic()
        folds = self.fold_sets[job.repeat]
        held, train = np.flatnonzero(folds == job.fold), np.flatnonzero(folds != job.fold)
        seed = job_seed(self.cfg.seed, job)
        before = torch.get_num_threads()
        if self.threads is not None:  # the same count on any engine: torch's CPU results depend on it
            torch.set_num_threads(self.threads)
        try:
            res = fit_predict(
                self.sources[job.modality],
                train,
                held,
                self.num_classes,
                self.cfg,
                seed,
                self.device,
                self.n_frames,
                on_epoch=EpochLines(job.name, self.ranks.is_main),
                ranks=self.ranks,
                keep_window=self.keep_models and job.repeat == 0,
            )
        finally:
            torch.set_num_threads(before)
        return res, time.monotonic() - started


class EpochLines:
    """Epoch-level progress of one training job, as plain lines (readable in a log file): at most one
    line every :data:`EVERY` seconds per job, and always the phase changes and the last epoch, so a
    user sees which job trains, its loss and inner accuracy, and why it takes longer (a restart, a
    long search) instead of one tick per job."""

    EVERY = 20.0

    def __init__(self, job: str, speak: bool = True) -> None:
        self.job, self.speak = job, speak
        self.started = self.last = time.monotonic()
        self.phase = ""

    def __call__(self, e: EpochProgress) -> None:
        now = time.monotonic()
        changed = (e.phase, e.attempt) != getattr(self, "_key", None)
        last = e.phase in ("anneal", "fixed") and e.epoch + 1 >= self._end(e)
        if not self.speak or not (changed or last or now - self.last >= self.EVERY):
            return
        self._key, self.last = (e.phase, e.attempt), now
        per_epoch = (now - self.started) / (e.epoch + 1)
        what = {
            "search": f"searching (at most {e.planned} epochs{f', restart {e.attempt}' if e.attempt else ''})",
            "anneal": f"annealing, {e.planned} epochs averaged",
            "fixed": f"fixed schedule of {e.planned} epochs",
        }[e.phase]
        acc = "" if e.inner_accuracy is None else f", inner accuracy {e.inner_accuracy:.2f}"
        note = f"; {e.note}" if e.note and e.phase == "search" else ""
        info(f"score: {self.job} epoch {e.epoch + 1}: {what}, loss {e.loss:.3f}{acc} ({per_epoch:.1f} s/epoch){note}")

    def _end(self, e: EpochProgress) -> int:
        if e.phase == "fixed":
            return e.planned
        if e.phase == "anneal":
            self._anneal_start = getattr(self, "_anneal_start", e.epoch)
            return self._anneal_start + e.planned
        return 10**9


def run_score(workdir: Workdir, stage: ScoreStageConfig) -> ScoreResult:
    """The ``mmcurate score`` stage: built-in out-of-fold scores, imported scores or a plugin's,
    or (``--candidates``) new clips scored with the saved fold ensemble."""
    ingest = IngestDir(stage.ingest_dir or workdir.ingest.path).require()
    if stage.candidates is not None:
        from mmcurate.score.candidates import score_candidates

        if stage.scores_from is not None or stage.scorer != BUILTIN_SCORER:
            raise MMCurateError(
                "--candidates scores with the saved built-in scorers; leave out --scores-from/--scorer"
            )
        candidates = IngestDir(stage.candidates).require()
        with lock_for_scoring(candidates):  # the candidates' scores are written there
            return score_candidates(ingest, candidates, stage.scorer_settings, allow_missing=stage.allow_missing)
    if stage.scorer == BUILTIN_SCORER and stage.scores_from is None:
        return score_out_of_fold(
            ingest,
            stage.scorer_settings,
            overwrite=stage.overwrite,
            allow_missing=stage.allow_missing,
            array=stage.array,
            execution=stage.execution,
            save_scorers=stage.save_scorers,
        )
    with lock_for_scoring(ingest):
        return _external_scores(ingest, stage)


def _external_scores(ingest: IngestDir, stage: ScoreStageConfig) -> ScoreResult:
    """Imported (``--scores-from``) or plugin (``--scorer``) scores, validated, written as scores.parquet."""
    if stage.scores_from is not None:
        from mmcurate.score.importer import import_scores

        table, scorer_id = import_scores(ingest, stage.scores_from)
        return write_external_scores(ingest, table, scorer_id, "imported", {"file": str(stage.scores_from)})
    from mmcurate.score.importer import validate_scores

    fn = get_scorer(stage.scorer)
    try:
        ext = fn(ingest.path, dataclasses.asdict(stage.scorer_settings))
    except MMCurateError:
        raise
    except Exception as exc:
        raise MMCurateError(f"scorer {stage.scorer!r} failed: {type(exc).__name__}: {exc}") from None
    table, scorer_id = validate_scores(ingest, ext, f"scorer {stage.scorer!r}", f"plugin:{stage.scorer}")
    return write_external_scores(ingest, table, scorer_id, "plugin", {"scorer": stage.scorer})


@contextlib.contextmanager
def lock_for_scoring(ingest: IngestDir, array: ArrayJobConfig | None = None, *, take: bool = True) -> Iterator[None]:
    """Hold ``ingest``'s folder lock (the one ingest takes) while scores are written into it: a second
    scoring of the same folder, or one during an ingest into it, is a one-line error instead of two
    runs doing the same work and racing on the results. Parts of an array job share it."""
    if not take:
        yield
        return
    lock = ingest.lock().acquire_for_run((array or ArrayJobConfig()).resolved()[0])
    try:
        yield
    finally:
        lock.release()


def score_out_of_fold(
    ingest: IngestDir,
    cfg: ScoreConfig,
    overwrite: bool = False,
    allow_missing: bool = False,
    executor: Executor | None = None,
    *,
    array: ArrayJobConfig | None = None,
    execution: ExecutionConfig | None = None,
    save_scorers: bool = True,
) -> ScoreResult:
    """Score every sample of a finished ingest out-of-fold; write scores.parquet + scores.json.

    Each (repeat, fold, modality) job is a work unit with a completion marker in
    ``score_runs/<scorer>/``; the executor trains the pending ones (locally inline: the training
    itself uses the cores; on Ray one task per job, the decoded inputs put in the object store
    once), and the driver writes each job's result, then the scores once every job is done.
    Under ``--distributed`` every rank trains every job together (data-parallel); rank 0 holds the
    ingest folder's lock for all ranks and writes. With ``save_scorers`` the first repeat's fold
    models are saved too, with their out-of-fold calibration, in ``scorers/<scorer>/``
    (:mod:`mmcurate.score.scorers`).
    """
    t0 = time.monotonic()
    execution = execution or ExecutionConfig()
    device = execution_device(cfg.device, execution)
    ranks = SINGLE
    if execution.distributed:
        ranks, device = distributed.start(device)
    with lock_for_scoring(ingest, array, take=ranks.is_main):
        plan = ScorePlan.of(ingest, cfg.resolved(device.type == "cuda"), allow_missing, save_scorers)
        threads, workers = _job_layout(plan, device, execution, ranks)
        executor = executor or make_executor(
            workers, array, execution, cpus=threads, threads=threads, preload=TRAINING_IMPORTS
        )
        if overwrite and ranks.is_main:
            for folder in (plan.run_dir, plan.scorers_dir):
                if folder.exists():
                    shutil.rmtree(folder)
        distributed.barrier(ranks)
        seconds: dict[str, float] = {}
        if not _train_jobs(plan, executor, device, threads, ranks, seconds):
            return ScoreResult(ingest.path, plan.scorer_id, str(device), time.monotonic() - t0, {}, finished=False)
        how = {"engine": execution.engine, "threads_per_job": threads}
        return _write_scores(plan, seconds, device, how, ranks, t0)


def _job_layout(plan: ScorePlan, device: torch.device, execution: ExecutionConfig, ranks: Ranks) -> tuple[int, int]:
    """(torch threads per job, local worker processes).

    On CPU every job trains with one thread and the local engine runs one job per core: the CPU-sized
    scorers are too small for intra-op threads to pay (measured in benchmarks/results/score_profile.md),
    and one thread per job makes the results the same on any machine and either engine, whatever its
    core count. One process when the inputs are decoded per batch (loader workers cannot start inside
    pool workers), under --distributed, and on a GPU. ``--cpus-per-job`` sets the threads per job."""
    on_cpu = device.type == "cpu"
    threads = execution.threads(1 if on_cpu else torch.get_num_threads())
    mode = input_mode(plan.ingest, plan.sample_ids, plan.classes, _tensor_config(plan.cfg), plan.cfg)
    in_memory = mode != "stream"
    if not on_cpu or ranks.world > 1 or not in_memory:
        return threads, 1
    return threads, processes_for(threads)


@dataclass(frozen=True)
class ScorePlan:
    """What every job of one out-of-fold scoring shares: the samples, their folds, the scorer's folders,
    and how each job is named, marked and judged done."""

    ingest: IngestDir
    cfg: ScoreConfig  # resolved for the device
    sample_ids: list[str]
    labels: list[str]
    classes: list[str]
    y: np.ndarray
    fold_sets: list[np.ndarray]
    grouping: tuple[bool, str]
    save_scorers: bool
    fingerprint: str

    @classmethod
    def of(cls, ingest: IngestDir, cfg: ScoreConfig, allow_missing: bool, save_scorers: bool) -> ScorePlan:
        manifest = ingest.read_manifest()
        classes = ingest.read_classes()
        labels = manifest.column("label").to_pylist()
        check_modalities(manifest, allow_missing)
        check_fold_feasible(labels, cfg.folds)
        index = {c: i for i, c in enumerate(classes)}
        groups = manifest.column("group").to_pylist()
        return cls(
            ingest,
            cfg,
            manifest.column("sample_id").to_pylist(),
            labels,
            classes,
            np.asarray([index[label] for label in labels], dtype=np.int64),
            [_folds(cfg, labels, groups, r) for r in range(int(cfg.repeats or 1))],
            resolve_group_folds(cfg.group_folds, groups, cfg.folds),
            save_scorers,
            ingest.fingerprint(),
        )

    @property
    def scorer_id(self) -> str:
        return self.cfg.scorer_id()

    @property
    def run_dir(self) -> Path:
        return self.ingest.score_runs(self.scorer_id)

    @property
    def scorers_dir(self) -> Path:
        return self.ingest.scorers(self.scorer_id)

    @property
    def jobs(self) -> list[ScoreJob]:
        """The cross-fitting jobs: every (repeat, fold, modality)."""
        repeats, folds = range(len(self.fold_sets)), range(self.cfg.folds)
        return [ScoreJob(r, k, m) for r in repeats for k in folds for m in MODALITIES]

    def marker(self, job: ScoreJob) -> UnitMarker:
        return UnitMarker(self.run_dir / f"{job.name}.json", self.run_dir)

    def identity(self, job: ScoreJob) -> str:
        # a job that kept its models is not the same unit as one that did not
        keeps = self.save_scorers and job.repeat == 0
        held = np.flatnonzero(self.fold_sets[job.repeat] == job.fold)
        # a result of an earlier convergence rule is another model: trained again, not mixed in
        rule = [] if self.cfg.epochs is not None else [STOP_RULE]
        return config_hash([self.fingerprint, held.tolist(), *(["models"] if keeps else []), *rule], length=32)

    def completion(self) -> Completion[ScoreJob]:
        # sha256: a damaged result (same size) is trained again, not trusted
        return Completion(
            marker=lambda unit: self.marker(unit.items[0]),
            identity=lambda unit: self.identity(unit.items[0]),
            verify="sha256",
        )


def _train_jobs(
    plan: ScorePlan, executor: Executor, device: torch.device, threads: int, ranks: Ranks, seconds: dict[str, float]
) -> bool:
    """Train the pending jobs through the driver, writing each result as it comes (its seconds into
    ``seconds``); whether every job, of every array part, is done."""
    cfg, repeats = plan.cfg, len(plan.fold_sets)
    units = [WorkUnit(job.name, i, (job,)) for i, job in enumerate(plan.jobs)]
    driver = UnitDriver("score", "training job", units, plan.completion(), executor, ranks)
    why = "GPU found" if device.type == "cuda" else "no GPU found: CPU-sized models"
    then = "; each fold's models kept to score new clips (--candidates)"
    info(
        f"score: {len(plan.sample_ids)} samples, {len(plan.classes)} classes, {cfg.folds} folds x 2 modalities"
        f"{f' x {repeats} repeats' if repeats > 1 else ''} on {device} "
        f"({why}: ResNet-18 width {cfg.width}, {cfg.image_size} px frames, {_schedule_words(cfg)}; "
        f"{executor.describe()}, {threads} thread(s) per job"
        f"{f', data-parallel over {ranks.world} ranks' if ranks.world > 1 else ''}); group folds {plan.grouping[1]}"
        f"{then if plan.save_scorers else ''}"
    )
    trainer: FoldTrainer | None = None

    def build() -> FoldTrainer:
        nonlocal trainer
        trainer = _trainer(plan.ingest, plan.sample_ids, plan.labels, plan.classes, cfg, device, plan.fold_sets)
        trainer.threads, trainer.ranks = threads, ranks
        trainer.keep_models = plan.save_scorers
        return trainer

    def write(unit: WorkUnit[ScoreJob], results: list[tuple[FitResult, float]]) -> Written:
        [(res, took)] = results
        job = unit.items[0]
        seconds[job.name] = round(took, 2)
        tensor_config = (trainer.tensor_config if trainer else None) or _tensor_config(cfg)
        return _save_job(plan, job, res, tensor_config)

    driver.run(build, write, progress="training scorers (repeat x fold x modality)")
    return ranks.is_main and driver.finish(IngestDir.SCORES)


def _schedule_words(cfg: ScoreConfig) -> str:
    if cfg.epochs is not None:
        return f"{cfg.epochs} epochs, confidence averaged over the last {cfg.avg_last}"
    return (
        f"each trained until its inner validation split stops improving (at most {cfg.max_epochs} epochs, "
        f"{cfg.restarts} restart(s) when stuck at chance), confidence averaged over its anneal epochs"
    )


def _save_job(plan: ScorePlan, job: ScoreJob, res: FitResult, tensor_config: TensorConfig) -> Written:
    """One finished job's files: its held-out arrays, and (first repeat, ``--save-scorers``) its models."""
    cfg = plan.cfg
    check_finite(res.probs, job.name, cfg)
    part = plan.run_dir / f"{job.name}.npz"
    _save_part(part, res)
    payload = {"report": _job_summary(res.report), "tensor_config": tensor_config.to_dict()}
    if not (plan.save_scorers and job.repeat == 0):
        return Written([part], payload)
    if not np.isfinite(res.losses).all():
        raise MMCurateError(
            f"scorer training diverged: job {job.name} has a non-finite loss "
            f"(--lr {cfg.lr:g}); lower --lr, then rerun `mmcurate score`"
        )
    member = member_file(plan.scorers_dir, job.modality, job.fold)
    save_member(member, res, job.modality, len(plan.classes), int(cfg.width or 8), job_seed(cfg.seed, job))
    return Written([part, member], payload)


#: what scores.json keeps of a job's training report (the per-epoch history stays in the marker)
SUMMARY_KEYS = (
    "schedule",
    "epochs",
    "search_epochs",
    "anneal_epochs",
    "stop",
    "restarts",
    "learned",
    "best_inner_loss",
    "best_inner_epoch",
    "inner_samples",
    "final_inner_loss",
    "final_inner_accuracy",
)


def _job_summary(report: dict[str, Any]) -> dict[str, Any]:
    """A job's training report: the summary fields and each attempt's per-epoch history."""
    return {**{k: report[k] for k in SUMMARY_KEYS if k in report}, "attempts": report.get("attempts", [])}


def read_runs(
    plan: ScorePlan, run_dir: Path, on_job: Callable[[ScoreJob, np.ndarray, FitResult], None] | None = None
) -> dict[str, ModalityRuns]:
    """Every job's saved held-out arrays in ``run_dir``, gathered per modality for
    :func:`assemble_scores`; ``on_job`` sees each job's result as it is read (one in memory at a time)."""
    n, c = len(plan.sample_ids), len(plan.classes)
    runs = {m: ModalityRuns.empty(len(plan.fold_sets), n, c) for m in MODALITIES}
    for job in plan.jobs:
        held = np.flatnonzero(plan.fold_sets[job.repeat] == job.fold)
        res = _load_part(run_dir / f"{job.name}.npz", len(held), c)
        runs[job.modality].add(job.repeat, held, res.probs, res.held_true, res.inner_idx, res.inner_probs)
        if on_job is not None:
            on_job(job, held, res)
    return runs


def _write_scores(
    plan: ScorePlan,
    seconds: dict[str, float],
    device: torch.device,
    execution: dict[str, Any],
    ranks: Ranks,
    t0: float,
) -> ScoreResult:
    """Assemble every job's held-out arrays into scores.parquet (+ scores.json, and the saved scorers' meta)."""
    cfg, classes, y, ingest = plan.cfg, plan.classes, plan.y, plan.ingest
    fold_stats: list[dict[str, Any]] = []
    reports: dict[tuple[str, int], dict[str, Any]] = {}

    def record(job: ScoreJob, held: np.ndarray, res: FitResult) -> None:
        report = {
            k: v for k, v in (plan.marker(job).read_payload() or {}).get("report", {}).items() if k != "attempts"
        }
        if job.repeat == 0:
            reports[(job.modality, job.fold)] = report
        acc = float((res.probs.argmax(1) == y[held]).mean())
        fold_stats.append(
            {
                "repeat": job.repeat,
                "fold": job.fold,
                "modality": job.modality,
                "held_out": int(len(held)),
                "accuracy": round(acc, 4),
                **report,
                "seconds": seconds.get(job.name, 0.0),
                "resumed": job.name not in seconds,
            }
        )

    runs = read_runs(plan, plan.run_dir, record)
    folds = plan.fold_sets[0]
    assembled = assemble_scores(y, folds, runs, cfg.calibration)
    table_out, metrics = scores_table(plan.sample_ids, plan.labels, classes, y, folds, assembled, plan.scorer_id)
    for m, cal in metrics["calibration"].items():
        if cal["method"] == "none" and cfg.calibration != "none":
            info(f"score: {m} confidences are written uncalibrated: {cal['reason']}")
    elapsed = time.monotonic() - t0
    metrics["folds"] = fold_stats
    preds = {m: np.mean(runs[m].probs, axis=0).argmax(1) for m in MODALITIES}
    health = check_scores(y, folds, preds, len(classes), reports, cfg.patience)
    for verdict in health["verdicts"]:
        (info if verdict["status"] == "fail" else warn)(verdict["line"])
    if plan.save_scorers:
        tensor_config = (plan.marker(plan.jobs[0]).read_payload() or {}).get("tensor_config")
        _write_scorer_meta(plan, runs, metrics, tensor_config or _tensor_config(cfg).to_dict(), str(device))
    ingest.write_scores(
        table_out,
        {
            "source": "oof",
            "scorer_id": plan.scorer_id,
            "config": cfg.content_dict(),
            "config_hash": cfg.content_hash(),
            "tensor_config": _tensor_config(cfg).to_dict(),
            "device": str(device),
            "execution": {**execution, "ranks": ranks.world},
            "group_folds": {"used": plan.grouping[0], "why": plan.grouping[1]},
            "manifest_fingerprint": plan.fingerprint,
            "groups_fingerprint": ingest.groups_fingerprint(),
            "scorers": f"{IngestDir.SCORERS}/{plan.scorer_id}" if plan.save_scorers else None,
            "mmcurate_version": __version__,
            "torch_version": torch.__version__,
            "health": health,
            "both_weak": metrics["both_weak"],
            "metrics": metrics,
            "elapsed_seconds": round(elapsed, 2),
        },
    )
    return ScoreResult(ingest.path, plan.scorer_id, str(device), elapsed, metrics, health=health)


def _write_scorer_meta(
    plan: ScorePlan, runs: dict[str, ModalityRuns], metrics: dict[str, Any], tensor_config: dict[str, Any], device: str
) -> None:
    """``scorers/<scorer>/``: each modality's fold ensemble in one file, and ``scorer.json`` with what
    scoring new clips needs besides the weights, the calibration fitted on every out-of-fold
    prediction (see :mod:`mmcurate.score.scorers`)."""
    cfg, y, ingest, scorer_id = plan.cfg, plan.y, plan.ingest, plan.scorer_id
    for m in MODALITIES:
        merge_members(ingest.scorers(scorer_id), m, range(cfg.folds))
    calibration = {}
    for m in MODALITIES:
        oof = metrics["calibration"][m]
        if oof["method"] == "none":  # the out-of-fold scores are uncalibrated: new clips must match them
            calibration[m] = {"method": "none", "reason": oof.get("reason")}
        else:
            calibration[m] = calibration_params(np.mean(runs[m].probs, axis=0), y, cfg.calibration)
    write_scorer_meta(
        ingest.scorers(scorer_id),
        {
            "scorer_id": scorer_id,
            "config": cfg.content_dict(),
            "config_hash": cfg.content_hash(),
            "classes": plan.classes,
            "tensor_config": tensor_config,
            "calibration": calibration,
            "calibration_fitted_on": f"every out-of-fold prediction of this ingest ({len(y)} samples)",
            "epoch_ratio": {m: metrics["uncertainty"][f"epoch_ratio_{m}"] for m in MODALITIES},
            "models": {m: model_file(ingest.scorers(scorer_id), m).name for m in MODALITIES},
            "seeds": {m: [job_seed(cfg.seed, ScoreJob(0, k, m)) for k in range(cfg.folds)] for m in MODALITIES},
            "ensemble": f"the {cfg.folds} fold models of the first repeat, each trained on "
            f"{cfg.folds - 1}/{cfg.folds} of the {len(y)} samples",
            "manifest_fingerprint": plan.fingerprint,
            "device": device,
            "mmcurate_version": __version__,
            "torch_version": torch.__version__,
        },
    )


def _tensor_config(cfg: ScoreConfig) -> TensorConfig:
    return TensorConfig(
        image_size=int(cfg.image_size or 32),
        num_frames=cfg.num_frames,
        audio=cfg.audio_features,
        audio_frames=cfg.audio_frames,
    )


def _trainer(
    ingest: IngestDir,
    sample_ids: list[str],
    labels: list[str],
    classes: list[str],
    cfg: ScoreConfig,
    device: torch.device,
    fold_sets: list[np.ndarray],
) -> FoldTrainer:
    """Decode the inputs once into the job function: memory-mapped from the tensor cache (decoded into it
    on the first run), else in memory, else per batch when they would not fit (see :func:`input_mode`)."""
    tcfg = _tensor_config(cfg)
    workers = max(1, cfg.workers or torch.get_num_threads())
    mode = input_mode(ingest, sample_ids, classes, tcfg, cfg)
    sources: dict[str, Any] = {}
    if mode in ("cache", "memory"):
        if mode == "cache":
            cache = TensorCache.of(ingest.path)
            key = key_of(ingest.fingerprint(), tcfg, classes, sample_ids)
            tensors = cache.open_or_build(key, lambda: read_shards(ingest.path, sample_ids), workers=workers)
            info(
                f"score: inputs memory-mapped from {tensors.stats['tensor_cache']} "
                f"({'decoded now' if tensors.stats['decoded'] else 'decoded by an earlier run'}; "
                f"{cache.size_bytes() / 1e9:.2f} GB on disk, --no-tensor-cache decodes into memory instead)"
            )
        else:
            tensors = build_av_tensors(read_shards(ingest.path, sample_ids), classes, tcfg, workers=workers)
        n_frames = int(tensors.frames.shape[1])
        for m in MODALITIES:
            sources[m] = InMemorySource(tensors, m)
        tcfg = dataclasses.replace(tcfg, audio_frames=tensors.audio_frames)
    else:
        need_gb = decoded_size_gb(len(sample_ids), tcfg)
        info(
            f"score: decoded inputs would take about {need_gb:.1f} GB "
            f"(> --memory-budget-gb {cfg.memory_budget_gb:g}) and the tensor cache is "
            f"{'off' if not cfg.tensor_cache else 'out of disk room'}; "
            f"decoding per batch with {workers} loader worker(s) instead"
        )
        dataset = AVDataset(read_shards(ingest.path, sample_ids), classes, tcfg)
        index = {c: i for i, c in enumerate(classes)}
        label_idx = torch.tensor([index[lbl] for lbl in labels], dtype=torch.int64)
        n_frames = tcfg.num_frames
        for m in MODALITIES:
            sources[m] = StreamingSource(dataset, label_idx, m, workers)
        tcfg = dataclasses.replace(tcfg, audio_frames=dataset.audio_frames)
    trainer = FoldTrainer(sources, fold_sets, len(classes), cfg, device, n_frames)
    trainer.tensor_config = tcfg
    return trainer


def input_mode(
    ingest: IngestDir, sample_ids: list[str], classes: list[str], tcfg: TensorConfig, cfg: ScoreConfig
) -> str:
    """Where the jobs' inputs come from: ``cache`` (the memory-mapped tensor cache, the default: its entry
    exists or the disk has room for one), ``memory`` (``--no-tensor-cache`` or no disk room, and the set
    fits ``--memory-budget-gb``), else ``stream`` (decoded per batch: slow, one job at a time)."""
    if cfg.tensor_cache:
        cache = TensorCache.of(ingest.path)
        if cache.has_room(len(sample_ids), tcfg):
            return "cache"
        if cache.open(key_of(ingest.fingerprint(), tcfg, classes, sample_ids)) is not None:
            return "cache"
    if decoded_size_gb(len(sample_ids), tcfg) <= cfg.memory_budget_gb:
        return "memory"
    return "stream"


def _folds(cfg: ScoreConfig, labels: list[str], groups: list[str | None], repeat: int) -> np.ndarray:
    """Fold assignment of one cross-fitting repeat (repeat 0 uses the seed itself)."""
    seed = cfg.seed + 7919 * repeat
    if resolve_group_folds(cfg.group_folds, groups, cfg.folds)[0]:
        return group_folds(labels, groups, cfg.folds, seed)
    return stratified_folds(labels, cfg.folds, seed)


def decoded_size_gb(n: int, tcfg: TensorConfig) -> float:
    """Upper bound of the memory the decoded set takes (frames uint8, audio float32)."""
    frame_bytes = tcfg.num_frames * 3 * tcfg.image_size**2
    audio_bytes = 4 * tcfg.audio.num_bins * (tcfg.audio_frames or tcfg.max_audio_frames)
    return n * (frame_bytes + audio_bytes) / 1e9


def _load_part(path: Path, rows: int, num_classes: int) -> FitResult:
    """The arrays of a finished job (its marker vouched for the file)."""
    try:
        with np.load(path) as z:
            res = FitResult(
                np.array(z["probs"]),
                np.array(z["held_true"]),
                np.array(z["epochs"]),
                np.array(z["train_true"]),
                np.array(z["losses"]),
                inner_idx=np.array(z["inner_idx"]),
                inner_probs=np.array(z["inner_probs"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise MMCurateError(f"{path}: unreadable training result ({exc}); rerun `mmcurate score`") from None
    if res.probs.shape != (rows, num_classes) or res.held_true.ndim != 2 or res.held_true.shape[1] != rows:
        raise MMCurateError(
            f"{path}: holds {res.probs.shape} probabilities, expected {(rows, num_classes)}; rerun `mmcurate score`"
        )
    return res


def check_finite(probs: np.ndarray, job: str, cfg: ScoreConfig) -> None:
    """A one-line error when training diverged (NaN or infinite probabilities): scores made of them
    would be written as if valid and every later stage would misread them."""
    bad = int((~np.isfinite(probs)).any(axis=1).sum())
    if bad:
        raise MMCurateError(
            f"scorer training diverged: job {job} gave no finite confidence for {bad} of {len(probs)} samples "
            f"(--lr {cfg.lr:g}); lower --lr (default 0.01) or --weight-decay, then rerun `mmcurate score`"
        )


def _save_part(path: Path, res: FitResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                probs=res.probs,
                held_true=res.held_true,
                epochs=res.epochs,
                train_true=res.train_true,
                losses=res.losses,
                inner_idx=res.inner_idx,
                inner_probs=res.inner_probs,
            )
