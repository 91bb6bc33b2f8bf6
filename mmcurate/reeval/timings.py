"""What each re-evaluation run cost, per run and per method: ``timings.json`` and the end-of-run time table.

Times are kept out of ``result.json`` and the results tables, which are byte-reproducible. A run trained
in this call records its wall-clock and process CPU seconds next to its checkpoints (``timing.json`` in
its run folder), so a later call that reuses it ("cached") still reports what it cost. CPU seconds are
the figure that holds on a shared machine; the ratio against ``joint`` is the method's overhead.
A method that trains another method's run inside its own (UMT's unimodal teachers, when they had not
run before it) counts that time in its own.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from mmcurate.common.atomic import atomic_write_json
from mmcurate.reeval.trainer import RunResult, run_dir_for

TIMING_FILE = "timing.json"


def record_timings(out_dir: Path, runs: list[RunResult], device: str) -> dict[str, Any]:
    """Write ``timings.json`` (per run and per method) and each trained run's ``timing.json``; return the
    document."""
    rows = []
    for run in runs:
        own = run_dir_for(out_dir, run.method, run.seed) / TIMING_FILE
        if run.status in ("trained", "resumed"):
            timing = {"seconds": round(run.seconds, 2), "cpu_seconds": round(run.cpu_seconds, 2)}
            if run.status == "resumed":
                timing["partial"] = True  # only the epochs this call trained
            atomic_write_json(own, timing)
        else:
            timing = _read(own)
        rows.append({"method": run.method, "seed": run.seed, "status": run.status, **timing})
    doc = {"device": device, "runs": rows, "methods": per_method(rows)}
    atomic_write_json(Path(out_dir) / "timings.json", doc)
    return doc


def per_method(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean wall and CPU seconds per whole run of each method (runs with a partial or no timing left out),
    and the CPU ratio against ``joint`` where joint has a timing."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        whole = [r for r in rows if r["method"] == method and "cpu_seconds" in r and not r.get("partial")]
        out.append(
            {
                "method": method,
                "runs_timed": len(whole),
                "seconds": round(statistics.fmean(r["seconds"] for r in whole), 2) if whole else None,
                "cpu_seconds": round(statistics.fmean(r["cpu_seconds"] for r in whole), 2) if whole else None,
            }
        )
    joint = next((m["cpu_seconds"] for m in out if m["method"] == "joint"), None)
    for m in out:
        m["cpu_vs_joint"] = round(m["cpu_seconds"] / joint, 2) if joint and m["cpu_seconds"] is not None else None
    return out


def time_table_rows(doc: dict[str, Any]) -> list[list[Any]]:
    """The end-of-run table's rows: method, runs timed, wall s, CPU-s, CPU vs joint (``-`` where unknown)."""

    def show(v: Any) -> Any:
        return "-" if v is None else v

    return [
        [m["method"], m["runs_timed"], show(m["seconds"]), show(m["cpu_seconds"]), show(m["cpu_vs_joint"])]
        for m in doc["methods"]
    ]


def _read(path: Path) -> dict[str, Any]:
    """A run's recorded timing, or nothing (runs finished before timings were recorded)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: doc[k] for k in ("seconds", "cpu_seconds", "partial") if isinstance(doc.get(k), (int, float, bool))}
