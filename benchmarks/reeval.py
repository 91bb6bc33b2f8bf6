"""Re-evaluation benchmark and acceptance check on av_digits.

With ``--source`` (a balanced export, e.g. ``mmcurate-work/balanced``, a Hub repo id or an
ingest+score dir) it runs every method on it. Without, it first builds a stand-in balanced
export from the raw av_digits clips (decoded with PyAV, discrepancy faked from the ground-truth
condition; tests/_reeval_fixtures.py). Either way it prints the results table, the wall time,
and the issue's acceptance checks:

* the audio-only model beats the visual-only model on the audio-preferred test subset,
* the visual-only model beats the audio-only model on the visual-preferred test subset,
* the joint model beats both unimodal models overall.

    python benchmarks/reeval.py --source mmcurate-work/balanced --out /tmp/reeval-accept --seeds 0,1,2
    python benchmarks/reeval.py --out /tmp/reeval-bench                  # stand-in, all clips
    python benchmarks/reeval.py --out /tmp/reeval-bench --per-label 40   # stand-in, quicker subset

Exit status 0 when every acceptance check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from mmcurate.reeval.config import OPTIMIZER_DEFAULTS, ReevalConfig  # noqa: E402
from mmcurate.reeval.report import summarise  # noqa: E402
from mmcurate.reeval.runner import run_reeval_stage  # noqa: E402
from mmcurate.store import Workdir  # noqa: E402


def build_stand_in(av_digits: Path, out: Path, per_label: int | None) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    import _reeval_fixtures as fx

    export = out / f"stand-in-{per_label or 'all'}"
    if not (export / "data").is_dir():
        started = time.perf_counter()
        quota = {
            "train": per_label,
            "val": None if per_label is None else max(2, per_label // 3),
            "test": None if per_label is None else max(3, per_label // 2),
        }
        rows = fx.av_digits_rows(av_digits, quota)
        fx.write_balanced_export(rows, fx.DIGITS, export)
        print(f"stand-in export: {len(rows)} clips in {time.perf_counter() - started:.1f} s -> {export}")
    return export


def acceptance(summary: dict) -> list[tuple[str, bool, str]]:
    """The issue's three checks on the mean over seeds."""

    def m(method: str, key: str) -> float:
        return summary[method][key]["mean"]

    checks = [
        ("audio-only > visual-only on audio-preferred", "audio_only", "visual_only", "acc_audio_pref"),
        ("visual-only > audio-only on visual-preferred", "visual_only", "audio_only", "acc_visual_pref"),
    ]
    out = [(name, m(a, k) > m(b, k), f"{m(a, k):.4f} vs {m(b, k):.4f}") for name, a, b, k in checks]
    best_uni = max(m("audio_only", "acc"), m("visual_only", "acc"))
    out.append(
        ("joint > both unimodal overall", m("joint", "acc") > best_uni, f"{m('joint', 'acc'):.4f} vs {best_uni:.4f}")
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=None, help="dataset to run on (default: build the av_digits stand-in)")
    ap.add_argument("--av-digits", default=str(REPO.parent / "shared" / "data" / "av_digits"))
    ap.add_argument("--out", required=True, help="folder for the results (and the stand-in export)")
    ap.add_argument("--per-label", type=int, default=None, help="stand-in: train clips per digit; default all")
    ap.add_argument("--methods", default="all", help="comma-separated methods (any spelling) or 'all'")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--optimizer", default="sgd", choices=sorted(OPTIMIZER_DEFAULTS))
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()

    out = Path(args.out)
    source = args.source or str(build_stand_in(Path(args.av_digits), out, args.per_label))
    cfg = ReevalConfig(
        source=source,
        out=out / "results",
        methods=args.methods,
        seeds=args.seeds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        width=args.width,
        image_size=args.image_size,
        device=args.device,
        threads=args.threads,
        fresh=args.fresh,
    )
    started = time.perf_counter()
    outcome = run_reeval_stage(Workdir(out), cfg)
    print(outcome.paths["markdown"].read_text())
    print(f"total {time.perf_counter() - started:.1f} s on {outcome.device}")
    summary = summarise(outcome.runs)
    if not {"audio_only", "visual_only", "joint"} <= set(summary):
        print("acceptance: needs audio_only, visual_only and joint in --methods")
        return 1
    results = acceptance(summary)
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name}  ({detail})")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
