"""``mmcurate score``: out-of-fold unimodal confidences and the per-sample discrepancy.

For each of K stratified folds, an audio-only and a visual-only classifier train on the other
folds and score the held-out one. With ``repeats`` > 1 the whole cross-fitting is repeated
with other fold assignments and seeds and the held-out probabilities are averaged (repeated
cross-fitting): every confidence is still out-of-fold, with less model-to-model noise. Each
(fold, modality) result is saved as soon as it exists (``score_runs/<scorer>/``), so an
interrupted run resumes where it stopped, and the final
``scores.parquet`` is written atomically once every sample has both confidences. Calibration,
per-sample uncertainty and bin probability are assembled from the jobs' arrays by the pure
functions of :mod:`mmcurate.score.assemble`. With ``--save-scorers`` (the default) two more jobs
train one scorer per modality on every sample and save it for scoring new clips
(:mod:`mmcurate.score.scorers`, ``--candidates``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from mmcurate import __version__
from mmcurate.common.atomic import atomic_path
from mmcurate.common.console import info, progress_bar, summary_table
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.data import AVDataset, TensorConfig, build_av_tensors, read_shards
from mmcurate.execution import ArrayJobConfig, ExecutionConfig, Executor, WorkUnit, distributed, make_executor
from mmcurate.execution.distributed import SINGLE, Ranks
from mmcurate.score.assemble import Assembled, ModalityRuns, assemble_scores
from mmcurate.score.config import BUILTIN_SCORER, ScoreConfig, ScoreStageConfig
from mmcurate.score.folds import check_fold_feasible, group_folds, resolve_group_folds, stratified_folds
from mmcurate.score.registry import get_scorer
from mmcurate.score.scorers import calibration_params, model_file, save_model, write_scorer_meta
from mmcurate.score.train import FitResult, InMemorySource, StreamingSource, fit_predict
from mmcurate.store import IngestDir, UnitMarker, Workdir
from mmcurate.store.schemas import SCORES_SCHEMA

MODALITIES = ("audio", "visual")
#: the fold number of a whole-set job: trained on every sample, saved to score new clips
WHOLE = -1


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; an explicit CUDA request without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MMCurateError(f"--device {name} requested but no CUDA GPU is available; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise MMCurateError(f"--device {name!r} is not a device torch knows (use auto, cpu, cuda, cuda:1)") from None


def scores_state(ingest_dir: Path, cfg: ScoreConfig | None = None) -> str:
    """``"fresh"``, ``"missing"`` or ``"stale: <why>"`` for the scores in ``ingest_dir`` (the store's
    answer); with ``cfg``, scores made by another scorer config count as stale."""
    want = None if cfg is None else (lambda on_gpu: cfg.resolved(on_gpu).content_hash())
    return IngestDir(ingest_dir).scores_state(want)


@dataclass
class ScoreResult:
    ingest_dir: Path
    scorer_id: str
    device: str
    elapsed: float
    metrics: dict[str, Any] = field(default_factory=dict)
    finished: bool = True

    @property
    def scores_path(self) -> Path:
        return self.ingest_dir / IngestDir.SCORES


@dataclass(frozen=True)
class ScoreJob:
    """One training job of the cross-fitting: a modality's scorer trained without one fold."""

    repeat: int
    fold: int
    modality: str

    @property
    def whole(self) -> bool:
        return self.fold == WHOLE

    @property
    def name(self) -> str:
        if self.whole:
            return f"whole-{self.modality}"
        return (
            f"fold{self.fold}-{self.modality}"
            if self.repeat == 0
            else f"repeat{self.repeat}-fold{self.fold}-{self.modality}"
        )


def job_seed(seed: int, job: ScoreJob) -> int:
    """The training seed of a job: distinct per (repeat, fold, modality); whole-set jobs use
    ``seed * 1000 + 990 + modality`` (a fold job reaches that only at repeat 9, fold 9)."""
    if job.whole:
        return seed * 1000 + 990 + MODALITIES.index(job.modality)
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
        #: the tensor config with ``audio_frames`` fixed to what the inputs were decoded with
        self.tensor_config: TensorConfig | None = None

    def __call__(self, job: ScoreJob) -> tuple[FitResult, float]:
        started = time.monotonic()
        folds = self.fold_sets[job.repeat]
        held, train = np.flatnonzero(folds == job.fold), np.flatnonzero(folds != job.fold)  # whole: none held out
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
                ranks=self.ranks,
                keep_window=job.whole,
            )
        finally:
            torch.set_num_threads(before)
        return res, time.monotonic() - started


def run_score(workdir: Workdir, stage: ScoreStageConfig) -> ScoreResult:
    """The ``mmcurate score`` stage: built-in out-of-fold scores, imported scores or a plugin's,
    or (``--candidates``) new clips scored with the saved whole-set scorers."""
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
    """Score every sample of a finished ingest out-of-fold, holding the ingest folder's lock (rank 0 of
    a ``--distributed`` launch holds it for all ranks); see :func:`_score_out_of_fold`."""
    t0 = time.monotonic()
    execution = execution or ExecutionConfig()
    on_ray_gpu = execution.engine == "ray" and execution.gpus_per_job > 0
    device = torch.device("cuda") if on_ray_gpu else resolve_device(cfg.device)  # Ray assigns each task its GPU
    ranks = SINGLE
    if execution.distributed:
        ranks, device = distributed.start(device)
    with lock_for_scoring(ingest, array, take=ranks.is_main):
        return _score_out_of_fold(
            ingest,
            cfg,
            overwrite,
            allow_missing,
            executor,
            array=array,
            execution=execution,
            save_scorers=save_scorers,
            ranks=ranks,
            device=device,
            t0=t0,
        )


def _score_out_of_fold(
    ingest: IngestDir,
    cfg: ScoreConfig,
    overwrite: bool,
    allow_missing: bool,
    executor: Executor | None,
    *,
    array: ArrayJobConfig | None,
    execution: ExecutionConfig,
    save_scorers: bool,
    ranks: Ranks,
    device: torch.device,
    t0: float,
) -> ScoreResult:
    """Score every sample of a finished ingest out-of-fold; write scores.parquet + scores.json.

    Each (repeat, fold, modality) job is a work unit with a completion marker in
    ``score_runs/<scorer>/``; the executor trains the pending ones (locally inline: the training
    itself uses the cores; on Ray one task per job, the decoded inputs put in the object store
    once), and the driver writes each job's result, then the scores once every job is done.
    Under ``--distributed`` every rank trains every job together (data-parallel); rank 0 writes.
    With ``save_scorers`` two more jobs train a whole-set scorer per modality, saved with their
    out-of-fold calibration in ``scorers/<scorer>/`` (:mod:`mmcurate.score.scorers`).
    """
    threads = execution.threads(torch.get_num_threads())
    executor = executor or make_executor(1, array, execution, cpus=threads, threads=threads)
    cfg = cfg.resolved(device.type == "cuda")
    manifest = ingest.read_manifest()
    classes = ingest.read_classes()
    labels = manifest.column("label").to_pylist()
    sample_ids = manifest.column("sample_id").to_pylist()
    _check_modalities(manifest, allow_missing)
    check_fold_feasible(labels, cfg.folds)
    index = {c: i for i, c in enumerate(classes)}
    y = np.asarray([index[label] for label in labels], dtype=np.int64)
    repeats = int(cfg.repeats or 1)
    groups = manifest.column("group").to_pylist()
    grouped, grouping = resolve_group_folds(cfg.group_folds, groups, cfg.folds)
    fold_sets = [_folds(cfg, labels, groups, r) for r in range(repeats)]
    folds = fold_sets[0]

    scorer_id = cfg.scorer_id()
    run_dir = ingest.score_runs(scorer_id)
    scorers_dir = ingest.scorers(scorer_id)
    fingerprint = ingest.fingerprint()
    if overwrite and ranks.is_main:
        for folder in (run_dir, scorers_dir):
            if folder.exists():
                shutil.rmtree(folder)
    distributed.barrier(ranks)
    jobs = [ScoreJob(r, k, m) for r in range(repeats) for k in range(cfg.folds) for m in MODALITIES]
    whole_jobs = [ScoreJob(0, WHOLE, m) for m in MODALITIES] if save_scorers else []
    units = [WorkUnit(job.name, i, (job,)) for i, job in enumerate(jobs + whole_jobs)]

    def marker(job: ScoreJob) -> UnitMarker:
        if job.whole:
            return UnitMarker(scorers_dir / f"{job.modality}.json", scorers_dir)
        return UnitMarker(run_dir / f"{job.name}.json", run_dir)

    def job_identity(job: ScoreJob) -> str:
        if job.whole:
            return config_hash([fingerprint, job.name], length=32)
        held = np.flatnonzero(fold_sets[job.repeat] == job.fold)
        return config_hash([fingerprint, held.tolist()], length=32)

    def job_done(job: ScoreJob) -> bool:  # sha256: a damaged result (same size) is trained again, not trusted
        return marker(job).read(job_identity(job), verify="sha256") is not None

    pending = [u for u in units if executor.owns(u) and not job_done(u.items[0])]
    distributed.barrier(ranks)  # every rank has decided what to train before rank 0 writes anything
    why = "GPU found" if device.type == "cuda" else "no GPU found: CPU-sized models"
    info(
        f"score: {len(sample_ids)} samples, {len(classes)} classes, {cfg.folds} folds x 2 modalities"
        f"{f' x {repeats} repeats' if repeats > 1 else ''} on {device} "
        f"({why}: ResNet-18 width {cfg.width}, {cfg.image_size} px frames, {cfg.epochs} epochs, "
        f"confidence averaged over the last {cfg.avg_last}; {executor.describe()}"
        f"{f', data-parallel over {ranks.world} ranks' if ranks.world > 1 else ''}); group folds {grouping}"
        f"{'; then 2 whole-set scorers saved for --candidates (--no-save-scorers skips them)' if save_scorers else ''}"
    )
    seconds: dict[str, float] = {}
    if pending:
        trainer = _trainer(ingest, sample_ids, labels, classes, cfg, device, fold_sets)
        trainer.threads, trainer.ranks = threads, ranks
        with progress_bar("training scorers (repeat x fold x modality)", len(pending)) as advance:
            for unit, [(res, took)] in executor.map_units(trainer, pending):
                job = unit.items[0]
                if not ranks.is_main:  # only rank 0 writes
                    continue
                check_finite(res.probs, job.name, cfg)
                if job.whole and not np.isfinite(res.losses).all():
                    raise MMCurateError(
                        f"scorer training diverged: whole-set job {job.name} has a non-finite loss "
                        f"(--lr {cfg.lr:g}); lower --lr, then rerun `mmcurate score`"
                    )
                if job.whole:
                    part = model_file(scorers_dir, job.modality)
                    tensor_config = trainer.tensor_config or _tensor_config(cfg)
                    save_model(
                        part,
                        res,
                        job.modality,
                        len(classes),
                        int(cfg.width or 8),
                        tensor_config,
                        job_seed(cfg.seed, job),
                    )
                    marker(job).record(
                        job_identity(job),
                        [part],
                        {"tensor_config": tensor_config.to_dict(), "audio_stats": list(res.audio_stats or ())},
                    )
                else:
                    part = run_dir / f"{job.name}.npz"
                    _save_part(part, res)
                    marker(job).record(job_identity(job), [part])
                seconds[job.name] = round(took, 2)
                advance()
    if not ranks.is_main:
        return ScoreResult(ingest.path, scorer_id, str(device), time.monotonic() - t0, {}, finished=False)
    done = [u for u in units if job_done(u.items[0])]
    if len(done) < len(units):
        info(
            f"score: this task's jobs are done; {len(units) - len(done)} of {len(units)} training jobs belong to "
            "other array tasks and are not finished yet; the last task to finish writes scores.parquet"
        )
        return ScoreResult(ingest.path, scorer_id, str(device), time.monotonic() - t0, {}, finished=False)

    n, window = len(sample_ids), int(cfg.avg_last or 1)
    runs = {
        m: ModalityRuns(
            [np.zeros((n, len(classes))) for _ in range(repeats)], [np.zeros((window, n)) for _ in range(repeats)]
        )
        for m in MODALITIES
    }
    fold_stats: list[dict[str, Any]] = []
    for job in jobs:
        held = np.flatnonzero(fold_sets[job.repeat] == job.fold)
        res = _load_part(run_dir / f"{job.name}.npz", len(held), len(classes), window)
        runs[job.modality].probs[job.repeat][held] = res.probs
        runs[job.modality].window_true[job.repeat][:, held] = res.held_true
        acc = float((res.probs.argmax(1) == y[held]).mean())
        fold_stats.append(
            {
                "repeat": job.repeat,
                "fold": job.fold,
                "modality": job.modality,
                "held_out": int(len(held)),
                "accuracy": round(acc, 4),
                "seconds": seconds.get(job.name, 0.0),
                "resumed": job.name not in seconds,
            }
        )
    assembled = assemble_scores(y, folds, runs, cfg.calibration)
    table_out, metrics = _scores_table(sample_ids, labels, classes, y, folds, assembled, scorer_id)
    for m, cal in metrics["calibration"].items():
        if cal["method"] == "none" and cfg.calibration != "none":
            info(f"score: {m} confidences are written uncalibrated: {cal['reason']}")
    elapsed = time.monotonic() - t0
    metrics["folds"] = fold_stats
    if save_scorers:  # what the saved scorers cost (0 when resumed)
        metrics["whole_set_seconds"] = {job.name: seconds.get(job.name, 0.0) for job in whole_jobs}
    if save_scorers:
        _write_scorer_meta(
            ingest,
            scorer_id,
            cfg,
            classes,
            y,
            runs,
            metrics,
            fingerprint,
            {m: marker(ScoreJob(0, WHOLE, m)).read_payload() for m in MODALITIES},
            str(device),
        )
    ingest.write_scores(
        table_out,
        {
            "source": "oof",
            "scorer_id": scorer_id,
            "config": cfg.content_dict(),
            "config_hash": cfg.content_hash(),
            "tensor_config": _tensor_config(cfg).to_dict(),
            "device": str(device),
            "execution": {"engine": execution.engine, "threads_per_job": threads, "ranks": ranks.world},
            "group_folds": {"used": grouped, "why": grouping},
            "manifest_fingerprint": fingerprint,
            "groups_fingerprint": ingest.groups_fingerprint(),
            "scorers": f"{IngestDir.SCORERS}/{scorer_id}" if save_scorers else None,
            "mmcurate_version": __version__,
            "torch_version": torch.__version__,
            "metrics": metrics,
            "elapsed_seconds": round(elapsed, 2),
        },
    )
    return ScoreResult(ingest.path, scorer_id, str(device), elapsed, metrics)


def _write_scorer_meta(
    ingest: IngestDir,
    scorer_id: str,
    cfg: ScoreConfig,
    classes: list[str],
    y: np.ndarray,
    runs: dict[str, ModalityRuns],
    metrics: dict[str, Any],
    fingerprint: str,
    payloads: dict[str, Any],
    device: str,
) -> None:
    """``scorers/<scorer>/scorer.json``: what scoring new clips needs besides the weights, with the
    calibration fitted on every out-of-fold prediction (see :mod:`mmcurate.score.scorers`)."""
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
            "classes": classes,
            "tensor_config": payloads["audio"]["tensor_config"],
            "audio_stats": {"mean": payloads["audio"]["audio_stats"][0], "std": payloads["audio"]["audio_stats"][1]},
            "calibration": calibration,
            "calibration_fitted_on": f"every out-of-fold prediction of this ingest ({len(y)} samples)",
            "epoch_ratio": {m: metrics["uncertainty"][f"epoch_ratio_{m}"] for m in MODALITIES},
            "models": {m: model_file(ingest.scorers(scorer_id), m).name for m in MODALITIES},
            "seeds": {m: job_seed(cfg.seed, ScoreJob(0, WHOLE, m)) for m in MODALITIES},
            "train_samples": len(y),
            "manifest_fingerprint": fingerprint,
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
    """Decode the inputs once (in memory, or per batch when they would not fit) into the job function."""
    table = read_shards(ingest.path, sample_ids)
    tcfg = _tensor_config(cfg)
    workers = max(1, cfg.workers or torch.get_num_threads())
    need_gb = decoded_size_gb(len(sample_ids), tcfg)
    sources: dict[str, Any] = {}
    if need_gb <= cfg.memory_budget_gb:
        tensors = build_av_tensors(table, classes, tcfg, workers=workers)
        n_frames = int(tensors.frames.shape[1])
        for m in MODALITIES:
            sources[m] = InMemorySource(tensors, m)
        tcfg = dataclasses.replace(tcfg, audio_frames=tensors.audio_frames)
    else:
        info(
            f"score: decoded inputs would take about {need_gb:.1f} GB "
            f"(> --memory-budget-gb {cfg.memory_budget_gb:g}); "
            f"decoding per batch with {workers} loader worker(s) instead"
        )
        dataset = AVDataset(table, classes, tcfg)
        index = {c: i for i, c in enumerate(classes)}
        label_idx = torch.tensor([index[lbl] for lbl in labels], dtype=torch.int64)
        n_frames = tcfg.num_frames
        for m in MODALITIES:
            sources[m] = StreamingSource(dataset, label_idx, m, workers)
        tcfg = dataclasses.replace(tcfg, audio_frames=dataset.audio_frames)
    trainer = FoldTrainer(sources, fold_sets, len(classes), cfg, device, n_frames)
    trainer.tensor_config = tcfg
    return trainer


def _folds(cfg: ScoreConfig, labels: list[str], groups: list[str | None], repeat: int) -> np.ndarray:
    """Fold assignment of one cross-fitting repeat (repeat 0 uses the seed itself)."""
    seed = cfg.seed + 7919 * repeat
    if resolve_group_folds(cfg.group_folds, groups, cfg.folds)[0]:
        return group_folds(labels, groups, cfg.folds, seed)
    return stratified_folds(labels, cfg.folds, seed)


def _check_modalities(manifest: pa.Table, allow_missing: bool) -> None:
    for col, name in (("has_audio", "audio"), ("has_video", "video")):
        missing = [
            sid
            for sid, ok in zip(manifest.column("sample_id").to_pylist(), manifest.column(col).to_pylist())
            if not ok
        ]
        if missing and not allow_missing:
            raise MMCurateError(
                f"{len(missing)} samples have no {name} (e.g. {missing[0]}); their confidence would score the "
                "zero-fill, not the data. Re-ingest with --missing-modality reject, "
                "or pass --allow-missing to score them anyway"
            )


def decoded_size_gb(n: int, tcfg: TensorConfig) -> float:
    """Upper bound of the memory the decoded set takes (frames uint8, audio float32)."""
    frame_bytes = tcfg.num_frames * 3 * tcfg.image_size**2
    audio_bytes = 4 * tcfg.audio.num_bins * (tcfg.audio_frames or tcfg.max_audio_frames)
    return n * (frame_bytes + audio_bytes) / 1e9


def _load_part(path: Path, rows: int, num_classes: int, window: int) -> FitResult:
    """The arrays of a finished job (its marker vouched for the file)."""
    try:
        with np.load(path) as z:
            res = FitResult(
                np.array(z["probs"]),
                np.array(z["held_true"]),
                np.array(z["epochs"]),
                np.array(z["train_true"]),
                np.array(z["losses"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise MMCurateError(f"{path}: unreadable training result ({exc}); rerun `mmcurate score`") from None
    if res.probs.shape != (rows, num_classes) or res.held_true.shape != (window, rows):
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
            )


def _entropy(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-12, 1.0)
    return -(p * np.log(q)).sum(axis=1)


def _scores_table(
    sample_ids: list[str],
    labels: list[str],
    classes: list[str],
    y: np.ndarray,
    folds: np.ndarray,
    assembled: Assembled,
    scorer_id: str,
) -> tuple[pa.Table, dict[str, Any]]:
    c = assembled.columns
    probs = {m: c[f"probs_{m}"] for m in MODALITIES}
    pa_, pv, d = c["p_audio"], c["p_visual"], c["discrepancy"]
    preferred = np.where(d > 0, "audio", np.where(d < 0, "visual", "tie"))
    cls = np.asarray(classes, dtype=object)
    table = pa.Table.from_pydict(
        {
            "sample_id": sample_ids,
            "label": labels,
            "fold": folds.astype(np.int32),
            "p_audio": pa_,
            "p_visual": pv,
            "discrepancy": d,
            "preferred": preferred.tolist(),
            "pred_audio": cls[probs["audio"].argmax(1)].tolist(),
            "pred_visual": cls[probs["visual"].argmax(1)].tolist(),
            "entropy_audio": _entropy(probs["audio"]),
            "entropy_visual": _entropy(probs["visual"]),
            "scorer_id": [scorer_id] * len(y),
            **{
                k: pa.array(c[k], pa.float64(), from_pandas=True)  # NaN (no uncertainty) -> null
                for k in (
                    "p_audio_uncalibrated",
                    "p_visual_uncalibrated",
                    "p_audio_std",
                    "p_visual_std",
                    "discrepancy_std",
                    "bin_probability",
                )
            },
        },
        schema=SCORES_SCHEMA,
    )
    metrics = {**summarize(table), **assembled.metrics}
    return table, metrics


def summarize(scores: pa.Table) -> dict[str, Any]:
    """Headline numbers of a scores table (shared with ``mmcurate report``)."""
    d = np.asarray(scores.column("discrepancy").to_numpy(zero_copy_only=False), dtype=float)
    return {
        "samples": int(len(d)),
        "share_audio_preferred": round(float((d > 0).mean()), 4) if len(d) else None,
        "share_visual_preferred": round(float((d < 0).mean()), 4) if len(d) else None,
        "mean_discrepancy": round(float(d.mean()), 4) if len(d) else None,
        "mean_abs_discrepancy": round(float(np.abs(d).mean()), 4) if len(d) else None,
        "mean_p_audio": round(float(np.mean(scores.column("p_audio").to_numpy())), 4) if len(d) else None,
        "mean_p_visual": round(float(np.mean(scores.column("p_visual").to_numpy())), 4) if len(d) else None,
    }


def read_scores(ingest_dir: Path) -> pa.Table:
    """The scores of an ingest folder (error naming the command to run when missing)."""
    return IngestDir(ingest_dir).read_scores()


def print_summary(result: ScoreResult) -> None:
    m = result.metrics
    kind = "out-of-fold" if "candidates" not in m else "whole-set scorer"
    rows = [
        ["scorer", result.scorer_id],
        ["device", result.device],
        ["samples", m.get("samples")],
        *([["scores", m["candidates"]]] if "candidates" in m else []),
        [f"{kind} accuracy, audio", m.get("oof_accuracy_audio", m.get("accuracy_audio"))],
        [f"{kind} accuracy, visual", m.get("oof_accuracy_visual", m.get("accuracy_visual"))],
        ["mean p_audio / p_visual", f"{m.get('mean_p_audio')} / {m.get('mean_p_visual')}"],
        ["audio-preferred share", m.get("share_audio_preferred")],
        ["mean |d|", m.get("mean_abs_discrepancy")],
        ["wall time (s)", round(result.elapsed, 1)],
    ]
    summary_table(f"score -> {result.scores_path}", ["", "value"], rows)


def write_external_scores(
    ingest: IngestDir, table: pa.Table, scorer_id: str, source: str, details: dict[str, Any]
) -> ScoreResult:
    """Write validated external scores (``--scores-from`` or a registered scorer) with provenance."""
    metrics = summarize(table)
    ingest.write_scores(
        table,
        {
            "source": source,
            "scorer_id": scorer_id,
            "manifest_fingerprint": ingest.fingerprint(),
            "mmcurate_version": __version__,
            "metrics": metrics,
            **details,
        },
    )
    return ScoreResult(ingest.path, scorer_id, "n/a", 0.0, metrics)
