"""A newcomer's first hour (issue 25): what they type must work on the documented install, and what the
tools print must be readable in a log file. Real files and real subprocesses throughout."""

from __future__ import annotations

import os
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
