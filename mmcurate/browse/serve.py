"""``mmcurate browse --serve``: the built site over HTTP on 127.0.0.1 only.

The site works from disk without a server; serving helps where a browser is not on the machine
that holds the files (with an SSH tunnel) or where a browser refuses ``file://`` pages. It binds
the loopback address only, so the data is never exposed to the network, and it serves the site's
own files and nothing else:

* only requests whose ``Host`` is a loopback name (``127.0.0.1``, ``localhost``, ``[::1]``, with
  any port) are answered: a web page elsewhere that rebinds its own domain name to 127.0.0.1
  (DNS rebinding) sends its own name as ``Host`` and gets a 421, never the data;
* a path that leads outside the site once links are resolved (a symbolic link inside the site to
  a file elsewhere) is a 404, as is a folder (no listings);
* a path that is not a path (a NUL byte, bad escapes, a dot segment) is a 400; every error is a
  one-line plain-text answer, and nothing is printed on the server's console.
"""

from __future__ import annotations

import http.server
import os
import urllib.parse
from pathlib import Path

HOST = "127.0.0.1"
_TYPES = {".flac": "audio/flac", ".js": "text/javascript", ".jpg": "image/jpeg", ".json": "application/json"}
#: the names a loopback server is reached by (a Host header with anything else is refused)
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})


def host_is_loopback(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine's loopback address (any port)."""
    if not host:
        return False
    host = host.strip().lower()
    if host.startswith("["):  # [::1] or [::1]:8000
        name, _, rest = host.partition("]")
        name, port = name + "]", rest[1:] if rest.startswith(":") else rest
    else:
        name, _, port = host.partition(":")
    return name in LOOPBACK_NAMES and (port == "" or port.isdigit())


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the files of one site folder, read-only (GET and HEAD), under the rules of the module doc."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **_TYPES}
    error_message_format = "%(code)d %(message)s\n"
    error_content_type = "text/plain; charset=utf-8"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # one line per request would bury the URL the user needs

    def send_head(self):  # noqa: ANN201 - the base class's signature
        if not host_is_loopback(self.headers.get("Host")):
            self.send_error(421, "this server answers only to 127.0.0.1 and localhost")
            return None
        target = self._site_file()
        if target is None:
            return None
        self.path = "/" + urllib.parse.quote(target.relative_to(self._root()).as_posix())
        return super().send_head()

    def _root(self) -> Path:
        return Path(os.path.realpath(self.directory))

    def _site_file(self) -> Path | None:
        """The regular file inside the site that the request names (links resolved), or None after an error."""
        raw = self.path.split("?", 1)[0].split("#", 1)[0]
        try:
            rel = urllib.parse.unquote(raw, errors="strict")
        except UnicodeDecodeError:
            self.send_error(400, "bad path")
            return None
        parts = [p for p in rel.split("/") if p]
        if "\x00" in rel or "\\" in rel or any(p in (".", "..") for p in parts):
            self.send_error(400, "bad path")
            return None
        root = self._root()
        candidate = root.joinpath(*parts) if parts else root
        if candidate.is_dir() and not candidate.is_symlink():
            candidate = candidate / "index.html"  # a folder is its index page, never a listing
        try:
            real = Path(os.path.realpath(candidate))
        except (OSError, ValueError):
            self.send_error(400, "bad path")
            return None
        if (real != root and root not in real.parents) or not real.is_file():
            self.send_error(404, "not found")
            return None
        return real

    def list_directory(self, path: str | os.PathLike[str]):  # noqa: ANN201 - the base class's signature
        self.send_error(404, "not found")
        return None


class SiteServer(http.server.ThreadingHTTPServer):
    """The loopback server; a request that breaks a handler is dropped without a traceback on the console."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def make_server(site: Path, port: int = 0) -> SiteServer:
    """A server for ``site`` on 127.0.0.1:``port`` (0: a free port); the caller runs it."""
    root = str(Path(site).resolve())

    def handler(*args: object, **kwargs: object) -> SiteHandler:
        return SiteHandler(*args, directory=root, **kwargs)  # type: ignore[arg-type]

    return SiteServer((HOST, port), handler)
