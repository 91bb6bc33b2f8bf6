"""``mmcurate reeval`` end to end on real av_digits clips: outputs, protocol, resume, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from _reeval_fixtures import DIGITS, av_digits_rows, write_balanced_export
from PIL import Image

from mmcurate.cli import main
from mmcurate.reeval.methods import METHODS

REPO = Path(__file__).resolve().parents[2]
TINY = ["--epochs", "2", "--width", "4", "--image-size", "16", "--batch-size", "16", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def small_export(av_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 train / 20 val / 30 test real clips (every condition present), as a balanced export."""
    rows = av_digits_rows(av_digits, {"train": 6, "val": 2, "test": 3})
    return write_balanced_export(rows, DIGITS, tmp_path_factory.mktemp("avd") / "balanced")


@pytest.mark.slow
def test_every_method_runs_end_to_end_and_selects_on_validation(
    small_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "results"
    main(["reeval", str(small_export), "--out", str(out), "--methods", "all", *TINY])
    captured = capsys.readouterr()
    printed = captured.out
    assert f"markdown: {out / 'results.md'}" in printed
    assert "the validation split holds 20 clip(s)" in captured.err  # said at the start: too few to choose on
    doc = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in doc["runs"]] == list(METHODS)
    assert doc["data"]["split_sizes"] == {"train": 60, "val": 20, "test": 30}
    for run in doc["runs"]:
        hist = run["history"]
        assert [h["epoch"] for h in hist] == [0, 1]
        best = max(hist, key=lambda h: (h["val_acc"], -h["val_loss"]))  # chosen on validation, not test
        assert run["best_epoch"] == best["epoch"] and run["best_val_acc"] == best["val_acc"]
        assert 0 <= run["test"]["accuracy"]["overall"] <= 1
        assert run["test"]["counts"]["overall"] == 30
        assert sum(run["test"]["bin_counts"]) == 30
        preds = pq.read_table(out / "runs" / run["method"] / "seed0" / "predictions.parquet")
        assert preds.num_rows == 30
        acc = float(np.mean(np.array(preds["pred"]) == np.array(preds["label"])))
        assert acc == pytest.approx(run["test"]["accuracy"]["overall"])
    assert doc["runs"][0]["test"]["acc_visual"] is None  # audio_only has no visual logits
    assert doc["runs"][2]["test"]["acc_visual"] is not None  # joint's concat split does
    md = (out / "results.md").read_text()
    assert all(cls.title in md for cls in METHODS.values()) and "Paired differences" in md
    assert "validation" in md and "validation split holds 20" in md
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(METHODS)  # header, one row per run
    assert len((out / "results_summary.csv").read_text().splitlines()) > len(METHODS)
    # ReLearning's first diagnosis needs a third epoch: in 2 epochs it has nothing to plot, and says so
    assert set(doc["diagnostics"]) == {m for m, cls in METHODS.items() if cls.diagnostics} - {"relearning"}
    assert "no diagnosis ran in this budget" in md
    for run in doc["runs"]:
        contribution = run["test"]["contribution"]
        assert contribution["n"] == 30 and contribution["dataset"]["audio"] is not None
    pngs = ["accuracy_by_bin.png", "accuracy_by_threshold.png"] + [f"diagnostics_{m}.png" for m in doc["diagnostics"]]
    for png in pngs:
        with Image.open(out / png) as img:
            assert img.format == "PNG" and img.size[0] > 400


@pytest.mark.slow
def test_resplit_seeds_redraw_train_and_val_and_the_tables_say_so(small_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "resplit"
    main(["reeval", str(small_export), "--out", str(out), "--methods", "joint", "--seeds", "0,1", "--resplit", *TINY])
    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"]["resplit"] is True
    ids = {}
    for seed in (0, 1):
        val = pq.read_table(out / "runs" / "joint" / f"seed{seed}" / "predictions.parquet")  # test is fixed
        ids[seed] = sorted(val.column("sample_id").to_pylist())
    assert ids[0] == ids[1]
    configs = [json.loads((out / "runs" / "joint" / f"seed{s}" / "config.json").read_text())["data"] for s in (0, 1)]
    assert configs[0] != configs[1]  # each seed trained on its own train/val draw
    md = (out / "results.md").read_text()
    assert "train/val re-drawn" in md and "seed and split variance" in md


def _cli(args: list[str], env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "MMCURATE_NO_PROGRESS": "1", **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "mmcurate", "reeval", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one(small_export: Path, tmp_path: Path) -> None:
    args = [
        str(small_export),
        "--methods",
        "ogm_ge",
        *TINY[2:],
        "--epochs",
        "5",
    ]  # OGM-GE: its noise RNG must resume too
    main(["reeval", *args, "--out", str(tmp_path / "straight")])

    cut = tmp_path / "cut"
    proc = _cli([*args, "--out", str(cut)])  # a real process, killed with SIGKILL after its first checkpoint
    last = cut / "runs" / "ogm_ge" / "seed0" / "last.pt"
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert last.exists() and not (cut / "results.json").exists(), "the run finished before it could be cut"

    main(["reeval", *args, "--out", str(cut)])
    assert json.loads((cut / "timings.json").read_text())["runs"][0]["status"] == "resumed"
    for name in ("results.json", "results.md", "results.csv"):
        assert (cut / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name

    main(["reeval", *args, "--out", str(cut)])  # finished runs are reused, not retrained
    assert json.loads((cut / "timings.json").read_text())["runs"][0]["status"] == "cached"
    assert (cut / "results.json").read_bytes() == (tmp_path / "straight" / "results.json").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/no/such/dir/anywhere"], "no such directory"),
        (["{src}", "--methods", "joint,nosuch"], "unknown method(s) nosuch"),
        (["{src}", "--method-param", "ogm_ge.bogus=1"], "unknown parameter(s) bogus"),
        (["{src}", "--method-param", "alpha=1"], "expected METHOD.KEY=VALUE"),
        (["{src}", "--methods", "ogm_ge", "--fusion", "gated"], "needs per-modality logits"),
        (["{src}", "--seeds", "0,x"], "comma-separated integers"),
        (["{src}", "--seeds", "99999999999999999999"], "seeds must lie between 0 and 2147483647"),
        (
            ["{src}", "--device", "cuda:7"] if not torch.cuda.is_available() else ["{src}", "--device", "tpu"],
            "--device",
        ),
    ],
)
def test_bad_input_is_a_one_line_error(
    small_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    argv = [a.replace("{src}", str(small_export)) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(["reeval", *argv, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err


def test_unreachable_hub_dataset_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit) as exc:
        main(["reeval", "no-such-org/no-such-set", "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: could not load Hub dataset 'no-such-org/no-such-set'")
    assert sum(line.startswith("error") for line in lines) == 1 and not any("Traceback" in line for line in lines)


@pytest.mark.slow
def test_runs_trained_together_give_the_bytes_of_runs_trained_one_by_one(
    small_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On CPU the local engine trains one run per core at once (one idled before); each run is fixed by its
    seed and thread count, so the tables and every run's predictions and checkpoint are the same bytes."""
    import mmcurate.execution.local as local

    args = [str(small_export), "--methods", "joint,ogm_ge", "--seeds", "0,1", *TINY]
    outputs = {}
    for cores in (1, 2):
        monkeypatch.setattr(local, "available_cores", lambda cores=cores: cores)
        main(["reeval", *args, "--out", str(tmp_path / f"cores{cores}")])
        assert f"4 run(s) on local: {cores} process(es)" in capsys.readouterr().err
        root = tmp_path / f"cores{cores}"
        outputs[cores] = {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("timings.json", "timing.json")
        }
    assert outputs[1].keys() == outputs[2].keys() and "runs/ogm_ge/seed1/best.pt" in outputs[2]
    assert [k for k in outputs[1] if outputs[1][k] != outputs[2][k]] == []
