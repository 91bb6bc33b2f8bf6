"""The score stage's options and entry point, shared by ``mmcurate score`` and ``mmcurate balance``
(which scores first when scores are missing or stale, with the same options)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mmcurate.common.errors import MMCurateError
from mmcurate.score.config import ScoreConfig
from mmcurate.score.registry import BUILTIN, get_scorer
from mmcurate.score.runner import ScoreResult, print_summary, run_score, write_external_scores

#: (option name, click kwargs): every ScoreConfig field a user can set.
_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--folds", {"type": int, "default": 5, "help": "Cross-fitting folds (stratified by label)."}),
    ("--repeats", {"type": int, "default": None, "help": "Repeat the cross-fitting with other folds and seeds and average (default: 2 on CPU, 1 on GPU)."}),
    ("--epochs", {"type": int, "default": 12, "help": "Training epochs per scorer."}),
    ("--avg-last", {"type": int, "default": None, "help": "Average held-out softmax over the last N epochs' weights (default: the second half of training)."}),
    ("--width", {"type": int, "default": None, "help": "ResNet-18 base width (64 = standard). Default: 8 on CPU, 64 on GPU."}),
    ("--image-size", {"type": int, "default": None, "help": "Frame size fed to the visual scorer. Default: 48 on CPU, 224 on GPU."}),
    ("--num-frames", {"type": int, "default": 3, "help": "Frames per clip used by the visual scorer."}),
    ("--train-frames", {"type": int, "default": 1, "help": "Frames per clip in each training step (a random run of this many); all --num-frames at prediction."}),
    ("--audio-features", {"default": "logmel", "help": "Audio feature preset for the audio scorer (logmel, cremad_stft, vggsound_stft, ks_fbank)."}),
    ("--audio-frames", {"type": int, "default": None, "help": "Pad/crop audio features to this many frames (default: 95th percentile of the data)."}),
    ("--batch-size", {"type": int, "default": 64, "help": "Training batch size."}),
    ("--lr", {"type": float, "default": 1e-2, "help": "Peak learning rate (AdamW; linear warm-up, then cosine decay)."}),
    ("--weight-decay", {"type": float, "default": 1e-4, "help": "AdamW weight decay."}),
    ("--label-smoothing", {"type": float, "default": 0.0, "help": "Label smoothing of the scorers' cross-entropy (softer, better-ranked confidences)."}),
    ("--calibration", {"type": click.Choice(["floor", "temperature", "none"]), "default": "floor",
                       "help": "Calibrate each modality's confidences, cross-fitted over the folds (no sample calibrates itself): floor = temperature scaling plus a label-noise floor, temperature = temperature scaling only, none = the raw averaged softmax."}),
    ("--augment/--no-augment", {"default": True, "help": "Random shifts of the frames, time rolls and a frequency mask of the audio while training (mmcurate.score.augment)."}),
    ("--group-folds", {"is_flag": True, "default": False, "help": "Keep each manifest group (speaker, source video) in one fold."}),
    ("--device", {"default": "auto", "help": "auto (CUDA when present), cpu, cuda, cuda:N."}),
    ("--workers", {"type": int, "default": 0, "help": "Decoding threads (in memory) or DataLoader processes (per batch); 0 = torch's thread count."}),
    ("--memory-budget-gb", {"type": float, "default": 4.0, "help": "Decode the whole set into memory when it fits in this much; otherwise decode per batch (DataLoader workers)."}),
]


def score_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Attach every scorer option to a click command."""
    for name, kwargs in reversed(_OPTIONS):
        fn = click.option(name, **kwargs)(fn)
    return fn


def config_from_options(options: dict[str, Any]) -> ScoreConfig:
    """A ScoreConfig from click's keyword arguments (unknown keys ignored)."""
    fields = {f for f in ScoreConfig.__dataclass_fields__}
    return ScoreConfig(**{k: v for k, v in options.items() if k in fields})


def score_from_cli(
    ingest_dir: Path, options: dict[str, Any], scores_from: Path | None = None, scorer: str = BUILTIN,
    allow_missing: bool = False, overwrite: bool = False,
) -> ScoreResult:
    """Run the score stage as the CLI does, and print its summary."""
    if scores_from is not None:
        from mmcurate.ingest import require_ingest
        from mmcurate.score.importer import import_scores

        require_ingest(ingest_dir)
        table, scorer_id = import_scores(ingest_dir, scores_from)
        result = write_external_scores(ingest_dir, table, scorer_id, "imported", {"file": str(scores_from)})
    elif scorer != BUILTIN:
        from mmcurate.ingest import require_ingest
        from mmcurate.score.importer import validate_scores

        require_ingest(ingest_dir)
        fn = get_scorer(scorer)
        try:
            ext = fn(ingest_dir, dict(options))
        except MMCurateError:
            raise
        except Exception as exc:
            raise MMCurateError(f"scorer {scorer!r} failed: {type(exc).__name__}: {exc}") from None
        table, scorer_id = validate_scores(ingest_dir, ext, f"scorer {scorer!r}", f"plugin:{scorer}")
        result = write_external_scores(ingest_dir, table, scorer_id, "plugin", {"scorer": scorer})
    else:
        result = run_score(ingest_dir, config_from_options(options), overwrite=overwrite, allow_missing=allow_missing)
    print_summary(result)
    return result
