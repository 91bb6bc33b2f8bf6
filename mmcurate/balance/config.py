"""Balance settings, written once: what the selection and its splits depend on, the export, and scoring.

:class:`BalanceConfig` is the whole ``mmcurate balance`` stage. Its :meth:`~BalanceConfig.to_dict`
is the record kept in ``balance.json`` and on the dataset card; :meth:`~BalanceConfig.selection_hash`
covers only what decides which samples land in which split. The scorer settings are those of
``mmcurate score`` (:mod:`mmcurate.common.scoring`), used when the scores are missing or stale (with the
balance seed).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcurate.balance.sampling import SHORTFALL_CHOICES
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.common.options import check_seed, nested, opt
from mmcurate.common.scoring import ScoreConfig
from mmcurate.store.bins import make_edges, parse_edges
from mmcurate.store.splits import parse_ratios


@dataclass(frozen=True)
class BalanceConfig:
    """``mmcurate balance [INGEST_DIR]``: every setting of the stage."""

    ingest_dir: Path | None = opt(None, argument=True)
    pool: tuple[Path, ...] = opt(
        (),
        "A scored ingest folder to sample from; repeat it to balance several pools together (each sample keeps its "
        "pool's name in a `pool` column). INGEST_DIR, when given, is the first pool. The first pool is the seed pool "
        "and the others are candidate pools (score them with `mmcurate score SEED --candidates DIR`). "
        "Default: INGEST_DIR, else WORKDIR/ingest.",
        metavar="DIR",
    )
    out: Path | None = opt(
        None, "Output folder for the balanced dataset (default: WORKDIR/balanced).", show_default=False
    )
    bins: int = opt(
        10,
        "Equal-width discrepancy bins over [-1, 1]. When some of them hold no samples and no --per-bin, --size or "
        "--edges is given, balance uses the largest bin count whose bins all hold at least 10 samples (else at least "
        "one) instead, says so in one "
        "line and records it (bins_requested in balance.json and on the card); with a target or --edges it stops "
        "and names the --bins and --per-bin that work. --dry-run shows the per-bin table either way.",
    )
    edges: str | None = opt(
        None, "Custom bin edges, comma-separated and increasing (e.g. -1,-0.5,0,0.5,1); overrides --bins."
    )
    per_bin: int | None = opt(None, "Samples per bin (default: the largest count every bin can meet).")
    size: int | None = opt(None, "Total samples; per bin = size // bins.")
    shortfall: str = opt(
        "ask",
        "When a bin cannot meet --per-bin/--size: ask (stop and explain), shrink (all bins to the smallest pool: "
        "exactly uniform) or best-effort (keep the target where possible, report the shortfall).",
        choices=SHORTFALL_CHOICES,
    )
    stratify: str = opt(
        "label",
        "Within a bin, spread samples across classes as evenly as the pool allows (label) or draw uniformly (none).",
        choices=("label", "none"),
    )
    split: str = opt("80/10/10", "train/val/test shares, stratified by bin and class.")
    ignore_groups: bool = opt(
        False,
        "Split samples freely even when the manifest has a group column (by default no group spans two splits).",
    )
    max_discrepancy_std: float | None = opt(
        None,
        "Leave out samples whose discrepancy_std (from mmcurate score) exceeds this: their bin is uncertain. "
        "Off by default; the number left out is reported and recorded in the card.",
    )
    exclude_both_weak: bool = opt(
        False,
        "Leave out samples on which both scorers are weak (scores' both_weak column: both confidences low, so d "
        "near 0 means 'both wrong', not 'balanced'). Off by default, as the paper defines d on every sample; the "
        "number per bin is reported either way and recorded in the card.",
    )
    accept_weak_scores: bool = opt(
        False,
        "Balance on scores that failed their self-check (scores.json 'health': a scorer not clearly above chance, "
        "a fold far below the others). Without it such scores are refused: their d is largely noise.",
    )
    exclude: Path | None = opt(
        None,
        "A text file of sample_ids to leave out (one per line, '#' comments), e.g. the list of clips marked in "
        "`mmcurate browse`; an id not in the pool is an error naming the file and line. Recorded on the card.",
        metavar="FILE",
    )
    seed: int = opt(0, "Seed for sampling and splits (and for scoring if it runs).")
    dry_run: bool = opt(
        False,
        "Print the plan (per bin: pool, classes present with their fewest-most clips, target, shortfall, clips per "
        "split) without writing; a plan that cannot be met prints the pool table, then why; with --per-bin N also how "
        "many more clips each bin and class of the seed pool needs, and what the candidate pools can supply.",
    )
    max_shard_size: str = opt("500MB", "Largest Parquet shard of the export (e.g. 500MB).")
    no_features: bool = opt(False, "Leave cached audio features out of the export.")
    pretty_name: str | None = opt(None, "Dataset name shown on the card.")
    license: str | None = opt(None, "Licence of the source data, for the card (default: the one given at ingest).")
    source_dataset: str | None = opt(None, "Source dataset name, for the card (default: the one given at ingest).")
    drop_duplicates: bool = opt(
        False,
        "Leave out clips whose source file has the same bytes (sha256) as an earlier clip under another name, in "
        "another pool or the same one, keeping the first (the seed pool's); says how many. Without it copies across "
        "pools are refused and copies inside one pool are warned about: both could be selected into different splits.",
    )
    rescore: bool = opt(False, "Score again even if fresh scores exist.")
    overwrite: bool = opt(
        False,
        "Write into an --out folder that holds files but is not a balanced output: its README.md, data/ and hf/ "
        "are replaced (other files are kept). Without it such a folder is refused.",
    )
    scoring: ScoreConfig = nested(ScoreConfig, skip=("seed",))
    #: scorer options the user set (command line or recipe): scores made otherwise are then stale;
    #: options left at their defaults do not force a rescore of scores made with other settings
    explicit_scoring: tuple[str, ...] = opt((), cli=False)
    #: the --bins asked for when balance used fewer because some bins were empty (None: as asked)
    bins_requested: int | None = opt(None, cli=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool", tuple(Path(p) for p in self.pool))
        if self.exclude is not None:
            object.__setattr__(self, "exclude", Path(self.exclude))
        if self.scoring.seed != self.seed:
            object.__setattr__(self, "scoring", dataclasses.replace(self.scoring, seed=self.seed))
        check_seed("--seed", self.seed)
        if self.max_discrepancy_std is not None and not (
            math.isfinite(self.max_discrepancy_std) and self.max_discrepancy_std >= 0
        ):
            raise MMCurateError(
                f"--max-discrepancy-std must be a non-negative number (got {self.max_discrepancy_std})"
            )
        for name, value in (("--per-bin", self.per_bin), ("--size", self.size)):
            if value is not None and value < 1:
                raise MMCurateError(f"{name} must be at least 1 (got {value})")
        self.bin_edges()  # a bad --bins/--edges is an error before anything is read or written
        parse_ratios(self.split)
        from mmcurate.export.sharding import parse_shard_size

        parse_shard_size(self.max_shard_size)

    def edge_values(self) -> tuple[float, ...] | None:
        parsed = parse_edges(self.edges)
        return tuple(parsed) if parsed else None

    def bin_edges(self) -> Any:
        return make_edges(self.bins, self.edge_values())

    @property
    def include_features(self) -> bool:
        return not self.no_features

    @property
    def extra(self) -> dict[str, Any]:
        """Card provenance overrides: source dataset ``name`` and ``license``."""
        return {k: v for k, v in (("license", self.license), ("name", self.source_dataset)) if v}

    def to_dict(self) -> dict[str, Any]:
        """The settings as balance.json and the dataset card record them."""
        edges = self.edge_values()
        return {
            "bins": self.bins,
            "edges": list(edges) if edges is not None else None,
            "per_bin": self.per_bin,
            "size": self.size,
            "shortfall": self.shortfall,
            "stratify": self.stratify,
            "split": self.split,
            "ignore_groups": self.ignore_groups,
            **({"drop_duplicates": True} if self.drop_duplicates else {}),
            "seed": self.seed,
            "max_discrepancy_std": self.max_discrepancy_std,
            "exclude_both_weak": self.exclude_both_weak,
            "accept_weak_scores": self.accept_weak_scores,
            "max_shard_size": self.max_shard_size,
            "include_features": self.include_features,
            "pretty_name": self.pretty_name,
            "extra": self.extra,
            **({"pool": [str(p) for p in self.pool]} if self.pool else {}),
            **({"bins_requested": self.bins_requested} if self.bins_requested else {}),
            **({"exclude": str(self.exclude)} if self.exclude is not None else {}),
        }

    def selection_hash(self) -> str:
        """Hash of the settings that decide which samples land in which split."""
        d = self.to_dict()
        for k in ("max_shard_size", "include_features", "pretty_name", "extra"):
            d.pop(k)
        return config_hash(d)
