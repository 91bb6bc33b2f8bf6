"""Turn what ``huggingface_hub`` and its HTTP client raise into one-line, token-free messages.

Each message says what went wrong with which endpoint or repository and what to change; the
client's own messages are multi-line and may quote URLs and server replies, so they are reduced
to one line and passed through :func:`mask_token`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from mmcurate.common.errors import MMCurateError, one_line
from mmcurate.push.http import SlowResponse
from mmcurate.push.secrets import mask_token

try:  # huggingface_hub 2.x ships its HTTP client as httpx2; 1.x used httpx
    import httpx2
except ImportError:  # pragma: no cover - depends on the installed hub version
    import httpx as httpx2  # type: ignore[no-redef]

RESUME_HINT = "rerun the same `mmcurate push` to resume; files already committed are not uploaded again"


def describe(exc: BaseException, *, endpoint: str, repo_id: str, revision: str) -> str:
    """The one-line message for an exception raised while talking to the Hub (token not yet masked)."""
    if isinstance(exc, LocalTokenNotFoundError):
        return "no Hugging Face token found; set HF_TOKEN, run `hf auth login`, or pass --token"
    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it to push"
    if isinstance(exc, RevisionNotFoundError):
        return (
            f"revision '{revision}' not found in dataset repo {repo_id} at {endpoint}; create the branch first "
            "(`hf repo branch create`) or push to main by leaving out --revision"
        )
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        url = str(exc.response.request.url) if exc.response.request is not None else ""
        server_msg = getattr(exc, "server_message", None) or exc.response.headers.get("X-Error-Message") or ""
        if (status == 401 and not isinstance(exc, RepositoryNotFoundError)) or "Invalid credentials" in server_msg:
            return (
                f"the Hub at {endpoint} rejected the token (401 Unauthorized); "
                "set a valid HF_TOKEN or run `hf auth login`"
            )
        if isinstance(exc, RepositoryNotFoundError):
            return (
                f"dataset repo {repo_id} not found at {endpoint}, or this token cannot see it; "
                "check --repo-id and the token's access"
            )
        if status == 403:
            return (
                f"the token may not write to {repo_id} at {endpoint} (403 Forbidden: {one_line(server_msg, 120)}); "
                "use a token with write access to that namespace"
            )
        if status == 404 and "xet-write-token" in url:
            return (
                f"the Hub at {endpoint} does not offer Xet storage; rerun with --no-xet (or set HF_HUB_DISABLE_XET=1)"
            )
        if status == 412:
            return f"someone else committed to {repo_id} during the push (412); {RESUME_HINT}"
        where = url.split("?", 1)[0]
        detail = one_line(server_msg, 160) or exc.response.reason_phrase
        return f"the Hub at {endpoint} answered {status} ({detail}) for {where}; {RESUME_HINT}"
    if isinstance(exc, httpx2.ConnectError):
        reason = _connect_reason(str(exc))
        return f"cannot reach the Hub at {endpoint} ({reason}); check HF_ENDPOINT and your network connection"
    if isinstance(exc, SlowResponse):
        return (
            f"the Hub at {endpoint} answered too slowly ({one_line(exc, 160)}); check the endpoint and your "
            f"network (or raise --timeout for a slow link), then {RESUME_HINT}"
        )
    if isinstance(exc, httpx2.TimeoutException):
        return (
            f"the Hub at {endpoint} did not answer in time ({type(exc).__name__}, after retries); check the endpoint "
            f"and your network (or raise --timeout for a slow link), then {RESUME_HINT}"
        )
    if isinstance(exc, httpx2.HTTPError):
        return (
            f"connection to the Hub at {endpoint} failed ({type(exc).__name__}: {one_line(exc, 120)}); {RESUME_HINT}"
        )
    if "xet-write-token" in str(exc):
        return (
            f"the Hub at {endpoint} does not offer Xet storage ({one_line(exc, 100)}); "
            "rerun with --no-xet (or set HF_HUB_DISABLE_XET=1)"
        )
    if isinstance(exc, ValueError) and "Invalid metadata in README.md" in str(exc):
        return (
            f"the Hub at {endpoint} rejected the dataset card's YAML: "
            f"{one_line(str(exc).split(chr(10), 1)[-1], 200)}; fix README.md or rerun `mmcurate balance`"
        )
    return f"push to {repo_id} at {endpoint} failed ({type(exc).__name__}: {one_line(exc, 200)}); {RESUME_HINT}"


def _connect_reason(text: str) -> str:
    lowered = text.lower()
    if any(
        k in lowered for k in ("name or service not known", "name resolution", "nodename nor servname", "getaddrinfo")
    ):
        return "host name not found"
    if "refused" in lowered:
        return "connection refused"
    return one_line(text, 120)


@contextlib.contextmanager
def hub_errors(
    *, endpoint: str, repo_id: str, revision: str, token: str | None, progress: Callable[[], str] | None = None
) -> Iterator[None]:
    """Re-raise any failure inside as :class:`MMCurateError` with a masked one-line message.

    ``progress`` returns a short note on what was already done (e.g. commits made), put in front.
    """
    try:
        yield
    except MMCurateError as exc:
        raise MMCurateError(mask_token(_prefixed(str(exc), progress), token)) from None
    except Exception as exc:  # the network and the client raise many types; all become one line
        message = describe(exc, endpoint=endpoint, repo_id=repo_id, revision=revision)
        raise MMCurateError(mask_token(_prefixed(message, progress), token)) from None


def _prefixed(message: str, progress: Callable[[], str] | None) -> str:
    note = progress() if progress is not None else ""
    return f"{note}{message}" if note else message
