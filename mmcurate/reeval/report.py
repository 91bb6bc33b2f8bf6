"""Write a re-evaluation's results: results.json, results.csv, results.md and PNG plots.

Every file is a pure function of the runs (no timings, no dates), so the same runs give the
same bytes; wall-clock times go to ``timings.json`` instead.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from mmcurate import __version__
from mmcurate.common.atomic import atomic_path, atomic_write_json, atomic_write_text
from mmcurate.reeval.data import ReevalData
from mmcurate.reeval.methods import METHODS
from mmcurate.reeval.metrics import THRESHOLDS, flat_metrics, mean_std
from mmcurate.reeval.trainer import RunResult

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
    for col in ((f"acc_audio>{t:g}", f"d>{t:g}"), (f"acc_visual>{t:g}", f"d<-{t:g}"), (f"acc_abs>{t:g}", f"\\|d\\|>{t:g}"))
]


def summarise(runs: list[RunResult]) -> dict[str, dict[str, dict[str, Any]]]:
    """method -> metric -> {mean, std, n} over its seeds."""
    by_method: dict[str, list[dict[str, float | None]]] = {}
    for r in runs:
        by_method.setdefault(r.method, []).append(flat_metrics(r.test))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method, rows in by_method.items():
        keys = list(rows[0])
        out[method] = {}
        for k in keys:
            mean, std, n = mean_std([row[k] for row in rows])
            out[method][k] = {"mean": mean, "std": std, "n": n}
    return out


def write_report(
    out_dir: Path,
    data: ReevalData,
    runs: list[RunResult],
    settings: dict[str, Any],
    device: str,
) -> dict[str, Path]:
    """Write every output file; return their paths by kind."""
    out_dir = Path(out_dir)
    runs = sorted(runs, key=lambda r: (list(METHODS).index(r.method), r.seed))
    summary = summarise(runs)
    doc = {
        "toolkit_version": __version__,
        "protocol": PROTOCOL,
        "data": data.describe(),
        "settings": settings,
        "device": device,
        "runs": [r.to_dict() for r in runs],
        "summary": summary,
    }
    paths = {
        "json": out_dir / "results.json",
        "csv": out_dir / "results.csv",
        "markdown": out_dir / "results.md",
        "bins_png": out_dir / "accuracy_by_bin.png",
        "threshold_png": out_dir / "accuracy_by_threshold.png",
    }
    atomic_write_json(paths["json"], doc)
    atomic_write_text(paths["csv"], results_csv(runs, summary))
    atomic_write_text(paths["markdown"], results_markdown(data, runs, summary, settings))
    plot_bins(paths["bins_png"], data, summary)
    plot_thresholds(paths["threshold_png"], summary)
    return paths


def results_csv(runs: list[RunResult], summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One row per run, then a ``mean`` and a ``std`` row per method."""
    keys = list(flat_metrics(runs[0].test)) if runs else []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "seed", "best_epoch", "best_val_acc", *keys])
    for r in runs:
        m = flat_metrics(r.test)
        w.writerow([r.method, r.seed, r.best_epoch, _num(r.best_val_acc), *(_num(m[k]) for k in keys)])
    for method, stats in summary.items():
        for agg in ("mean", "std"):
            w.writerow([method, agg, "", "", *(_num(stats[k][agg]) for k in keys)])
    return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def results_markdown(
    data: ReevalData, runs: list[RunResult], summary: dict[str, dict[str, dict[str, Any]]], settings: dict[str, Any]
) -> str:
    """The comparison tables: methods as rows, subsets as columns, best per column in bold."""
    seeds = sorted({r.seed for r in runs})
    counts = runs[0].test["counts"] if runs else {}
    bin_counts = runs[0].test["bin_counts"] if runs else []
    methods = list(summary)
    lines = [
        "# Re-evaluation results",
        "",
        f"Source: `{data.source}` ({data.source_kind}); {data.split_note}.",
        f"Test samples: {counts.get('overall', 0)}; seeds: {', '.join(map(str, seeds))}; "
        f"accuracy in %, mean ± std over seeds; **bold** = best in the column.",
        "",
        PROTOCOL,
        "",
        "## Overall and per subset",
        "",
    ]
    main_counts = {k: counts.get(k.removeprefix("acc_"), counts.get("overall")) for k, _ in MAIN_COLUMNS}
    lines += _table(
        methods, summary, MAIN_COLUMNS,
        count_row=[("" if k in ("acc_audio", "acc_visual", "macro_f1") else f"n={main_counts[k]}") for k, _ in MAIN_COLUMNS],
    )
    if data.num_bins:
        bin_cols = [(f"acc_bin{b}", _bin_header(data, b)) for b in range(data.num_bins)]
        lines += ["", "## Per discrepancy bin (0 = most visual-preferred)", ""]
        lines += _table(methods, summary, bin_cols, count_row=[f"n={c}" for c in bin_counts])
    lines += [
        "",
        "Acc audio/visual logits: accuracy of the fused head's per-modality logits (OGM-GE split for "
        "concat), or of the unimodal model itself; blank where the fusion head has none.",
        "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if k != "method_params"),
        "",
    ]
    return "\n".join(lines)


def _bin_header(data: ReevalData, b: int) -> str:
    if data.bin_edges is None:
        return f"bin {b}"
    lo, hi = data.bin_edges[b], data.bin_edges[b + 1]
    return f"[{lo:+.1f},{hi:+.1f})" if b < data.num_bins - 1 else f"[{lo:+.1f},{hi:+.1f}]"


def _table(
    methods: list[str], summary: dict[str, dict[str, dict[str, Any]]], columns: list[tuple[str, str]], count_row: list[str]
) -> list[str]:
    best = {}
    for key, _ in columns:
        vals = [summary[m][key]["mean"] for m in methods if summary[m][key]["mean"] is not None]
        best[key] = max(vals) if vals else None
    lines = ["| Method | " + " | ".join(h for _, h in columns) + " |", "|---|" + "---:|" * len(columns)]
    lines.append("| *n* | " + " | ".join(count_row) + " |")
    for m in methods:
        cells = []
        for key, _ in columns:
            s = summary[m][key]
            if s["mean"] is None:
                cells.append("")
                continue
            text = f"{100 * s['mean']:.1f}" + (f" ± {100 * s['std']:.1f}" if s["n"] > 1 else "")
            cells.append(f"**{text}**" if best[key] is not None and abs(s["mean"] - best[key]) < 1e-12 else text)
        lines.append(f"| {METHODS[m].title} | " + " | ".join(cells) + " |")
    return lines


def plot_bins(path: Path, data: ReevalData, summary: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Accuracy against discrepancy bin, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = list(range(data.num_bins))
    for m, stats in summary.items():
        ys = [stats[f"acc_bin{b}"]["mean"] for b in xs]
        es = [stats[f"acc_bin{b}"]["std"] or 0.0 for b in xs]
        pts = [(x, 100 * y, 100 * e) for x, y, e in zip(xs, ys, es) if y is not None]
        if not pts:
            continue
        style = "--" if METHODS[m].kind == "unimodal" else "-"
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], linestyle=style,
                    marker="o", markersize=3, capsize=2, label=METHODS[m].title)
    ax.set_xticks(xs)
    ax.set_xticklabels([_bin_header(data, b) for b in xs], rotation=45, ha="right", fontsize=7)
    ax.set_xlabel("discrepancy bin  (d = p_audio - p_visual; left: visual-preferred, right: audio-preferred)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _savefig(fig, path)


def plot_thresholds(path: Path, summary: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The seed paper's threshold analysis: accuracy on d > T and d < -T against T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, side, title in ((axes[0], "audio", "audio-dominated (d > T)"), (axes[1], "visual", "visual-dominated (d < -T)")):
        for m, stats in summary.items():
            pts = [(t, stats[f"acc_{side}>{t:g}"]["mean"]) for t in THRESHOLDS]
            pts = [(t, 100 * y) for t, y in pts if y is not None]
            if pts:
                style = "--" if METHODS[m].kind == "unimodal" else "-"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=METHODS[m].title)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("threshold T")
        ax.set_xticks(list(THRESHOLDS))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    _savefig(fig, path)


def _savefig(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, metadata={"Software": None})
    plt.close(fig)
