"""The one rule for ``--device``: which torch device a training stage (score, reeval) runs on.

``auto`` is CUDA when a GPU is visible, else the CPU; ``cpu``, ``cuda`` and ``cuda:N`` name one (any
spelling of case, surrounding blanks ignored). A CUDA device where none is available, a device torch does
not know, or one of another kind (``mps``, ``meta``: the models and the determinism settings are made for
these two) is a one-line error. With ``--engine ray --gpus-per-job N`` the device is CUDA whatever this
process sees: Ray gives each task its GPU (:func:`execution_device`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mmcurate.common.errors import MMCurateError

if TYPE_CHECKING:
    from mmcurate.execution.config import ExecutionConfig


def resolve_device(spec: str) -> torch.device:
    """``--device SPEC`` as a torch device (see the module docstring)."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise MMCurateError(f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise MMCurateError(f"--device {spec}: only cpu and cuda are supported (or auto)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MMCurateError(f"--device {spec}: CUDA is not available here; use --device cpu or auto")
    return device


def execution_device(spec: str, execution: ExecutionConfig) -> torch.device:
    """The device jobs train on: CUDA for Ray tasks that reserve GPUs (this process may have none), else
    :func:`resolve_device`."""
    if execution.engine == "ray" and execution.gpus_per_job > 0:
        return torch.device("cuda")
    return resolve_device(spec)


def describe_device(device: torch.device) -> str:
    """What the logs and reports say about the device: the GPU's name, or the CPU threads."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
