"""``mmcurate browse --serve``: the built site over HTTP on 127.0.0.1 only.

The site works from disk without a server; serving helps where a browser is not on the machine
that holds the files (with an SSH tunnel) or where a browser refuses ``file://`` pages. It binds
the loopback address only, so the data is never exposed to the network.
"""

from __future__ import annotations

import functools
import http.server
from pathlib import Path

HOST = "127.0.0.1"
_TYPES = {".flac": "audio/flac", ".js": "text/javascript", ".jpg": "image/jpeg", ".json": "application/json"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **_TYPES}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # one line per request would bury the URL the user needs


def make_server(site: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """A server for ``site`` on 127.0.0.1:``port`` (0: a free port); the caller runs it."""
    handler = functools.partial(_Handler, directory=str(site))
    return http.server.ThreadingHTTPServer((HOST, port), handler)
