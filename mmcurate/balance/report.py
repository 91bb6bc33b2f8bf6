"""The balance report, as files a person opens: counts, a uniformity test, a histogram."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from mmcurate.common.atomic import atomic_path, atomic_write_text
from mmcurate.store.bins import bin_label


def chi_square_uniform(counts: np.ndarray) -> dict[str, float | None]:
    """Pearson chi-square of per-bin counts against the uniform distribution."""
    counts = np.asarray(counts, dtype=float)
    if counts.sum() == 0 or len(counts) < 2:
        return {"statistic": None, "p_value": None}
    res = stats.chisquare(counts)
    return {"statistic": round(float(res.statistic), 4), "p_value": float(res.pvalue)}


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_report(
    folder: Path,
    edges: np.ndarray,
    d_pool: np.ndarray,
    d_selected: np.ndarray,
    pool_bins: np.ndarray,
    sel_bins: np.ndarray,
    pool_labels: np.ndarray,
    sel_labels: np.ndarray,
    sel_splits: np.ndarray,
    summary: dict[str, Any],
) -> None:
    """Write bins.csv, classes.csv, splits.csv, histogram.png and report.md into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = len(edges) - 1
    before = np.bincount(pool_bins[pool_bins >= 0], minlength=nb)
    after = np.bincount(sel_bins, minlength=nb)
    rows = [["bin", "range", "before", "after"]] + [
        [b, bin_label(edges, b), int(before[b]), int(after[b])] for b in range(nb)
    ]
    atomic_write_text(folder / "bins.csv", _csv(rows))
    classes = sorted(set(pool_labels.tolist()))
    crow = [["label", "before", "after"]] + [
        [c, int((pool_labels == c).sum()), int((sel_labels == c).sum())] for c in classes
    ]
    atomic_write_text(folder / "classes.csv", _csv(crow))
    split_names = ["train", "val", "test"]
    srow = [["split", *[f"bin{b}" for b in range(nb)], "total"]]
    for s in split_names:
        per = np.bincount(sel_bins[sel_splits == s], minlength=nb)
        srow.append([s, *[int(x) for x in per], int(per.sum())])
    atomic_write_text(folder / "splits.csv", _csv(srow))
    _histogram(folder / "histogram.png", edges, d_pool, d_selected)
    atomic_write_text(
        folder / "report.md", _markdown(edges, before, after, classes, pool_labels, sel_labels, srow, summary)
    )


def _histogram(path: Path, edges: np.ndarray, d_pool: np.ndarray, d_sel: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for ax, d, title in ((axes[0], d_pool, "before (all scored samples)"), (axes[1], d_sel, "after (balanced)")):
        ax.hist(d, bins=edges, color="#4C72B0", edgecolor="white")
        ax.set_title(f"{title}: n={len(d)}")
        ax.set_xlabel("discrepancy d = p_audio - p_visual")
        ax.axvline(0, color="grey", lw=0.8, ls="--")
    axes[0].set_ylabel("samples")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)


def _markdown(
    edges: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    classes: list[str],
    pool_labels: np.ndarray,
    sel_labels: np.ndarray,
    split_rows: list[list[Any]],
    summary: dict[str, Any],
) -> str:
    chi_b, chi_a = summary["chi_square_before"], summary["chi_square_after"]

    def fmt_p(p: float | None) -> str:
        return "n/a" if p is None else f"{p:.3g}"

    lines = [
        "# Balance report",
        "",
        f"- samples: {summary['pool_size']} scored -> {summary['size']} selected",
        f"- bins: {len(edges) - 1}, edges {', '.join(f'{e:.3g}' for e in edges)}",
        f"- policy: {summary['policy']}; target per bin: {summary['targets']}",
        f"- seed: {summary['seed']}; scorer: {summary['scorer_id']}",
        f"- chi-square vs uniform over bins: before {chi_b['statistic']} (p={fmt_p(chi_b['p_value'])}), "
        f"after {chi_a['statistic']} (p={fmt_p(chi_a['p_value'])})",
        f"- groups kept out of two splits: {summary['grouped']}",
        "",
        "![before and after](histogram.png)",
        "",
        "## Per bin",
        "",
        "| bin | range | before | after |",
        "|---:|---|---:|---:|",
    ]
    for b in range(len(edges) - 1):
        lines.append(f"| {b} | {bin_label(edges, b)} | {int(before[b])} | {int(after[b])} |")
    lines += ["", "## Per class", "", "| class | before | after |", "|---|---:|---:|"]
    for c in classes:
        lines.append(f"| {c} | {int((pool_labels == c).sum())} | {int((sel_labels == c).sum())} |")
    lines += [
        "",
        "## Splits (samples per bin)",
        "",
        "| " + " | ".join(map(str, split_rows[0])) + " |",
        "|---" * len(split_rows[0]) + "|",
    ]
    for row in split_rows[1:]:
        lines.append("| " + " | ".join(map(str, row)) + " |")
    for note in summary.get("notes", []):
        lines.append(f"\n> {note}")
    return "\n".join(lines) + "\n"
