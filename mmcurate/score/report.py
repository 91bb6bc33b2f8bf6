"""``mmcurate report``: the paper-style diagnosis of a dataset's modality bias, as files.

* ``confidence_density.png``: 2-D density of audio confidence (y) against visual confidence
  (x); the diagonal separates the audio-preferred (upper-left) and visual-preferred
  (lower-right) subsets, as in Fig. 1 of the balanced-dataset paper;
* ``discrepancy_hist.png``: the histogram of d = p_audio - p_visual;
* ``per_class.png`` / ``per_class.csv``: per-class share of audio-preferred samples;
* ``reliability.png``: one reliability diagram per modality (accuracy against confidence, before
  and after calibration), from the calibration data the score stage stored in ``scores.json``;
* ``report.md``: the numbers (share audio-preferred, mean |d|, calibration error, how many samples
  sit near a bin edge given their uncertainty, per-class table, and optional breakdowns by
  manifest columns such as a ground-truth ``condition``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mmcurate.common.atomic import atomic_path, atomic_write_text
from mmcurate.common.console import summary_table
from mmcurate.common.errors import MMCurateError
from mmcurate.common.options import opt
from mmcurate.common.stage import Stage
from mmcurate.score.assemble import DEFAULT_EDGES, NEAR_EDGE
from mmcurate.score.table import summarize
from mmcurate.store import IngestDir, Workdir
from mmcurate.store.ownership import claim_folder


@dataclass(frozen=True)
class ReportConfig:
    """``mmcurate report [INGEST_DIR]``: every setting of the stage."""

    ingest_dir: Path | None = opt(None, argument=True)
    out: Path | None = opt(None, "Folder for the report files (default: INGEST_DIR/report).", show_default=False)
    by: tuple[str, ...] = opt(
        help="Also break the numbers down by this manifest column (repeatable), e.g. --by condition.",
        default_factory=tuple,
    )
    overwrite: bool = opt(
        False,
        "Write into a non-empty --out folder that is not an mmcurate report (only the report's own files are "
        "replaced). Without it such a folder is refused.",
    )


@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    headline: dict[str, Any]

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.md"


def report_dir(workdir: Workdir, cfg: ReportConfig) -> Path:
    """Where the report goes: ``--out``, else INGEST_DIR/report."""
    return cfg.out or IngestDir(cfg.ingest_dir or workdir.ingest.path).report_dir


#: the files a report writes: a folder holding only these (made before owner files) is a report
REPORT_FILES = frozenset(
    {
        "report.md",
        "confidence_density.png",
        "discrepancy_hist.png",
        "per_class.png",
        "per_class.csv",
        "reliability.png",
    }
)


def run_report(workdir: Workdir, cfg: ReportConfig) -> ReportResult:
    """Write the report of an ingest folder's scores (default: WORKDIR/ingest, into its report/).

    The output folder is claimed like every stage's: a user's non-empty folder given as --out is
    refused (one line) unless --overwrite, so a report never replaces someone's own report.md."""
    ingest = IngestDir(cfg.ingest_dir or workdir.ingest.path)
    out_dir = report_dir(workdir, cfg)
    claim_folder(out_dir, "report", cfg.overwrite, lambda: _holds_only_report_files(out_dir))
    return ReportResult(out_dir, write_report(ingest.path, out_dir, list(cfg.by)))


def _holds_only_report_files(folder: Path) -> bool:
    return all(p.name in REPORT_FILES or p.name.startswith(".") for p in folder.iterdir())


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    _plt().close(fig)


def per_group(values: list[Any], d: np.ndarray, pa_: np.ndarray, pv: np.ndarray) -> list[dict[str, Any]]:
    """Per value of a column: count, share audio-preferred, mean d, mean confidences."""
    out = []
    keys = np.asarray(["(none)" if v is None else str(v) for v in values], dtype=object)
    for k in sorted(set(keys.tolist())):
        m = keys == k
        out.append(
            {
                "value": k,
                "n": int(m.sum()),
                "share_audio_preferred": round(float((d[m] > 0).mean()), 4),
                "mean_discrepancy": round(float(d[m].mean()), 4),
                "mean_p_audio": round(float(pa_[m].mean()), 4),
                "mean_p_visual": round(float(pv[m].mean()), 4),
            }
        )
    return out


def write_report(ingest_dir: Path, out_dir: Path, by: list[str] | None = None) -> dict[str, Any]:
    """Write the report files into ``out_dir``; return the headline numbers."""
    ingest = IngestDir(ingest_dir)
    scores = ingest.read_scores()
    manifest = ingest.read_manifest()
    joined = scores.join(
        manifest.drop_columns([c for c in ("label",) if c in manifest.column_names]), "sample_id"
    ).sort_by("sample_id")
    for col in by or []:
        if col not in joined.column_names:
            raise MMCurateError(f"--by {col!r}: not a manifest column (columns: {', '.join(manifest.column_names)})")
    pa_ = joined.column("p_audio").to_numpy()
    pv = joined.column("p_visual").to_numpy()
    d = joined.column("discrepancy").to_numpy()
    labels = joined.column("label").to_pylist()
    out_dir.mkdir(parents=True, exist_ok=True)
    plt = _plt()

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    h = ax.hist2d(pv, pa_, bins=25, range=[[0, 1], [0, 1]], cmap="viridis", cmin=1)
    fig.colorbar(h[3], ax=ax, label="samples")
    ax.plot([0, 1], [0, 1], color="white", lw=1.5, ls="--")
    ax.text(0.05, 0.92, "audio-preferred", color="black", fontsize=9, bbox={"facecolor": "white", "alpha": 0.7})
    ax.text(0.58, 0.05, "visual-preferred", color="black", fontsize=9, bbox={"facecolor": "white", "alpha": 0.7})
    ax.set_xlabel("visual confidence p_visual")
    ax.set_ylabel("audio confidence p_audio")
    ax.set_title(f"out-of-fold confidences (n={len(d)})")
    fig.tight_layout()
    _save(fig, out_dir / "confidence_density.png")

    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ax.hist(d, bins=np.linspace(-1, 1, 21), color="#4C72B0", edgecolor="white")
    ax.axvline(0, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("discrepancy d = p_audio - p_visual")
    ax.set_ylabel("samples")
    fig.tight_layout()
    _save(fig, out_dir / "discrepancy_hist.png")

    classes = per_group(labels, d, pa_, pv)
    classes.sort(key=lambda r: -r["share_audio_preferred"])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(classes) + 1.5), 3.6))
    ax.bar([c["value"] for c in classes], [c["share_audio_preferred"] for c in classes], color="#DD8452")
    ax.axhline(0.5, color="grey", ls="--", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share audio-preferred")
    ax.tick_params(axis="x", rotation=90 if len(classes) > 12 else 0)
    fig.tight_layout()
    _save(fig, out_dir / "per_class.png")

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(classes[0]) if classes else ["value"], lineterminator="\n")
    w.writeheader()
    w.writerows(classes)
    atomic_write_text(out_dir / "per_class.csv", buf.getvalue().replace("value,", "label,", 1))

    headline = summarize(scores)
    calibration = _calibration_meta(ingest)
    if calibration:
        _reliability_plot(calibration, out_dir / "reliability.png")
    headline["uncertainty"] = uncertainty_summary(scores, balance_edges(Path(ingest_dir)))
    breakdowns = {col: per_group(joined.column(col).to_pylist(), d, pa_, pv) for col in by or []}
    health = (ingest.read_scores_meta() or {}).get("health")
    headline["health"] = health
    text = _markdown(headline, classes, breakdowns, scores, calibration)
    atomic_write_text(out_dir / "report.md", text)
    return {**headline, "by": breakdowns}


def _calibration_meta(ingest: IngestDir) -> dict[str, Any]:
    """Per-modality calibration record of scores.json ({} for imported or older scores)."""
    meta = ingest.read_scores_meta()
    cal = meta.get("metrics", {}).get("calibration") or {}
    return cal if all("reliability_before" in v for v in cal.values()) else {}


def balance_edges(ingest_dir: Path) -> list[float] | None:
    """The bin edges of the work directory's balance of this ingest folder (``<workdir>/balanced``), if any:
    "near a bin edge" then counts against the bins the set was balanced over, not the 10 default ones."""
    from mmcurate.store import BalancedDir

    balanced = BalancedDir(Path(ingest_dir).parent / Workdir.BALANCED)
    try:
        return balanced.bin_edges() if balanced.selection_path.is_file() else None
    except MMCurateError:  # an unreadable balance.json: the default bins, as without a balance
        return None


def uncertainty_summary(scores: pa.Table, edges: list[float] | None = None) -> dict[str, Any] | None:
    """How many samples sit near a bin edge given their discrepancy_std: the balance's bins when
    ``edges`` are given, else the 10 equal bins (None when the scores carry no uncertainty, e.g.
    imported ones)."""
    if "bin_probability" not in scores.column_names or scores.column("bin_probability").null_count == scores.num_rows:
        return None
    p = np.asarray(scores.column("bin_probability").to_numpy(zero_copy_only=False), dtype=float)
    std = np.asarray(scores.column("discrepancy_std").to_numpy(zero_copy_only=False), dtype=float)
    if edges is not None:
        from mmcurate.store.bins import bin_probability

        d = np.asarray(scores.column("discrepancy").to_numpy(zero_copy_only=False), dtype=float)
        p = bin_probability(d, np.nan_to_num(std, nan=0.0), edges)
    return {
        "bins": len(DEFAULT_EDGES) - 1 if edges is None else len(edges) - 1,
        "edges": "the balance's" if edges is not None else "equal",
        "near_edge": int((np.nan_to_num(p, nan=1.0) < NEAR_EDGE).sum()),
        "threshold": NEAR_EDGE,
        "mean_bin_probability": round(float(np.nanmean(p)), 4),
        "mean_discrepancy_std": round(float(np.nanmean(std)), 4),
    }


def _reliability_plot(calibration: dict[str, Any], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, len(calibration), figsize=(4.4 * len(calibration), 4.2), squeeze=False)
    for ax, (modality, cal) in zip(axes[0], sorted(calibration.items())):
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
        for key, colour, name in (
            ("reliability_before", "#C44E52", "uncalibrated"),
            ("reliability_after", "#4C72B0", "calibrated"),
        ):
            r = cal[key]
            x = np.asarray(r["confidence"], dtype=float)
            y = np.asarray(r["accuracy"], dtype=float)
            ok = np.asarray(r["count"]) > 0
            ece = cal["ece_before" if key == "reliability_before" else "ece_after"]
            ax.plot(x[ok], y[ok], marker="o", ms=3.5, color=colour, label=f"{name} (ECE {ece:.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top class)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{modality}: {cal['method']}", fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    _save(fig, path)


def _table(rows: list[dict[str, Any]], first: str) -> list[str]:
    lines = [
        f"| {first} | n | audio-preferred | mean d | mean p_audio | mean p_visual |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['value']} | {r['n']} | {r['share_audio_preferred']:.1%} | {r['mean_discrepancy']:+.3f} | "
            f"{r['mean_p_audio']:.3f} | {r['mean_p_visual']:.3f} |"
        )
    return lines


def _markdown(
    h: dict[str, Any],
    classes: list[dict[str, Any]],
    by: dict[str, list[dict[str, Any]]],
    scores: pa.Table,
    calibration: dict[str, Any] | None = None,
) -> str:
    scorer = scores.column("scorer_id")[0].as_py() if scores.num_rows else "n/a"
    lines = [
        "# Modality bias report",
        "",
        f"- samples: {h['samples']}; scorer: `{scorer}`",
        f"- audio-preferred: {h['share_audio_preferred']:.1%}; visual-preferred: {h['share_visual_preferred']:.1%}",
        f"- mean d: {h['mean_discrepancy']:+.3f}; mean |d|: {h['mean_abs_discrepancy']:.3f}",
        f"- mean confidence: audio {h['mean_p_audio']:.3f}, visual {h['mean_p_visual']:.3f}",
        "",
        "![confidence density](confidence_density.png) ![discrepancy histogram](discrepancy_hist.png)",
        "",
        *health_lines(h.get("health"), scores),
        *_calibration_lines(calibration or {}),
        *_uncertainty_lines(h.get("uncertainty")),
        "## Per class (sorted by audio-preferred share)",
        "",
        *_table(classes, "class"),
        "",
        "![per class](per_class.png)",
    ]
    for col, rows in by.items():
        lines += ["", f"## By {col}", "", *_table(rows, col)]
    return "\n".join(lines) + "\n"


def print_report_summary(result: ReportResult) -> None:
    h = result.headline
    summary_table(
        f"report -> {result.report_path}",
        ["", "value"],
        [
            ["samples", h["samples"]],
            ["audio-preferred share", h["share_audio_preferred"]],
            ["mean |d|", h["mean_abs_discrepancy"]],
        ],
    )


REPORT_STAGE: Stage[ReportConfig, ReportResult] = Stage(
    name="report",
    config=ReportConfig,
    claims_folder=True,  # --overwrite: write into a folder mmcurate did not make
    reads=("ingest/scores.parquet", "ingest/manifest.parquet"),
    writes=("ingest/report/",),
    run=run_report,
    summarize=print_report_summary,
    is_complete=lambda workdir, cfg: (report_dir(workdir, cfg) / "report.md").is_file(),
    sections=("report",),
    optional=True,
)


def health_lines(health: dict[str, Any] | None, scores: pa.Table) -> list[str]:
    """The scorers' self-check: out-of-fold accuracy against chance per modality and fold, the
    verdicts, and how many samples both scorers are weak on (their d says little)."""
    if not health:
        return ["## Scorers", "", "No self-check recorded (imported scores, or scores from an older mmcurate).", ""]
    lines = [
        "## Scorers",
        "",
        f"Self-check: **{health['status']}**.",
        "",
        "| modality | out-of-fold accuracy | 95 % interval | chance | kappa | per fold |",
        "|---|---:|---|---:|---:|---|",
    ]
    for m, f in health["modalities"].items():
        folds = ", ".join(f"{x['accuracy']:.2f}" for x in f["folds"] if x.get("accuracy") is not None)
        lo, hi = f["interval"]
        lines.append(
            f"| {m} | {f['accuracy']:.3f} | {lo:.3f}-{hi:.3f} | {f['chance']:.3f} | {f['kappa']:.2f} | {folds} |"
        )
    lines.append("")
    lines += [f"- {v['line']}" for v in health.get("verdicts", [])]
    if "both_weak" in scores.column_names:
        n = int(np.asarray(scores.column("both_weak").fill_null(False).to_numpy(zero_copy_only=False)).sum())
        lines.append(
            f"- both scorers weak on {n} of {scores.num_rows} samples (both confidences low): their d near 0 "
            "means 'both wrong', not 'balanced' (`balance --exclude-both-weak` leaves them out)"
        )
    return [*lines, ""]


def _calibration_lines(calibration: dict[str, Any]) -> list[str]:
    if not calibration:
        return ["## Calibration", "", "No calibration data (imported scores, or scores from an older mmcurate).", ""]
    lines = ["## Calibration", "", "| modality | method | ECE before | ECE after | note |", "|---|---|---:|---:|---|"]
    for m, cal in sorted(calibration.items()):
        note = cal.get("reason") or ", ".join(f"T={t}" for t in (cal.get("temperature_per_group") or {}).values())
        lines.append(f"| {m} | {cal['method']} | {cal['ece_before']:.3f} | {cal['ece_after']:.3f} | {note} |")
    lines.append("")
    for m, cal in sorted(calibration.items()):
        if cal["ece_after"] > cal["ece_before"]:
            lines.append(
                f"Calibration made the {m} confidences' ECE worse "
                f"({cal['ece_before']:.3f} -> {cal['ece_after']:.3f}): "
                "its parameters, fitted on the other folds, do not transfer (too few samples per fold, or folds that "
                "differ); try `--calibration none` or more data."
            )
            lines.append("")
    return [*lines, "![reliability](reliability.png)", ""]


def _bins_text(u: dict[str, Any]) -> str:
    if u.get("edges") == "the balance's":
        return f"the balance's {u['bins']} bins"
    return f"{u['bins']} equal bins over [-1, 1]"


def _uncertainty_lines(u: dict[str, Any] | None) -> list[str]:
    if not u:
        return [
            "## Uncertainty",
            "",
            "No per-sample uncertainty (imported scores, or scores from an older mmcurate).",
            "",
        ]
    return [
        "## Uncertainty",
        "",
        f"- near a bin edge: {u['near_edge']} samples have a bin probability below {u['threshold']:g} "
        f"({_bins_text(u)}; their bin is a coin flip given their discrepancy_std)",
        f"- mean bin probability: {u['mean_bin_probability']:.3f}; "
        f"mean discrepancy_std: {u['mean_discrepancy_std']:.3f}",
        "- `mmcurate balance --max-discrepancy-std X` leaves out samples whose discrepancy_std exceeds X",
        "",
    ]
