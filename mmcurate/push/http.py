"""The HTTP client push hands to ``huggingface_hub``: bounded waits and retried reads.

The hub client's default HTTP client has no timeout, so an endpoint that accepts the connection
and never answers (a stalled proxy, a half-dead server) hangs ``mmcurate push`` forever. While a
push runs, the hub client gets a client whose connect, read, write and pool waits are bounded by
``--timeout``, and whose idempotent requests (GET, HEAD, OPTIONS: listings, ``whoami``, repo
info) are retried ``--retries`` times with exponential backoff after a timeout or a dropped
connection. Requests that change something (commits, uploads) are not retried here: uploads
have the hub client's own backoff, and a commit is made again by rerunning push, which skips what
already landed. After the last attempt the error reaches :mod:`mmcurate.push.hub_errors`, which
turns it into one line.

A socket timeout bounds each wait, not the whole answer: a server that sends one byte a second
never lets a wait reach it. So the waits of one request's response share one budget of
``--timeout`` seconds (headers and body together, counted from when the request was sent): once it
is spent the request fails, and a server that was answering, only too slowly, is not asked again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

try:  # huggingface_hub 2.x ships its HTTP client as httpx2; 1.x used httpx
    import httpcore2
    import httpx2
except ImportError:  # pragma: no cover - depends on the installed hub version
    import httpcore as httpcore2  # type: ignore[no-redef]
    import httpx as httpx2  # type: ignore[no-redef]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
#: the longest pause between two attempts (seconds)
MAX_BACKOFF = 8.0


def backoff(attempt: int, timeout: float) -> float:
    """Pause before retry ``attempt`` (1, 2, ...): doubling from half the timeout (at most 1 s)."""
    return min(MAX_BACKOFF, min(1.0, timeout / 2) * 2 ** (attempt - 1))


class SlowResponse(httpx2.ReadTimeout):
    """The server answered, but its whole answer took longer than ``--timeout``."""


class _Budget:
    """Seconds one response may spend in socket reads, and how many bytes it got."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.spent, self.received = seconds, 0.0, 0

    def left(self) -> float:
        return self.seconds - self.spent


_current = threading.local()  # the budget of the response this thread is reading, if any


def _budget() -> _Budget | None:
    return getattr(_current, "budget", None)


class _BudgetStream:
    """A network stream whose reads draw on the budget of the response being read."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        budget = _budget()
        if budget is None:
            return self.inner.read(max_bytes, timeout)
        left = budget.left()
        if left <= 0:
            raise httpcore2.ReadTimeout("the response took longer than --timeout")
        started = time.monotonic()
        try:
            data = self.inner.read(max_bytes, left if timeout is None else min(timeout, left))
        finally:
            budget.spent += time.monotonic() - started
        budget.received += len(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, timeout)

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> Any:
        return _BudgetStream(self.inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _BudgetBackend:
    """The network backend of the bounded client: its streams draw on per-response budgets."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def connect_tcp(self, *args: Any, **kwargs: Any) -> Any:
        return _BudgetStream(self.inner.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        return _BudgetStream(self.inner.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _BudgetedBody(httpx2.SyncByteStream):
    """A response body read under its request's budget."""

    def __init__(self, inner: Any, budget: _Budget) -> None:
        self.inner, self.budget = inner, budget

    def __iter__(self) -> Iterator[bytes]:
        iterator = iter(self.inner)
        while True:
            _current.budget = self.budget
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            finally:
                _current.budget = None
            yield chunk

    def close(self) -> None:
        self.inner.close()


def budgeted_transport() -> Any:
    """``httpx2.HTTPTransport()`` whose connections read under per-response budgets (:class:`RetryingTransport`
    sets them). Where the installed httpx2 keeps its pool elsewhere, the plain transport: each wait is still
    bounded, only not the whole answer."""
    transport = httpx2.HTTPTransport()
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):
        pool._network_backend = _BudgetBackend(pool._network_backend)
    return transport


class RetryingTransport(httpx2.BaseTransport):
    """An HTTP transport that bounds each response by ``timeout`` and retries idempotent requests after
    timeouts and network errors (not after a server that answered too slowly)."""

    def __init__(self, inner: Any, retries: int, timeout: float) -> None:
        self.inner, self.retries, self.timeout = inner, retries, timeout

    def handle_request(self, request: Any) -> Any:
        waits = request.extensions.get("timeout")
        if isinstance(waits, dict):  # --timeout bounds every wait, also those a hub call sets itself
            request.extensions["timeout"] = {
                k: self.timeout if v is None else min(v, self.timeout) for k, v in waits.items()
            }
        attempt = 0
        while True:
            budget = _Budget(self.timeout)
            _current.budget = budget
            try:
                response = self.inner.handle_request(request)
                response.stream = _BudgetedBody(response.stream, budget)
                return response
            except (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError) as exc:
                if isinstance(exc, httpx2.TimeoutException) and budget.received:
                    raise SlowResponse(
                        f"{request.method} {request.url.path}: {budget.received} bytes of its answer in "
                        f"{self.timeout:g} s, --timeout",
                        request=request,
                    ) from None
                attempt += 1
                if request.method.upper() not in IDEMPOTENT or attempt > self.retries:
                    raise
                time.sleep(backoff(attempt, self.timeout))
            finally:
                _current.budget = None

    def close(self) -> None:
        self.inner.close()


def make_client(timeout: float, retries: int) -> Any:
    """An ``httpx2.Client`` like the hub's default one, with bounded waits and retried reads."""
    from huggingface_hub.utils._http import hf_request_event_hook

    return httpx2.Client(
        transport=RetryingTransport(budgeted_transport(), retries, timeout),
        event_hooks={"request": [hf_request_event_hook]},
        follow_redirects=True,
        timeout=httpx2.Timeout(timeout),
    )


@contextlib.contextmanager
def bounded_hub_client(timeout: float, retries: int) -> Iterator[None]:
    """While active, ``huggingface_hub`` talks through :func:`make_client`; the client factory it
    had before is restored afterwards (a program embedding mmcurate keeps its own)."""
    from huggingface_hub.utils import _http

    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", _http.default_client_factory)
    _http.set_client_factory(lambda: make_client(timeout, retries))
    try:
        yield
    finally:
        _http.set_client_factory(previous)
