"""The Ray executor: a stage's work units as tasks on a Ray cluster (``--engine ray``).

Like every executor it only maps: each task runs the pure per-item function on a few items of
one unit and returns their results; the driver (the stage) writes every output and completion
marker. So a task that Ray retries after its worker died is computed again but written once,
and a unit whose task gave up (``--task-retries`` exhausted) is simply not marked done: the other
units are written, the run ends with a one-line error, and a rerun, with either engine, redoes
that unit only.

The function (with whatever it closes over: a scorer's decoded tensors, a re-evaluation's data)
goes into the object store once; each worker process fetches it once, runs the initializer, and
keeps it for the following tasks.

Connecting never hangs: an address that does not answer on TCP within
:data:`CONNECT_TIMEOUT_S` is a one-line error, and the Ray handshake itself is bounded by a
watchdog (Ray's client retries for minutes on its own).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mmcurate.common.errors import MMCurateError, one_line
from mmcurate.execution.base import Executor, R, T, WorkUnit

#: seconds to reach the head node (TCP), and then to finish Ray's handshake
CONNECT_TIMEOUT_S = float(os.environ.get("MMCURATE_RAY_CONNECT_TIMEOUT", "15"))
#: items of one unit per task: enough to amortise a task's overhead (a few ms), few enough to balance
ITEMS_PER_TASK = 4
#: tasks in flight per slot: hides the scheduling latency, bounds the results held in memory
WINDOW_PER_SLOT = 4

INSTALL_HINT = "Ray is not installed; pip install 'mmcurate[ray]' (or use --engine local)"


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MMCurateError(INSTALL_HINT) from None
    return ray


def _resolve_auto() -> str:
    """``auto`` -> HOST:PORT of the running cluster ($RAY_ADDRESS, else the last ``ray start`` here)."""
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env != "auto":
        return env
    try:  # Ray's own lookup (private, so guarded): the address `ray start` recorded, or a local GCS process
        from ray._private.services import canonicalize_bootstrap_address_or_die

        return str(canonicalize_bootstrap_address_or_die("auto"))
    except ConnectionError:
        raise MMCurateError(
            "--ray-address auto: no running Ray cluster found (start one with `ray start --head`, set "
            "$RAY_ADDRESS, or pass --ray-address HOST:PORT; without --ray-address a local instance is started)"
        ) from None
    except Exception as exc:  # pragma: no cover - a Ray version without this helper
        raise MMCurateError(
            f"--ray-address auto: could not look up the cluster ({one_line(exc)}); pass HOST:PORT"
        ) from None


def _split_address(address: str) -> tuple[str, int]:
    bare = address.removeprefix("ray://")
    host, sep, port = bare.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise MMCurateError(f"--ray-address {address!r}: expected auto or HOST:PORT (e.g. 10.0.0.5:6379)")
    return host.strip("[]"), int(port)


def probe(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A one-line error unless something accepts TCP connections at ``address`` within ``timeout``."""
    host, port = _split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else one_line(exc.strerror or exc)
        raise MMCurateError(
            f"--ray-address {address}: cannot reach a Ray head node there ({reason} after at most {timeout:g} s); "
            "check the address and that `ray start --head` runs there"
        ) from None


def connect(address: str | None) -> Any:
    """Join the Ray cluster at ``address`` (see :class:`ExecutionConfig`), or start a local instance.

    A process that already called ``ray.init`` (a test, a notebook) keeps its connection.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    import logging

    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address in (None, "", "local"):
        with _muted_stderr():
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
        return ray
    target = _resolve_auto() if address == "auto" else address
    probe(target)
    done = threading.Event()
    with _muted_stderr() as stderr_fd:

        def give_up() -> None:  # Ray's handshake cannot be interrupted from Python: end the process, in one line
            if not done.is_set():
                os.write(
                    stderr_fd,
                    f"error: --ray-address {target}: no Ray handshake within {2 * CONNECT_TIMEOUT_S:g} s (is it a "
                    "Ray head node, of the same Ray version?)\n".encode(),
                )
                os._exit(2)

        watchdog = threading.Timer(CONNECT_TIMEOUT_S * 2, give_up)
        watchdog.daemon = True
        watchdog.start()
        try:
            ray.init(address=target, **quiet)
        except Exception as exc:
            raise MMCurateError(f"--ray-address {target}: {one_line(exc)}") from None
        finally:
            done.set()
            watchdog.cancel()
    return ray


@contextlib.contextmanager
def _muted_stderr() -> Iterator[int]:
    """Silence file descriptor 2 while Ray starts or connects (its C++ core logs every retry there);
    yields a duplicate of the real stderr. ``MMCURATE_DEBUG=1`` keeps Ray's output."""
    saved = os.dup(2)
    if os.environ.get("MMCURATE_DEBUG"):
        try:
            yield saved
        finally:
            os.close(saved)
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield saved
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


# ------------------------------------------------------------------------------------------ worker side

# per worker process: the function of the payload it last fetched (key: the object's id)
_WORKER_FNS: dict[str, Callable[[Any], Any]] = {}


def _run_items(payload: list[Any], threads: int | None, items: list[Any]) -> list[Any]:
    """The task body: the payload's function over ``items`` (fetched and initialised once per worker)."""
    ref = payload[0]  # wrapped in a list so Ray passes the reference, not a fresh copy per task
    key = ref.hex()
    fn = _WORKER_FNS.get(key)
    if fn is None:
        import ray

        fn, initializer, initargs = ray.get(ref)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        if initializer is not None:
            initializer(*initargs)
        _WORKER_FNS.clear()  # one stage's function at a time: drop the previous one's data
        _WORKER_FNS[key] = fn
    return [fn(item) for item in items]


# ------------------------------------------------------------------------------------------ driver side


class RayExecutor(Executor):
    """Work units as Ray tasks of ``cpus``/``gpus`` each; ``workers`` is how many run at once."""

    def __init__(
        self,
        address: str | None = None,
        *,
        cpus: float = 1.0,
        gpus: float = 0.0,
        retries: int = 3,
        threads: int | None = None,
        items_per_task: int = ITEMS_PER_TASK,
    ) -> None:
        self.address, self.cpus, self.gpus, self.retries = address, cpus, gpus, retries
        self.threads, self.items_per_task = threads, max(1, items_per_task)
        self.ray = connect(address)
        resources = self.ray.cluster_resources()
        slots = resources.get("CPU", 0) / cpus if cpus else math.inf
        if gpus:
            slots = min(slots, resources.get("GPU", 0) / gpus)
        if slots < 1:
            raise MMCurateError(
                f"the Ray cluster has {resources.get('CPU', 0):g} CPU(s) and {resources.get('GPU', 0):g} GPU(s): "
                f"not enough for one job of --cpus-per-job {cpus:g} --gpus-per-job {gpus:g}"
            )
        self.workers = int(slots) if math.isfinite(slots) else 1

    def map_units(
        self,
        fn: Callable[[T], R],
        units: Sequence[WorkUnit[T]],
        *,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> Iterator[tuple[WorkUnit[T], list[R]]]:
        if not units:
            return
        ray = self.ray
        payload = [ray.put((fn, initializer, initargs))]
        task = ray.remote(_run_items).options(
            num_cpus=self.cpus,
            num_gpus=self.gpus,
            max_retries=self.retries,
            retry_exceptions=False,
            name="mmcurate-job",
        )
        # tasks never straddle units, so a task that gives up costs its unit only
        pieces = [
            (u, list(u.items[i : i + self.items_per_task]))
            for u in units
            for i in range(0, len(u.items), self.items_per_task)
        ]
        window = max(2, self.workers * WINDOW_PER_SLOT)
        in_flight: deque[tuple[WorkUnit[T], Any]] = deque()
        failed: dict[str, str] = {}
        current: WorkUnit[T] | None = None
        results: list[R] = []
        next_piece = 0
        try:
            while next_piece < len(pieces) or in_flight:
                while next_piece < len(pieces) and len(in_flight) < window:
                    unit, items = pieces[next_piece]
                    in_flight.append((unit, task.remote(payload, self.threads, items)))
                    next_piece += 1
                unit, ref = in_flight.popleft()
                if current is not None and unit is not current:
                    if current.key not in failed:
                        yield current, results
                    results = []
                current = unit
                if unit.key in failed:
                    continue
                try:
                    results.extend(ray.get(ref))
                except ray.exceptions.RayTaskError as exc:  # the function raised: as it would locally
                    raise _original(exc) from None
                except ray.exceptions.RayError as exc:  # the worker died (after retries), an object was lost, ...
                    failed[unit.key] = one_line(exc, 160)
            if current is not None and current.key not in failed:
                yield current, results
        finally:
            for _, ref in in_flight:  # the stage stopped early: do not leave its tasks running
                ray.cancel(ref)
        if failed:
            first = next(iter(failed.items()))
            raise MMCurateError(
                f"{len(failed)} of {len(units)} work unit(s) failed on the Ray cluster after {self.retries} "
                f"retries (first: {first[0]}: {first[1]}); the others are written: rerun the same command to redo them"
            )

    def describe(self) -> str:
        where = self.address or "a local instance"
        res = f"{self.cpus:g} CPU" + (f", {self.gpus:g} GPU" if self.gpus else "")
        return f"ray ({where}): {self.workers} task(s) at once, {res} each"


def _original(exc: Any) -> BaseException:
    """The exception a task's function raised (an :class:`MMCurateError` stays a one-line error)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    return exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
