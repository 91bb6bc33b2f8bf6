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
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

try:  # huggingface_hub 2.x ships its HTTP client as httpx2; 1.x used httpx
    import httpx2
except ImportError:  # pragma: no cover - depends on the installed hub version
    import httpx as httpx2  # type: ignore[no-redef]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
#: the longest pause between two attempts (seconds)
MAX_BACKOFF = 8.0


def backoff(attempt: int, timeout: float) -> float:
    """Pause before retry ``attempt`` (1, 2, ...): doubling from half the timeout (at most 1 s)."""
    return min(MAX_BACKOFF, min(1.0, timeout / 2) * 2 ** (attempt - 1))


class RetryingTransport(httpx2.BaseTransport):
    """An HTTP transport that retries idempotent requests after timeouts and network errors."""

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
            try:
                return self.inner.handle_request(request)
            except (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError):
                attempt += 1
                if request.method.upper() not in IDEMPOTENT or attempt > self.retries:
                    raise
                time.sleep(backoff(attempt, self.timeout))

    def close(self) -> None:
        self.inner.close()


def make_client(timeout: float, retries: int) -> Any:
    """An ``httpx2.Client`` like the hub's default one, with bounded waits and retried reads."""
    from huggingface_hub.utils._http import hf_request_event_hook

    return httpx2.Client(
        transport=RetryingTransport(httpx2.HTTPTransport(), retries, timeout),
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
