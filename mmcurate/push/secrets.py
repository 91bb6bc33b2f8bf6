"""Keep the Hub token out of everything mmcurate prints.

``huggingface_hub`` error messages quote URLs, server replies and sometimes request details;
a misbehaving server can echo the Authorization header back. Every message push shows goes
through :func:`mask_token`, and :func:`masking_hub_logs` filters the library's own log lines.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from urllib.parse import quote

MASK = "hf_***"
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",;()\[\]{}<>]+")


def mask_token(text: str, token: str | None) -> str:
    """``text`` with the token (raw or URL-encoded) and any bearer credential replaced by a mask."""
    if token:
        for variant in {token, quote(token, safe="")}:
            text = text.replace(variant, MASK)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


class _MaskFilter(logging.Filter):
    def __init__(self, token: str | None) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_token(record.getMessage(), self.token)
        record.args = None
        return True


@contextlib.contextmanager
def masking_hub_logs(token: str | None) -> Iterator[None]:
    """While active, log records reaching the hub's or the root logger's handlers have the token masked.

    Filters sit on the handlers (not the loggers) because records from child loggers such as
    ``huggingface_hub.utils._http`` skip logger filters but not handler filters.
    Call it after ``huggingface_hub`` is imported: the library adds its handler at import.
    """
    filt = _MaskFilter(token)
    handlers = [*logging.getLogger("huggingface_hub").handlers, *logging.getLogger().handlers]
    for h in handlers:
        h.addFilter(filt)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(filt)
