"""Execution settings (``--engine``, ``--ray-address``, ...): options, and one-line errors that never hang."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmcurate.common.errors import MMCurateError
from mmcurate.common.options import from_mapping
from mmcurate.execution import ExecutionConfig
from mmcurate.ingest import IngestConfig
from mmcurate.reeval.config import ReevalConfig
from mmcurate.score import ScoreStageConfig


def _cli(*args: str, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "MMCURATE_NO_PROGRESS": "1", "MMCURATE_RAY_CONNECT_TIMEOUT": "2", **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def test_every_stage_takes_the_execution_options() -> None:
    section = {"engine": "ray", "ray_address": "auto", "cpus_per_job": 2}
    assert from_mapping(IngestConfig, section, "ingest").execution == ExecutionConfig("ray", "auto", 2.0)
    score = from_mapping(ScoreStageConfig, {**section, "gpus_per_job": 0.5}, "score").execution
    assert score.gpus_per_job == 0.5
    assert from_mapping(ReevalConfig, {"distributed": True}, "reeval").execution.distributed
    with pytest.raises(MMCurateError, match="gpus_per_job"):  # ingest decodes on CPUs only
        from_mapping(IngestConfig, {"gpus_per_job": 1}, "ingest")
    with pytest.raises(MMCurateError, match="--ray-address .* needs --engine ray"):
        ExecutionConfig(ray_address="auto")
    with pytest.raises(MMCurateError, match="does not combine"):
        ExecutionConfig(engine="ray", distributed=True)
    assert ExecutionConfig(cpus_per_job=1.5).threads(8) == 2 and ExecutionConfig().threads(3) == 3


def test_without_ray_installed_the_ray_engine_is_a_one_line_error(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if ray were not installed
        "from mmcurate.cli import main\n"
        f"main(['ingest', {str(tmp_path)!r}, '--engine', 'ray', '--workdir', {str(tmp_path / 'w')!r}])\n"
    )
    proc = _cli("-c", code)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: Ray is not installed; pip install 'mmcurate[ray]' (or use --engine local)"
    ]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_an_unreachable_or_silent_ray_address_is_a_one_line_error_within_seconds(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="ray is not installed")
    with socket.socket() as silent:  # accepts TCP connections but never speaks Ray's protocol
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        for address, expected in (
            (f"127.0.0.1:{_closed_port()}", "cannot reach a Ray head node there"),
            (f"127.0.0.1:{silent.getsockname()[1]}", "no Ray handshake within 4 s"),
            ("nonsense", "expected auto or HOST:PORT"),
        ):
            started = time.monotonic()
            proc = _cli(
                "-m",
                "mmcurate",
                "ingest",
                str(tmp_path),
                "--workdir",
                str(tmp_path / "w"),
                "--engine",
                "ray",
                "--ray-address",
                address,
            )
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 2, proc.stderr
            assert len(lines) == 1 and lines[0].startswith("error: --ray-address") and expected in lines[0], (
                proc.stderr
            )
            assert time.monotonic() - started < 60


def test_one_device_rule_for_every_training_stage() -> None:
    """score and reeval resolve ``--device`` with the same function (they had two rules once)."""
    import torch

    import mmcurate.reeval.runner as reeval_runner
    import mmcurate.score.candidates as candidates
    import mmcurate.score.runner as score_runner
    from mmcurate.execution import device

    assert score_runner.execution_device is reeval_runner.execution_device is device.execution_device
    assert candidates.resolve_device is device.resolve_device
    assert device.resolve_device(" CPU ") == torch.device("cpu")
    assert device.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert device.execution_device("cpu", ExecutionConfig("ray", gpus_per_job=0.5)) == torch.device("cuda")
    for spec, why in (("tpu", "is not a device"), ("meta", "only cpu and cuda")):
        with pytest.raises(MMCurateError, match=why):
            device.resolve_device(spec)
    if not torch.cuda.is_available():
        with pytest.raises(MMCurateError, match="CUDA is not available"):
            device.resolve_device("cuda:7")
