"""Write a re-evaluation's results: results.json, results.csv, results_summary.csv,
results_differences.csv, results.md and PNG plots.

Every file is a pure function of the runs (no timings, no dates; bootstrap draws from fixed
seeds), so the same runs give the same bytes; wall-clock times go to ``timings.json`` instead.

Statistics are stated, not implied (:mod:`mmcurate.reeval.stats`, :mod:`mmcurate.reeval.comparisons`):
every accuracy comes with the number of test clips it was computed on and a 95 % interval that
includes the test-sample variance (bootstrap over clips and seeds); every method is compared with
joint training and with the subset's preferred unimodal model by a *paired* difference on the
same clips, marked only where its interval excludes 0 (and the sign test agrees). There is no
"best" highlight: overlapping accuracies are not a ranking. A subset or bin with fewer than
:data:`~mmcurate.reeval.stats.MIN_SAMPLES` test clips is marked in the tables and greyed, not
plotted, in the figures: 2 of 3 correct is not "67 %". A method not clearly above chance is
flagged, and its differences are never marked.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from mmcurate import __version__
from mmcurate.common.atomic import atomic_path, atomic_write_json, atomic_write_text
from mmcurate.common.console import warn
from mmcurate.reeval.comparisons import (
    REFERENCES,
    at_chance,
    better_unimodal,
    difference_keys,
    differences,
    load_outcomes,
    ordered_keys,
    summarise,
)
from mmcurate.reeval.data import ReevalData
from mmcurate.reeval.methods import METHODS
from mmcurate.reeval.metrics import THRESHOLDS, mean_std
from mmcurate.reeval.split_audit import group_statement, small_split_warnings
from mmcurate.reeval.stats import BOOTSTRAP_RESAMPLES, MIN_SAMPLES, Bootstrap, chance_level
from mmcurate.reeval.trainer import RunResult

__all__ = ["summarise", "write_report", "results_csv", "summary_csv", "differences_csv", "results_markdown"]

PROTOCOL = (
    "Each method is trained with the same data, epochs, batch size, optimiser, schedule and seeds. "
    "The tested checkpoint is the epoch with the best validation accuracy (never the test set: public "
    "toolkits such as BalanceMM and the OGM-GE code select their checkpoint on test). Metrics are on the "
    "test split; subsets use d = p_audio - p_visual of each test sample."
)

#: (metric key, column header) of the main markdown table
MAIN_COLUMNS: list[tuple[str, str]] = [
    ("acc", "Acc"),
    ("macro_f1", "Macro-F1"),
    ("acc_audio", "Acc audio logits"),
    ("acc_visual", "Acc visual logits"),
    ("acc_audio_pref", "Audio-pref. (d>0)"),
    ("acc_visual_pref", "Visual-pref. (d<0)"),
] + [
    col
    for t in THRESHOLDS
    if t > 0
    for col in (
        (f"acc_audio>{t:g}", f"d>{t:g}"),
        (f"acc_visual>{t:g}", f"d<-{t:g}"),
        (f"acc_abs>{t:g}", f"\\|d\\|>{t:g}"),
    )
]

#: (metric key, column header) of the modality-contribution table
CONTRIBUTION_COLUMNS: list[tuple[str, str]] = [
    ("shapley_audio", "phi audio"),
    ("shapley_visual", "phi visual"),
    ("shapley_imbalance", "\\|phi_a - phi_v\\|"),
    ("shapley_sample_audio", "mean phi_i audio"),
    ("shapley_sample_visual", "mean phi_i visual"),
]

#: interval kinds as the tables name them
INTERVAL_NAMES = {
    "bootstrap": f"percentile bootstrap over test clips and seeds together ({BOOTSTRAP_RESAMPLES} resamples, "
    "test-sample and seed variance), never narrower than the Wilson interval of the clip count",
    "bootstrap_resplit": f"percentile bootstrap over test clips and seeds together ({BOOTSTRAP_RESAMPLES} "
    "resamples; each seed with its own train/val draw: test-sample, seed and split variance), never narrower "
    "than the Wilson interval of the clip count",
    "wilson": "Wilson score interval over the test samples (one seed; no per-clip predictions)",
    "t": "Student t interval over the seeds (seed variance only: no per-clip predictions)",
    "t_resplit": "Student t interval over the seeds, each with its own train/val draw (seed and split "
    "variance only: no per-clip predictions)",
}

#: what the two reference kinds compare with
REFERENCE_NAMES = {
    "joint": "joint training",
    "unimodal": "the subset's preferred unimodal model",
}


def collect_diagnostics(runs: list[RunResult]) -> dict[str, dict[str, dict[str, Any]]]:
    """method -> diagnostic key -> {label, epochs, per_seed, mean}: each method's trajectory over training."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method in dict.fromkeys(r.method for r in runs):
        wanted = METHODS[method].diagnostics
        if not wanted:
            continue
        method_runs = [r for r in runs if r.method == method]
        epochs = sorted({h["epoch"] for r in method_runs for h in r.history})
        entry: dict[str, dict[str, Any]] = {}
        for key, label in wanted.items():
            per_seed = {
                str(r.seed): [_finite(next((h.get(key) for h in r.history if h["epoch"] == e), None)) for e in epochs]
                for r in method_runs
            }
            if all(v is None for vals in per_seed.values() for v in vals):
                continue
            mean = [mean_std([vals[i] for vals in per_seed.values()])[0] for i in range(len(epochs))]
            entry[key] = {"label": label, "epochs": epochs, "per_seed": per_seed, "mean": mean}
        if entry:
            out[method] = entry
    return out


def method_notes(runs: list[RunResult]) -> dict[str, list[str]]:
    """method -> what its runs say about themselves (each method's ``run_notes``: G-Blending's hold-out, ...)."""
    out = {}
    for method in dict.fromkeys(r.method for r in runs):
        notes = METHODS[method].run_notes([r.history for r in runs if r.method == method])
        if notes:
            out[method] = notes
    return out


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


# ----------------------------------------------------------------------------------------- analysis


class _Boots:
    """One shared :class:`Bootstrap` per number of paired seeds (so every comparison uses the same draws)."""

    def __init__(self) -> None:
        self._by_seeds: dict[int, Bootstrap] = {}

    def __call__(self, n_seeds: int) -> Bootstrap:
        if n_seeds not in self._by_seeds:
            self._by_seeds[n_seeds] = Bootstrap(n_seeds)
        return self._by_seeds[n_seeds]


def analyse(out_dir: Path, data: ReevalData, runs: list[RunResult]) -> dict[str, Any]:
    """Everything the tables state: summary with intervals, paired differences, flags, groups, warnings, notes."""
    outcomes = load_outcomes(out_dir, runs, data.test)
    boots = _Boots()
    seeds = sorted({r.seed for r in runs})
    summary = summarise(runs, outcomes, data.test, boots(len(seeds)) if seeds else None)
    # a method with fewer seeds than the others gets its own draws
    for method, outcome in outcomes.items():
        if len(outcome.seeds) != len(seeds):
            summary[method] = summarise(
                [r for r in runs if r.method == method], outcomes, data.test, boots(len(outcome.seeds))
            )[method]
    flags = at_chance(summary, data.test)
    missing = sorted({r.method for r in runs} - set(outcomes))
    warnings = small_split_warnings(data)
    if missing:
        warnings.append(
            f"no per-clip test predictions for {', '.join(missing)} (runs/<method>/seed<k>/predictions.parquet "
            "missing or for other test clips): their intervals are over seeds only and they have no paired differences"
        )
    for method, acc in flags.items():
        warnings.append(
            f"{METHODS[method].title}: test accuracy {100 * acc:.1f} % is not clearly above chance "
            f"({100 * chance_level(data.test.labels.numpy()):.1f} %, the most frequent test label): it did not "
            "learn in this budget; its row is flagged and its differences are never marked"
        )
    return {
        "summary": summary,
        "differences": differences(runs, outcomes, data, boots),
        "at_chance": flags,
        "chance": chance_level(data.test.labels.numpy()),
        "better_unimodal": better_unimodal(runs),
        "groups": group_statement(data),
        "warnings": warnings,
        "notes": method_notes(runs),
        "interval": "bootstrap" if outcomes and not missing else ("wilson" if len(seeds) == 1 else "t"),
    }


# ----------------------------------------------------------------------------------------- files


def write_report(
    out_dir: Path,
    data: ReevalData,
    runs: list[RunResult],
    settings: dict[str, Any],
    device: str,
) -> dict[str, Path]:
    """Write every output file; return their paths by kind. Says (warns) what makes numbers unreadable."""
    out_dir = Path(out_dir)
    runs = sorted(runs, key=lambda r: (list(METHODS).index(r.method), r.seed))
    analysis = analyse(out_dir, data, runs)
    summary = analysis["summary"]
    diagnostics = collect_diagnostics(runs)
    interval = analysis["interval"] + ("_resplit" if settings.get("resplit") else "")
    doc = {
        "toolkit_version": __version__,
        "protocol": PROTOCOL,
        "statistics": {
            "intervals": INTERVAL_NAMES,
            "interval": interval,
            "level": 0.95,
            "min_samples": MIN_SAMPLES,
            "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
            "differences": "paired bootstrap over the same clips and seeds; significant = interval excludes 0 and "
            "the exact sign test over clips agrees (p < 0.05)",
        },
        "data": data.describe(),
        "groups": analysis["groups"],
        "settings": settings,
        "device": device,
        "runs": [r.to_dict() for r in runs],
        "summary": summary,
        "differences": analysis["differences"],
        "chance": analysis["chance"],
        "at_chance": analysis["at_chance"],
        "better_unimodal": analysis["better_unimodal"],
        "warnings": analysis["warnings"],
        "method_notes": analysis["notes"],
        "diagnostics": diagnostics,
    }
    paths = {
        "json": out_dir / "results.json",
        "csv": out_dir / "results.csv",
        "summary_csv": out_dir / "results_summary.csv",
        "differences_csv": out_dir / "results_differences.csv",
        "markdown": out_dir / "results.md",
        "bins_png": out_dir / "accuracy_by_bin.png",
        "threshold_png": out_dir / "accuracy_by_threshold.png",
    }
    atomic_write_json(paths["json"], doc)
    atomic_write_text(paths["csv"], results_csv(runs))
    atomic_write_text(paths["summary_csv"], summary_csv(runs, summary))
    atomic_write_text(paths["differences_csv"], differences_csv(runs, analysis["differences"]))
    atomic_write_text(paths["markdown"], results_markdown(data, runs, summary, settings, diagnostics, analysis))
    plot_bins(paths["bins_png"], data, summary)
    plot_thresholds(paths["threshold_png"], summary)
    for method, diag in diagnostics.items():
        paths[f"diagnostics_{method}_png"] = out_dir / f"diagnostics_{method}.png"
        plot_diagnostics(paths[f"diagnostics_{method}_png"], method, diag)
    for line in analysis["warnings"]:
        warn(f"reeval: {line}")
    return paths


def results_csv(runs: list[RunResult], summary: Any = None) -> str:
    """One row per run (method, seed, selection, every metric in :func:`~mmcurate.reeval.metrics.metric_keys`
    order): a tidy table, ``groupby("method")`` gives the seeds. Summaries are in ``results_summary.csv``."""
    from mmcurate.reeval.metrics import flat_metrics

    keys = ordered_keys(runs)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "seed", "best_epoch", "best_val_acc", *keys])
    for r in runs:
        m = flat_metrics(r.test)
        w.writerow([r.method, r.seed, r.best_epoch, _num(r.best_val_acc), *(_num(m[k]) for k in keys)])
    return buf.getvalue()


SUMMARY_COLUMNS = ["method", "metric", "mean", "std", "seeds", "test_samples", "ci_low", "ci_high", "interval"]


def summary_csv(runs: list[RunResult], summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One row per (method, metric): mean, std over seeds (blank for one seed), seeds, test clips, 95 % interval."""
    keys = ordered_keys(runs)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SUMMARY_COLUMNS)
    for method, stats in summary.items():
        for k in keys:
            s = stats[k]
            count = "" if s["count"] is None else str(s["count"])
            w.writerow(
                [method, k, _num(s["mean"]), _num(s["std"]), s["n"], count, _num(s["ci_low"]), _num(s["ci_high"])]
                + [s["ci"] or ""]
            )
    return buf.getvalue()


DIFFERENCE_COLUMNS = [
    "method",
    "reference_kind",
    "reference",
    "metric",
    "difference",
    "ci_low",
    "ci_high",
    "clips_better",
    "clips_worse",
    "sign_test_p",
    "significant",
    "test_samples",
]


def differences_csv(runs: list[RunResult], diffs: dict[str, dict[str, dict[str, dict[str, Any]]]]) -> str:
    """One row per (method, reference, metric): the paired difference, its interval and whether it is one."""
    order = [m for m in METHODS if any(m in diffs[k] for k in diffs)]
    keys = difference_keys(len(runs[0].test["bin_accuracy"])) if runs else []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(DIFFERENCE_COLUMNS)
    for kind in REFERENCES:
        for method in order:
            for key in keys:
                d = diffs.get(kind, {}).get(method, {}).get(key)
                if d is None:
                    continue
                w.writerow(
                    [method, kind, d["reference"], key, _num(d["mean"]), _num(d["ci_low"]), _num(d["ci_high"])]
                    + [d["wins"], d["losses"], f"{d['sign_p']:.6g}", str(d["significant"]).lower(), d["count"]]
                )
    return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def results_markdown(
    data: ReevalData,
    runs: list[RunResult],
    summary: dict[str, dict[str, dict[str, Any]]],
    settings: dict[str, Any],
    diagnostics: dict[str, dict[str, dict[str, Any]]] | None = None,
    analysis: dict[str, Any] | None = None,
) -> str:
    """The comparison tables: methods as rows, subsets as columns; paired differences to joint and to the
    preferred unimodal model, marked only where they are differences. No "best" highlight."""
    analysis = analysis or {
        "differences": {k: {} for k in REFERENCES},
        "at_chance": {},
        "groups": group_statement(data),
        "warnings": small_split_warnings(data),
        "notes": {},
        "chance": chance_level(data.test.labels.numpy()),
        "better_unimodal": better_unimodal(runs),
        "interval": "wilson" if len({r.seed for r in runs}) == 1 else "t",
    }
    seeds = sorted({r.seed for r in runs})
    counts = runs[0].test["counts"] if runs else {}
    bin_counts = runs[0].test["bin_counts"] if runs else []
    methods = list(summary)
    flagged = analysis["at_chance"]
    interval = INTERVAL_NAMES[analysis["interval"] + ("_resplit" if settings.get("resplit") else "")]
    spread = (
        ""
        if len(seeds) == 1
        else (" ± std over seeds and train/val draws" if settings.get("resplit") else " ± std over seeds")
    )
    lines = [
        "# Re-evaluation results",
        "",
        f"Source: `{data.source}` ({data.source_kind}); {data.split_note}.",
        "",
        analysis["groups"]["text"],
        "",
        f"Test samples: {counts.get('overall', 0)}; seeds: {', '.join(map(str, seeds))}; "
        f"accuracy in %{spread}, then the 95 % interval in brackets: {interval}. "
        f"*n* = test samples of the column; † = fewer than {MIN_SAMPLES} test samples (not interpretable); "
        "Macro-F1 has no interval (not a per-clip proportion). "
        f"Chance (the most frequent test label): {100 * analysis['chance']:.1f} %. "
        "No method is highlighted as best here: see the paired differences below.",
        "",
        PROTOCOL,
        "",
    ]
    if analysis["warnings"]:
        lines += ["**Warnings**", ""] + [f"- {w}" for w in analysis["warnings"]] + [""]
    lines += ["## Overall and per subset", ""]
    main_counts = {k: counts.get(k.removeprefix("acc_"), counts.get("overall")) for k, _ in MAIN_COLUMNS}
    lines += _table(
        methods,
        summary,
        MAIN_COLUMNS,
        count_row=[("" if k == "macro_f1" else f"n={main_counts[k]}") for k, _ in MAIN_COLUMNS],
        flagged=flagged,
    )
    lines += _difference_sections(data, runs, analysis, counts, bin_counts)
    if data.num_bins:
        bin_cols = [(f"acc_bin{b}", _bin_header(data, b)) for b in range(data.num_bins)]
        lines += ["", "## Per discrepancy bin (0 = most visual-preferred)", ""]
        lines += _table(methods, summary, bin_cols, count_row=[f"n={c}" for c in bin_counts], flagged=flagged)
    lines += [
        "",
        "## Modality contribution (Shapley, zeroed inputs)",
        "",
        "phi = a modality's Shapley contribution to test accuracy with the other input zeroed, in percentage "
        "points (BalanceMM's definition): dataset level phi_a = 1/2[(acc(a,v) - acc(0,v)) + (acc(a,0) - acc(0,0))]; "
        "sample level with the empty coalition counted wrong, averaged over the test samples. "
        "Per-sample values are in runs/<method>/seed<k>/predictions.parquet.",
        "",
    ]
    n_row = [f"n={counts.get('overall', 0)}"] * len(CONTRIBUTION_COLUMNS)
    lines += _table(methods, summary, CONTRIBUTION_COLUMNS, count_row=n_row, flagged=flagged)
    if diagnostics:
        lines += [
            "",
            "## Method diagnostics over training",
            "",
            "Mean over seeds of each diagnostic at the first and the last epoch; the trajectories are in "
            "`diagnostics_<method>.png` and `results.json` → `diagnostics`.",
            "",
            "| Method | Diagnostic | First epoch | Last epoch |",
            "|---|---|---:|---:|",
        ]
        for method, entries in diagnostics.items():
            for entry in entries.values():
                vals = [v for v in entry["mean"] if v is not None]
                first, last = (f"{vals[0]:.4g}", f"{vals[-1]:.4g}") if vals else ("", "")
                lines.append(f"| {METHODS[method].title} | {entry['label']} | {first} | {last} |")
    if analysis["notes"]:
        lines += ["", "## What the methods' runs say about themselves", ""]
        for method, notes in analysis["notes"].items():
            lines += [f"- {METHODS[method].title}: {note}" for note in notes]
    lines += [
        "",
        "Acc audio/visual logits: accuracy of the fused head's per-modality logits (OGM-GE split for "
        "concat), or of the unimodal model itself; blank where the fusion head has none.",
        "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if k != "method_params"),
        "",
    ]
    return "\n".join(lines)


#: (metric key, column header) of the difference tables
DIFF_COLUMNS: list[tuple[str, str]] = [("acc", "All"), ("acc_audio_pref", "d>0"), ("acc_visual_pref", "d<0")] + [
    col
    for t in THRESHOLDS
    if t > 0
    for col in (
        (f"acc_audio>{t:g}", f"d>{t:g}"),
        (f"acc_visual>{t:g}", f"d<-{t:g}"),
        (f"acc_abs>{t:g}", f"\\|d\\|>{t:g}"),
    )
]


def _difference_sections(
    data: ReevalData, runs: list[RunResult], analysis: dict[str, Any], counts: dict[str, int], bin_counts: list[int]
) -> list[str]:
    diffs = analysis["differences"]
    if not any(diffs.get(k) for k in REFERENCES):
        return []
    better = analysis["better_unimodal"]
    better_title = METHODS[better].title if better else "none"
    lines = [
        "",
        "## Paired differences (percentage points, method minus reference, same clips and seeds)",
        "",
        "Each cell: the difference in accuracy, then its 95 % paired-bootstrap interval (clips and seeds resampled "
        "together for both). **Bold** with ▲ (better) or ▼ (worse) only where the interval excludes 0 and the exact "
        "sign test over the clips agrees (p < 0.05); anything else is not a difference these test clips can show. "
        "(at chance) rows are never marked.",
        "",
    ]
    for kind in REFERENCES:
        per_method = diffs.get(kind, {})
        if not per_method:
            continue
        if kind == "joint":
            lines += ["### Against joint training", ""]
        else:
            lines += [
                "### Against the preferred unimodal model",
                "",
                "Audio-preferred columns (d > 0, d > T, bins above 0) against Audio-only, visual-preferred ones "
                f"against Visual-only; columns with both sides (All, \\|d\\| > T, a bin across 0) against the "
                f"unimodal model with the higher validation accuracy ({better_title}).",
                "",
            ]
        cols = DIFF_COLUMNS
        count_row = [f"n={counts.get(k.removeprefix('acc_'), counts.get('overall'))}" for k, _ in cols]
        lines += _diff_table(per_method, cols, count_row, analysis["at_chance"])
        if data.num_bins:
            bin_cols = [(f"acc_bin{b}", _bin_header(data, b)) for b in range(data.num_bins)]
            lines += ["", "Per discrepancy bin:", ""]
            lines += _diff_table(per_method, bin_cols, [f"n={c}" for c in bin_counts], analysis["at_chance"])
        lines.append("")
    return lines


def _diff_cell(d: dict[str, Any] | None, flagged: bool) -> str:
    if d is None:
        return ""
    text = f"{100 * d['mean']:+.1f} [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]"
    if d["count"] < MIN_SAMPLES:
        return text + " †"
    if d["significant"] and not flagged:
        return f"**{text} {'▲' if d['mean'] > 0 else '▼'}**"
    return text


def _diff_table(
    per_method: dict[str, dict[str, dict[str, Any]]],
    columns: list[tuple[str, str]],
    count_row: list[str],
    flagged: dict[str, float],
) -> list[str]:
    lines = ["| Method | " + " | ".join(h for _, h in columns) + " |", "|---|" + "---:|" * len(columns)]
    lines.append("| *n* | " + " | ".join(count_row) + " |")
    for m in METHODS:
        if m not in per_method:
            continue
        cells = [_diff_cell(per_method[m].get(k), m in flagged) for k, _ in columns]
        refs = sorted({d["reference"] for d in per_method[m].values()})
        label = _row_label(m, flagged)
        if len(refs) == 1 and refs[0] != "joint":
            label += f" vs {METHODS[refs[0]].title}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _row_label(method: str, flagged: dict[str, float]) -> str:
    return METHODS[method].title + (" (at chance)" if method in flagged else "")


def _bin_header(data: ReevalData, b: int) -> str:
    if data.bin_edges is None:
        return f"bin {b}"
    lo, hi = data.bin_edges[b], data.bin_edges[b + 1]
    return f"[{lo:+.1f},{hi:+.1f})" if b < data.num_bins - 1 else f"[{lo:+.1f},{hi:+.1f}]"


def _cell(s: dict[str, Any]) -> str:
    """Mean (± std over seeds, only for several), [95 % interval], † when too few test samples; in %."""
    text = f"{100 * s['mean']:.1f}"
    if s["n"] > 1 and s.get("std") is not None:
        text += f" ± {100 * s['std']:.1f}"
    if s.get("ci_low") is not None:
        text += f" [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}]"
    if s.get("count") is not None and s["count"] < MIN_SAMPLES:
        text += " †"
    return text


def _table(
    methods: list[str],
    summary: dict[str, dict[str, dict[str, Any]]],
    columns: list[tuple[str, str]],
    count_row: list[str],
    flagged: dict[str, float] | None = None,
) -> list[str]:
    lines = ["| Method | " + " | ".join(h for _, h in columns) + " |", "|---|" + "---:|" * len(columns)]
    lines.append("| *n* | " + " | ".join(count_row) + " |")
    for m in methods:
        cells = []
        for key, _ in columns:
            s = summary[m][key]
            cells.append("" if s["mean"] is None else _cell(s))
        lines.append(f"| {_row_label(m, flagged or {})} | " + " | ".join(cells) + " |")
    return lines


# ----------------------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _errors(s: dict[str, Any]) -> tuple[float, float]:
    """(lower, upper) error-bar lengths in % from the summary interval (0 where none)."""
    if s.get("ci_low") is None:
        return 0.0, 0.0
    return 100 * (s["mean"] - s["ci_low"]), 100 * (s["ci_high"] - s["mean"])


def plot_bins(path: Path, data: ReevalData, summary: dict[str, dict[str, dict[str, Any]]]) -> None:
    """``accuracy_by_bin.png``: see :func:`bins_figure`."""
    _savefig(bins_figure(data, summary), path)


def bins_figure(data: ReevalData, summary: dict[str, dict[str, dict[str, Any]]]) -> Any:
    """Accuracy against discrepancy bin with 95 % intervals; bins with too few test samples greyed, not plotted."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    xs = list(range(data.num_bins))
    counts = _bin_counts(summary, data.num_bins)
    sparse = [b for b in xs if counts[b] is not None and counts[b] < MIN_SAMPLES]
    for b in sparse:
        ax.axvspan(b - 0.5, b + 0.5, facecolor="0.88", hatch="///", edgecolor="0.65", linewidth=0, zorder=0)
    for j, (m, stats) in enumerate(summary.items()):
        shift = _dodge(j, len(summary), 0.3)  # side by side, so the intervals stay readable
        ys, lo, hi = [], [], []
        for b in xs:
            s = stats[f"acc_bin{b}"]
            if s["mean"] is None or b in sparse:
                ys.append(float("nan"))
                lo.append(0.0)
                hi.append(0.0)
                continue
            ys.append(100 * s["mean"])
            e_lo, e_hi = _errors(s)
            lo.append(e_lo)
            hi.append(e_hi)
        if all(math.isnan(y) for y in ys):
            continue
        style = "--" if METHODS[m].kind == "unimodal" else "-"
        ax.errorbar(
            [x + shift for x in xs],
            ys,
            yerr=[lo, hi],
            linestyle=style,
            marker="o",
            markersize=3,
            capsize=2,
            label=METHODS[m].title,
        )
    ax.set_xticks(xs)
    ax.set_xticklabels(
        [f"{_bin_header(data, b)}\nn={counts[b] if counts[b] is not None else 0}" for b in xs],
        rotation=45,
        ha="right",
        fontsize=6,
    )
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_xlabel("discrepancy bin  (d = p_audio - p_visual; left: visual-preferred, right: audio-preferred)")
    ax.set_ylabel("test accuracy (%), 95 % interval")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if sparse:
        ax.text(
            0.01,
            0.01,
            f"hatched: fewer than {MIN_SAMPLES} test samples, not plotted",
            transform=ax.transAxes,
            fontsize=7,
            color="0.35",
        )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _dodge(j: int, n: int, width: float) -> float:
    """x offset of series ``j`` of ``n`` within ``width``, centred on 0."""
    return 0.0 if n < 2 else (j / (n - 1) - 0.5) * width


def _sparse(s: dict[str, Any]) -> bool:
    """Whether a summary entry rests on fewer than MIN_SAMPLES test samples."""
    return s.get("count") is not None and s["count"] < MIN_SAMPLES


def _bin_counts(summary: dict[str, dict[str, dict[str, Any]]], num_bins: int) -> list[int | None]:
    first = next(iter(summary.values()), {})
    return [first.get(f"acc_bin{b}", {}).get("count") for b in range(num_bins)]


def plot_thresholds(path: Path, summary: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The seed paper's threshold analysis: accuracy on d > T and d < -T against T, with n and 95 % intervals."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    first = next(iter(summary.values()), {})
    for ax, side, title in (
        (axes[0], "audio", "audio-dominated (d > T)"),
        (axes[1], "visual", "visual-dominated (d < -T)"),
    ):
        ns = {t: first.get(f"acc_{side}>{t:g}", {}).get("count") for t in THRESHOLDS}
        for j, (m, stats) in enumerate(summary.items()):
            shift = _dodge(j, len(summary), 0.06)
            pts = [(t, stats[f"acc_{side}>{t:g}"]) for t in THRESHOLDS]
            pts = [(t, s) for t, s in pts if s["mean"] is not None and not _sparse(s)]
            if pts:
                style = "--" if METHODS[m].kind == "unimodal" else "-"
                errs = [_errors(s) for _, s in pts]
                ax.errorbar(
                    [t + shift for t, _ in pts],
                    [100 * s["mean"] for _, s in pts],
                    yerr=[[e[0] for e in errs], [e[1] for e in errs]],
                    linestyle=style,
                    marker="o",
                    capsize=2,
                    label=METHODS[m].title,
                )
        for t, n in ns.items():
            if n is not None and n < MIN_SAMPLES:
                ax.axvspan(t - 0.05, t + 0.05, facecolor="0.88", hatch="///", edgecolor="0.65", linewidth=0, zorder=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("threshold T")
        ax.set_xticks(list(THRESHOLDS))
        ax.set_xticklabels([f"{t:g}\nn={ns[t] if ns[t] is not None else 0}" for t in THRESHOLDS], fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%), 95 % interval")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    _savefig(fig, path)


def plot_diagnostics(path: Path, method: str, diagnostics: dict[str, dict[str, Any]]) -> None:
    """One panel per diagnostic of ``method``: per-seed trajectories (thin) and their mean (thick) per epoch."""
    plt = _pyplot()
    n = len(diagnostics)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, entry in zip(axes.flat, diagnostics.values()):
        epochs = entry["epochs"]
        for seed, vals in entry["per_seed"].items():
            pts = [(e, v) for e, v in zip(epochs, vals) if v is not None]
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    marker=".",
                    linewidth=0.8,
                    alpha=0.6,
                    label=f"seed {seed}",
                )
        mean = [(e, v) for e, v in zip(epochs, entry["mean"]) if v is not None]
        if len(entry["per_seed"]) > 1 and mean:
            ax.plot([p[0] for p in mean], [p[1] for p in mean], color="black", linewidth=2, label="mean")
        ax.set_title(entry["label"], fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        axes.flat[0].legend(fontsize=6)
    fig.suptitle(f"{METHODS[method].title}: diagnostics over training", fontsize=10)
    fig.tight_layout()
    _savefig(fig, path)


def _savefig(fig: Any, path: Path) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, metadata={"Software": None})
    plt.close(fig)
