"""A newcomer's first hour (issue 25): what they type must work on the documented install, and what the
tools print must be readable in a log file. Real files and real subprocesses throughout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _hub_fixtures import REPO_ROOT, build_export

#: Run in a fresh process whose ``import torchcodec`` fails, as on the documented install (torchcodec is not a
#: dependency). A stub package that raises is stronger than its absence: ``datasets`` then believes torchcodec
#: is there and would import it the moment a row's audio were decoded.
_LOAD_ROW0 = textwrap.dedent(
    """
    import io, sys
    import datasets, soundfile
    try:
        import torchcodec  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("torchcodec imported: the test environment is wrong")
    balanced = sys.argv[1]
    for ds in (
        datasets.load_dataset("parquet", data_dir=balanced + "/data"),
        datasets.load_from_disk(balanced + "/hf"),
    ):
        row = ds["train"][0]
        samples, rate = soundfile.read(io.BytesIO(row["audio"]["bytes"]))
        print(row["sample_id"], rate, samples.shape[0], row["audio_sample_rate"], len(row["frames"]))
    """
)


def _blocked_torchcodec(root: Path) -> Path:
    stub = root / "blocked" / "torchcodec"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('raise ImportError("torchcodec is not installed (blocked by the test)")\n')
    return stub.parent


def test_export_row_reads_and_decodes_without_torchcodec(tmp_path: Path) -> None:
    fx = build_export(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    env.update(
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(_blocked_torchcodec(tmp_path)), str(REPO_ROOT)]),
    )
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_ROW0, str(fx.balanced_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.split("\n")[:2]
    assert len(lines) == 2
    for line in lines:
        sample_id, rate, n, declared_rate, n_frames = line.split()
        # the fixture's clips are 0.25 s of 16 kHz audio and 4 frames: the decoded array has the right length
        assert (int(rate), int(n), int(declared_rate), int(n_frames)) == (16000, 4000, 16000, 4), line
    assert lines[0].split()[0] == lines[1].split()[0]  # both loads give the same first row


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment with progress on (tests elsewhere set MMCURATE_NO_PROGRESS) and this tree first."""
    env = {k: v for k, v in os.environ.items() if k not in ("MMCURATE_NO_PROGRESS", "MMCURATE_PROGRESS_SECONDS")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")])
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from _reeval_fixtures import synthetic_rows, write_balanced_export

    rows = synthetic_rows({"train": 24, "val": 8, "test": 8}, ["a", "b", "c", "d"])
    return write_balanced_export(rows, ["a", "b", "c", "d"], tmp_path_factory.mktemp("tiny") / "balanced", bins=4)


EPOCH_LINE = re.compile(
    r"^reeval (\w+) seed (\d+): epoch (\d+)/(\d+) loss (\S+) val_acc (\S+) \| (\d+:\d\d) elapsed(, ~(\d+:\d\d) left)?$"
)


@pytest.mark.slow
def test_reeval_progress_in_a_log_is_one_line_per_epoch_with_true_totals(tiny_export: Path, tmp_path: Path) -> None:
    """stderr to a pipe (a log file): one plain line per epoch per run, epochs 1..N of N, never past the total,
    no carriage returns. ``valuation`` runs more batches per epoch than the others (the bar that counted
    batches against epochs x batches overshot, ``39/20``)."""
    epochs = 3
    proc = subprocess.run(
        [sys.executable, "-m", "mmcurate", "reeval", str(tiny_export), "--out", str(tmp_path / "r")]
        + ["--methods", "joint,valuation", "--epochs", str(epochs), "--width", "4", "--image-size", "16"]
        + ["--batch-size", "8", "--device", "cpu"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stderr
    seen: dict[str, list[int]] = {}
    for line in proc.stderr.splitlines():
        m = EPOCH_LINE.match(line)
        if m:
            method, _, done, total = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
            assert total == epochs and 1 <= done <= total, line
            float(m.group(5)), float(m.group(6))  # the loss and accuracy are numbers
            if done > 1:
                assert m.group(9), f"no time left on a line after the first epoch: {line}"
            seen.setdefault(method, []).append(done)
    assert seen == {"joint": [1, 2, 3], "valuation": [1, 2, 3]}, proc.stderr[-3000:]


@pytest.mark.slow
def test_export_progress_counts_what_it_says(tmp_path: Path) -> None:
    """``export: reading ...`` counts samples, N/N of the rows exported (it once said ``reading shards 3/3``
    for one shard, counting splits)."""
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from _hub_fixtures import build_export
        build_export(Path(sys.argv[1]), max_shard_size="500MB", n=30)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env=_env(MMCURATE_PROGRESS_SECONDS="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pyarrow.parquet as pq

    rows = sum(pq.read_metadata(p).num_rows for p in (tmp_path / "work" / "balanced" / "data").glob("*.parquet"))
    reading = [ln for ln in proc.stderr.splitlines() if ln.startswith("export: reading")]
    assert reading and reading[-1].startswith(f"export: reading samples: {rows}/{rows} |"), proc.stderr
    for line in reading:
        done, total = map(int, line.split()[3].split("/"))
        assert done <= total == rows, line
    writing = [ln for ln in proc.stderr.splitlines() if ln.startswith("export: writing splits")]
    assert writing and writing[-1].startswith("export: writing splits: 3/3 |"), proc.stderr


def _table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("│┃ ").split("│")] for line in text.splitlines() if line.startswith("│")]


@pytest.mark.slow
def test_output_off_a_terminal_is_full_width_and_the_pipeline_names_its_commands(tmp_path: Path) -> None:
    """stdout and stderr piped (a log): tables at full width, no path cut with an ellipsis; the pipeline's
    ``command`` column holds each stage's command; ingest prints its output folder once on stdout."""
    from mmcurate.synth import generate

    raw = tmp_path / "raw"
    generate(raw, n_per_class=2, seed=0)
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4) / "work"  # longer than rich's 80 columns off a terminal
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nsource: {{raw_dir: {raw}}}\ningest: {{manifest: {raw / 'demo_labels.csv'}}}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mmcurate", "run", str(recipe), "--workdir", str(deep), "--only", "ingest"],
        env=_env(MMCURATE_NO_PROGRESS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "…" not in text and "..." not in text, text
    assert f"pipeline -> {deep}" in text and f"ingest -> {deep / 'ingest'}" in text, text
    commands = {row[0]: row[-1] for row in _table_rows(proc.stderr) if len(row) == 4}
    assert commands["ingest"].startswith(f"mmcurate ingest {raw} --manifest {raw / 'demo_labels.csv'}"), commands

    again = subprocess.run(
        [sys.executable, "-m", "mmcurate", "run", str(recipe), "--workdir", str(deep), "--only", "ingest"],
        env=_env(MMCURATE_NO_PROGRESS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    skipped = {row[0]: row for row in _table_rows(again.stderr) if len(row) == 4}
    assert skipped["ingest"][1] == "skipped (up to date)" and skipped["ingest"][-1].startswith("mmcurate ingest ")

    out = tmp_path / ("another-long-output-folder-name-" * 3)
    proc = subprocess.run(
        [sys.executable, "-m", "mmcurate", "ingest", str(raw), "--manifest", str(raw / "demo_labels.csv")]
        + ["--out", str(out)],
        env=_env(MMCURATE_NO_PROGRESS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [str(out)]
    assert "…" not in proc.stderr and f"ingest -> {out}" in proc.stderr


def _mm(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = _env(MMCURATE_NO_PROGRESS="1", **extra)
    env.pop("MMCURATE_WORKDIR", None)
    return subprocess.run(
        [sys.executable, "-m", "mmcurate", *args], env=env, capture_output=True, text=True, timeout=300, cwd=str(cwd)
    )


@pytest.mark.slow
def test_workdir_before_the_command_is_the_same_as_after_it(tmp_path: Path) -> None:
    before = _mm(["--workdir", str(tmp_path / "w1"), "reeval"], tmp_path)
    after = _mm(["reeval", "--workdir", str(tmp_path / "w1")], tmp_path)
    assert before.returncode == after.returncode == 2, before.stderr
    assert before.stderr == after.stderr and f"{tmp_path / 'w1' / 'balanced'}" in before.stderr
    both = _mm(["--workdir", str(tmp_path / "outer"), "reeval", "--workdir", str(tmp_path / "inner")], tmp_path)
    assert str(tmp_path / "inner" / "balanced") in both.stderr  # the command's own option wins


@pytest.mark.slow
def test_a_failed_reeval_in_an_empty_folder_leaves_nothing_behind(tmp_path: Path) -> None:
    proc = _mm(["reeval"], tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: no balanced dataset"), proc.stderr
    assert list(tmp_path.iterdir()) == []  # no mmcurate-work/reeval/.mmcurate.lock
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")
    proc = _mm(["reeval", "--out", str(tmp_path / "mine"), "--overwrite"], tmp_path)
    assert proc.returncode == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "kept"  # a folder it did not create is not removed


@pytest.mark.slow
def test_group_fold_threshold_is_stated_the_same_in_the_docs_and_help(tmp_path: Path) -> None:
    from mmcurate.score.folds import MIN_GROUPS_PER_FOLD

    phrase = f"at least {MIN_GROUPS_PER_FOLD} groups per fold"
    docs = " ".join((REPO_ROOT / "docs" / "score.md").read_text().split())  # moved there from the README
    assert phrase in docs
    help_text = " ".join(_mm(["score", "--help"], tmp_path).stdout.split())
    assert phrase in help_text


def test_report_counts_edges_of_the_balance_bins_and_flags_worse_calibration(tmp_path: Path) -> None:
    import pyarrow as pa

    from mmcurate.score.report import _calibration_lines, balance_edges, uncertainty_summary
    from mmcurate.store import BalancedDir

    # d = 0.1 +- 0.02 sits mid-bin in the 10 default bins, and in a 0.02-wide bin of the balance below
    scores = pa.table(
        {
            "discrepancy": [0.1, 0.1, 0.5],
            "discrepancy_std": [0.02, 0.02, 0.02],
            "bin_probability": [1.0, 1.0, 1.0],  # as the score stage wrote it for its 10 bins (0.1 sits mid-bin)
        }
    )
    ingest = tmp_path / "work" / "ingest"
    ingest.mkdir(parents=True)
    assert balance_edges(ingest) is None
    assert uncertainty_summary(scores, None)["near_edge"] == 0
    balanced = BalancedDir(tmp_path / "work" / "balanced")
    balanced.path.mkdir()
    balanced.write_meta({"bin_edges": [-1.0, 0.09, 0.11, 1.0]})  # a balance with 3 bins, one 0.02 wide
    balanced.selection_path.write_bytes(b"")
    edges = balance_edges(ingest)
    assert edges == [-1.0, 0.09, 0.11, 1.0]
    u = uncertainty_summary(scores, edges)
    assert u["bins"] == 3 and u["near_edge"] == 2

    cal = {"method": "floor", "reason": None, "temperature_per_group": {}}
    lines = _calibration_lines({"audio": {**cal, "ece_before": 0.03, "ece_after": 0.05}, "visual": {**cal,
        "ece_before": 0.09, "ece_after": 0.02}})  # fmt: skip
    worse = [ln for ln in lines if "worse" in ln]
    assert len(worse) == 1 and worse[0].startswith(
        "Calibration made the audio confidences' ECE worse (0.030 -> 0.050)"
    )


@pytest.mark.slow
def test_pytest_says_how_many_tests_skipped_for_missing_shared_data(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/reeval/test_reeval_e2e.py"]
        + ["-k", "every_method or resplit"],
        env=_env(MMCURATE_SHARED_DATA=str(tmp_path / "absent")),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(REPO_ROOT),
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("mmcurate: ")]
    assert lines == [
        f"mmcurate: 2 test(s) skipped: the shared test data (fsdd, mnist_t10k, av_digits, clips) was not found at "
        f"{tmp_path / 'absent'}; set MMCURATE_SHARED_DATA to the folder that holds it (README: Quickstart)"
    ], proc.stdout


def test_readme_set_up_needs_nothing_beyond_pip_and_python() -> None:
    """The install line takes torch's CPU build explicitly (CI installs it the same way); no `jq` anywhere."""
    readme = (REPO_ROOT / "README.md").read_text()
    cpu_torch = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    install = next(ln for ln in readme.splitlines() if ln.startswith("python3 -m venv .venv"))
    assert cpu_torch in install and install.index(cpu_torch) < install.index("pip install -e '.[test]'")
    assert f"python -m {cpu_torch}" in (REPO_ROOT / ".ci" / "run").read_text().replace("--quiet ", "")
    assert not re.search(r"(^|[\s|(])jq\s", readme)
    assert "MMCURATE_SHARED_DATA" in readme
