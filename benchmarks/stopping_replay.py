"""Where would the convergence rule stop? Replays recorded inner-loss histories through it.

Every convergence job records its search's inner-validation loss per epoch
(``INGEST/score_runs*/<scorer>/<job>.json``). This feeds those curves, epoch by epoch, to
:class:`mmcurate.score.schedule.SearchState` as it is now and prints, per set and modality, how many
searches would end earlier, at the same epoch, or later than recorded ("later" is all a replay can
say: the curve beyond the recorded stop was never trained). It is how a change of the rule was
screened on every kept run before any retraining; ``benchmarks/discrepancy.py`` then measures it.

    python benchmarks/stopping_replay.py --cache /tmp/mmb --runs 'score_runs_seed*'

Steps per epoch (which set the rule's step floors on small sets) are estimated from the recorded
inner-split size and ``--inner-fraction`` / ``--batch-size`` defaults; a curve recorded with other
settings is replayed with these, so read small sets' rows with care.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmcurate.score.config import ScoreConfig  # noqa: E402

#: the defaults the recorded runs were made with: they set the steps per epoch the replay assumes
DEFAULTS = ScoreConfig()


def recorded_searches(cache: Path, runs: str) -> list[dict]:
    """Every recorded search attempt under ``cache/<set>/work/ingest/<runs>/<scorer>/<job>.json``."""
    out = []
    for path in sorted(cache.glob(f"*/work/ingest/{runs}/*/fold*-*.json")):
        report = json.loads(path.read_text())["payload"]["report"]
        if report.get("schedule") != "converge":
            continue
        inner = int(report["inner_samples"])
        fit = round(inner * (1 - DEFAULTS.inner_fraction) / DEFAULTS.inner_fraction)
        for attempt in report["attempts"]:
            out.append(
                {
                    "set": path.parts[-6],
                    "modality": path.stem.split("-")[1],
                    "history": attempt["history"],
                    "stop": attempt["stop"],
                    "inner": inner,
                    "steps": max(1, math.ceil(fit / DEFAULTS.batch_size)),
                }
            )
    return out


def replay(search: dict, num_classes: int, rule: str = "mmcurate.score.schedule") -> tuple[int | None, str]:
    """The epoch count and reason at which ``rule`` (a module with ``ConvergenceSettings`` and
    ``SearchState``; today's by default) ends this recorded search (None: later than recorded)."""
    module = importlib.import_module(rule)
    state = module.SearchState(module.ConvergenceSettings().for_steps(search["steps"]), num_classes)
    for row in search["history"]:
        loss = row["inner_loss"] if row["inner_loss"] is not None else math.inf
        correct = round((row["inner_accuracy"] or 0.0) * search["inner"])
        why = state.after_epoch(row["train_loss"], loss, correct, search["inner"])
        if why is not None:
            return state.epochs, why
    return None, "later"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/mmcurate-bench"), help="benchmarks/discrepancy.py cache")
    ap.add_argument("--runs", default="score_runs*", help="glob of the job-array folders to replay")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--rule", default="mmcurate.score.schedule", help="module of the rule to replay (a candidate)")
    args = ap.parse_args()
    rows: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for search in recorded_searches(args.cache, args.runs):
        n, _ = replay(search, args.classes, args.rule)
        recorded = len(search["history"])
        row = rows[(search["set"], search["modality"])]
        row["searches"] += 1
        row["recorded epochs"] += recorded
        if n is None:
            row["later"] += 1
        elif n < recorded:
            row["earlier"] += 1
            row["epochs saved"] += recorded - n
        else:
            row["same"] += 1
    cols = ["searches", "recorded epochs", "earlier", "epochs saved", "same", "later"]
    print("| set | modality | " + " | ".join(cols) + " |")
    print("|---|---|" + "---:|" * len(cols))
    for (name, modality), row in sorted(rows.items()):
        print(f"| {name} | {modality} | " + " | ".join(str(row[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
