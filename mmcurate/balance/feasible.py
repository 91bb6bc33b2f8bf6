"""What a pool can give: the per-bin table every balance prints, and the largest target that works.

Why: a researcher who asks for ``--bins 10`` on 60 clips needs to see, before anything else, how
many clips each bin and class holds and what each split would get, and, when some bin is empty, the
settings that do work. The plan table is printed by every run, dry or not, and also right before a
plan that cannot be met stops; it is one row per bin whatever the number of classes, so a log of
10 bins stays about 15 lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmcurate.common.console import err_console, info, summary_table
from mmcurate.store.bins import assign_bins, bin_label, make_edges
from mmcurate.store.splits import SPLITS

#: below this many clips a validation or test bin gives per-bin accuracies that are noise
MIN_EVAL_BIN = 10


@dataclass(frozen=True)
class FeasibleBins:
    """The most equal-width bins over [-1, 1] that all hold samples, and their smallest pool."""

    bins: int
    per_bin: int

    def flags(self) -> str:
        return f"--bins {self.bins} --per-bin {self.per_bin}"


def largest_feasible_bins(d: np.ndarray, max_bins: int, min_per_bin: int = MIN_EVAL_BIN) -> FeasibleBins | None:
    """The largest ``B <= max_bins`` whose ``B`` equal-width bins each hold at least ``min_per_bin`` of
    ``d``, else the largest whose bins each hold one (None when ``d`` is empty). Its per-bin target is
    its smallest bin's pool.

    Why the floor: the most bins that are merely non-empty is often a set of a few clips per bin (3 bins
    of 5 where 2 bins of 52 exist), which no one would train or evaluate on."""
    d = np.asarray(d, dtype=float)
    if d.size == 0:
        return None
    for floor in (max(1, min_per_bin), 1):
        for b in range(int(max_bins), 0, -1):
            bins = assign_bins(d, make_edges(b))
            counts = np.bincount(bins[bins >= 0], minlength=b)
            if counts.min() >= floor:
                return FeasibleBins(b, int(counts.min()))
    return None


def class_cells(bins: np.ndarray, labels: np.ndarray, n_bins: int) -> list[tuple[int, int, int]]:
    """Per bin: (classes present, fewest clips of a present class, most clips of a class)."""
    out = []
    for b in range(n_bins):
        present = labels[bins == b]
        if present.size == 0:
            out.append((0, 0, 0))
            continue
        _, counts = np.unique(present, return_counts=True)
        out.append((len(counts), int(counts.min()), int(counts.max())))
    return out


def print_pool_table(
    title: str,
    edges: np.ndarray,
    bins: np.ndarray,
    labels: np.ndarray,
    targets: np.ndarray | None = None,
    take: np.ndarray | None = None,
    split_counts: dict[str, np.ndarray] | None = None,
) -> None:
    """One row per bin: its range, pool, classes (present, fewest-most clips per class), target, what is
    taken and the shortfall, and the clips each split gets. Targets and splits are blank when unknown
    (a plan that cannot be met)."""
    n_bins = len(edges) - 1
    pool = np.bincount(bins[bins >= 0], minlength=n_bins)
    cells = class_cells(bins, labels, n_bins)
    rows = []
    for b in range(n_bins):
        present, lo, hi = cells[b]
        row: list[object] = [b, bin_label(edges, b), int(pool[b]), f"{present} ({lo}-{hi})" if present else "0"]
        if targets is not None and take is not None:
            short = int(targets[b] - take[b])
            row += [int(targets[b]), int(take[b]), short or ""]
        else:
            row += ["", "", ""]
        row += [int(split_counts[s][b]) if split_counts else "" for s in SPLITS]
        rows.append(row)
    columns = ["bin", "range", "pool", "classes", "target", "take", "short", *SPLITS]
    if err_console.is_terminal:
        summary_table(title, columns, rows)
    else:  # a log or a pipe: plain aligned text, one line per bin, never wrapped at 80 columns
        for line in plain_table(title, columns, rows):
            info(line)


def plain_table(title: str, columns: list[str], rows: list[list[object]]) -> list[str]:
    """``title``, a header and one left-aligned line per row, columns two spaces apart."""
    cells = [[str(c) for c in columns]] + [[str(v) for v in row] for row in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(columns))]
    return [title] + ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def small_eval_bins(split_counts: dict[str, np.ndarray]) -> str | None:
    """A one-line warning when a validation or test bin holds fewer than :data:`MIN_EVAL_BIN` clips."""
    parts = []
    for split in ("val", "test"):
        counts = split_counts.get(split)
        if counts is None or not len(counts):
            continue
        small = np.flatnonzero(counts < MIN_EVAL_BIN)
        if small.size:
            lo, hi = int(counts[small].min()), int(counts[small].max())
            parts.append(
                f"{split} bin(s) {', '.join(map(str, small.tolist()))} hold {lo if lo == hi else f'{lo}-{hi}'} clips"
            )
    if not parts:
        return None
    return (
        f"{'; '.join(parts)} (fewer than {MIN_EVAL_BIN}: per-bin results on them are noise); use fewer --bins or "
        "larger val/test shares in --split"
    )
