"""A small Hugging Face Hub-compatible HTTP server for tests, on 127.0.0.1 with an ephemeral port.

It speaks the subset of the Hub protocol that ``huggingface_hub`` (2.x, legacy LFS transfer,
``HF_HUB_DISABLE_XET=1``) and ``datasets.load_dataset`` use, and keeps repositories as git-like
snapshots: every commit records the full file list, regular files are stored by git blob id and
LFS files by sha256 under a temporary directory. It is real HTTP end to end, so pushes and loads
run exactly the client code users run.

Endpoints::

    GET  /api/whoami-v2
    POST /api/validate-yaml
    POST /api/repos/create
    GET  /api/{type}s/{ns}/{name}[/revision/{rev}]       repo info (sha, siblings, private)
    GET  /api/{type}s/{ns}/{name}/refs                   branches
    POST /api/{type}s/{ns}/{name}/branch/{branch}        create a branch
    GET  /api/{type}s/{ns}/{name}/commits/{rev}          commit history
    POST /api/{type}s/{ns}/{name}/preupload/{rev}        regular vs lfs, remote oid
    POST /api/{type}s/{ns}/{name}/commit/{rev}           NDJSON: header, file, lfsFile, deletedFile, deletedFolder
    GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]    ?recursive=&expand=&cursor= (Link-header pages)
    POST /api/{type}s/{ns}/{name}/paths-info/{rev}       form: paths=..., expand=
    POST /{prefix}{ns}/{name}.git/info/lfs/objects/batch LFS batch (basic transfer)
    PUT  /lfs-upload/{oid}?sig=...                       upload target (unauthenticated, signed like S3)
    POST /lfs-verify/{oid}                               verify
    GET|HEAD /{prefix}{ns}/{name}/resolve/{rev}/{path}   with Range, ETag, X-Repo-Commit, X-Linked-*

Anything else answers 404 (a Xet token request included, as a non-Xet Hub does).

Tests drive failures through :meth:`HubState.fail_next` (e.g. refuse the 2nd commit) and read
:attr:`HubState.log` to see exactly what a client sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import yaml

VALID_TOKEN = "hf_mmcurateTestTokenDoNotLeak0123456789"
USER = "testuser"
ORGS = ("testorg",)
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
#: Paths stored with LFS, like the Hub's default .gitattributes.
LFS_SUFFIXES = (
    ".parquet",
    ".arrow",
    ".bin",
    ".pt",
    ".safetensors",
    ".zip",
    ".gz",
    ".tar",
    ".png",
    ".jpg",
    ".flac",
    ".wav",
    ".mp4",
)
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
KNOWN_LICENSES = {
    "apache-2.0",
    "mit",
    "bsd-3-clause",
    "cc0-1.0",
    "cc-by-2.0",
    "cc-by-3.0",
    "cc-by-4.0",
    "cc-by-sa-3.0",
    "cc-by-sa-4.0",
    "cc-by-nc-3.0",
    "cc-by-nc-4.0",
    "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0",
    "cc-by-nd-4.0",
    "cc-by-nc-nd-4.0",
    "odc-by",
    "odbl",
    "pddl",
    "gpl-3.0",
    "lgpl-3.0",
    "unknown",
    "other",
}
_EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob, what the Hub reports as a regular file's oid."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    git_oid: str  # blob id (of the pointer file for LFS files)
    sha256: str | None = None  # set for LFS files
    pointer_size: int = 0

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    date: dt.datetime
    files: dict[str, FileEntry]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: dt.datetime
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    #: LFS objects uploaded to this repo (committed or not): LFS storage is per repository,
    #: so an object another repo holds is uploaded again here.
    lfs_objects: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # decoded path, without query
    query: str
    status: int
    body_bytes: int
    detail: dict[str, Any]  # what the request did (commit ops, uploaded oid...)


@dataclass
class _FailRule:
    kind: str
    remaining_before: int
    status: int
    message: str


class HubState:
    """Repositories, stored objects, the request log and injected failures; shared by handler threads."""

    def __init__(self, root: Path, page_size: int = 1000) -> None:
        self.root = Path(root)
        self.lfs_dir = self.root / "lfs"
        self.blob_dir = self.root / "blobs"
        self.lfs_dir.mkdir(parents=True, exist_ok=True)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.log: list[LoggedRequest] = []
        self.page_size = page_size
        #: When true, error replies quote the request's Authorization header back, as a
        #: misbehaving proxy might: tests use it to check that clients mask the token.
        self.echo_auth_in_errors = False
        self.lock = threading.RLock()
        self._fail_rules: list[_FailRule] = []
        self._clock = 0
        self.secret = hashlib.sha256(str(self.root).encode()).hexdigest()

    # -- failure injection and log helpers (used by tests) --------------------------------------
    def fail_next(self, kind: str, nth: int = 1, status: int = 500, message: str = "injected failure") -> None:
        """Make the ``nth`` next request of ``kind`` fail once with ``status``.

        Kinds: ``commit``, ``lfs_upload``, ``lfs_batch``, ``preupload``, ``create``, ``whoami``, ``resolve``, ``tree``.
        """
        with self.lock:
            self._fail_rules.append(_FailRule(kind, nth - 1, status, message))

    def _should_fail(self, kind: str) -> _FailRule | None:
        with self.lock:
            for rule in self._fail_rules:
                if rule.kind != kind:
                    continue
                if rule.remaining_before == 0:
                    self._fail_rules.remove(rule)
                    return rule
                rule.remaining_before -= 1
                return None
        return None

    def requests(self, method: str | None = None, pattern: str | None = None) -> list[LoggedRequest]:
        """Logged requests, filtered by method and by a regex on the path."""
        with self.lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and (pattern is None or re.search(pattern, r.path))
            ]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()

    def uploaded_oids(self) -> list[str]:
        """sha256 of every LFS object uploaded with a successful PUT, in order."""
        return [r.detail["oid"] for r in self.requests("PUT", r"^/lfs-upload/") if r.status == 200]

    def committed_paths(self) -> list[list[str]]:
        """Per successful commit, the paths it added or deleted."""
        return [r.detail["paths"] for r in self.requests("POST", r"/commit/") if r.status == 200]

    # -- repository model -----------------------------------------------------------------------
    def _now(self) -> dt.datetime:
        self._clock += 1
        return _EPOCH + dt.timedelta(seconds=self._clock)

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        with self.lock:
            repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created=self._now())
            self.repos[(repo_type, repo_id)] = repo
            self._store_blob(GITATTRIBUTES)
            entry = FileEntry(".gitattributes", len(GITATTRIBUTES), git_blob_oid(GITATTRIBUTES))
            self._add_commit(repo, "main", "initial commit", {".gitattributes": entry})
            return repo

    def _add_commit(self, repo: Repo, branch: str, title: str, files: dict[str, FileEntry]) -> Commit:
        parent = repo.branches.get(branch)
        date = self._now()
        listing = json.dumps(sorted((p, e.git_oid) for p, e in files.items()))
        oid = hashlib.sha1(f"{parent}|{title}|{date.isoformat()}|{listing}".encode()).hexdigest()
        commit = Commit(oid=oid, parent=parent, title=title, date=date, files=dict(files))
        repo.commits[oid] = commit
        repo.branches[branch] = oid
        return commit

    def _store_blob(self, data: bytes) -> str:
        oid = git_blob_oid(data)
        path = self.blob_dir / oid
        if not path.exists():
            path.write_bytes(data)
        return oid

    def lfs_path(self, sha256: str) -> Path:
        return self.lfs_dir / sha256

    def has_lfs(self, repo: Repo, sha256: str, size: int | None = None) -> bool:
        p = self.lfs_path(sha256)
        return sha256 in repo.lfs_objects and p.is_file() and (size is None or p.stat().st_size == size)

    def read_file(self, entry: FileEntry) -> bytes:
        if entry.is_lfs:
            return self.lfs_path(entry.sha256).read_bytes()  # type: ignore[arg-type]
        return (self.blob_dir / entry.git_oid).read_bytes()

    def file_bytes(self, repo_type: str, repo_id: str, path: str, revision: str = "main") -> bytes:
        """Content of a file at a revision (for tests)."""
        repo = self.repos[(repo_type, repo_id)]
        commit = repo.commits[repo.branches.get(revision, revision)]
        return self.read_file(commit.files[path])

    def head_files(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, FileEntry]:
        repo = self.repos[(repo_type, repo_id)]
        return dict(repo.commits[repo.branches[revision]].files)


class HubServer:
    """Runs :class:`HubState` behind a ThreadingHTTPServer; use as a context manager."""

    def __init__(self, root: Path, page_size: int = 1000) -> None:
        self.state = HubState(root, page_size=page_size)
        handler = type("BoundHubHandler", (HubHandler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        handler.base_url = self.url  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hub-server", daemon=True)

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _HTTPError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, extra: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


_REPO = r"/api/(?P<type>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("GET", re.compile(_REPO + r"(?:/revision/(?P<rev>[^/]+))?$"), "repo_info"),
    ("GET", re.compile(_REPO + r"/refs$"), "refs"),
    ("POST", re.compile(_REPO + r"/branch/(?P<branch>[^/]+)$"), "create_branch"),
    ("GET", re.compile(_REPO + r"/commits/(?P<rev>[^/]+)$"), "commits"),
    ("POST", re.compile(_REPO + r"/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(_REPO + r"/commit/(?P<rev>[^/]+)$"), "commit"),
    ("GET", re.compile(_REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("POST", re.compile(_REPO + r"/paths-info/(?P<rev>[^/]+)$"), "paths_info"),
    (
        "POST",
        re.compile(r"^/(?P<prefix>datasets/|spaces/)?(?P<ns>[^/]+)/(?P<name>[^/]+)\.git/info/lfs/objects/batch$"),
        "lfs_batch",
    ),
    ("PUT", re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$"), "lfs_upload"),
    ("POST", re.compile(r"^/lfs-verify/(?P<oid>[0-9a-f]{64})$"), "lfs_verify"),
    (
        "GET",
        re.compile(
            r"^/(?P<prefix>datasets/|spaces/)?(?P<ns>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"
        ),
        "resolve",
    ),
    (
        "HEAD",
        re.compile(
            r"^/(?P<prefix>datasets/|spaces/)?(?P<ns>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"
        ),
        "resolve",
    ),
]


class HubHandler(BaseHTTPRequestHandler):
    """One request: authenticate, route, answer JSON (or file bytes), log."""

    protocol_version = "HTTP/1.1"
    state: HubState
    base_url: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the state keeps a log
        return

    # -- plumbing -------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        raw_path, self.query = split.path, split.query
        self.params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self.body = self._read_body()
        self.detail: dict[str, Any] = {}
        status = 500
        try:
            for route_method, pattern, name in _ROUTES:
                if route_method != method:
                    continue
                m = pattern.match(raw_path)
                if m:
                    args = {k: (unquote(v) if v is not None else None) for k, v in m.groupdict().items()}
                    status = getattr(self, "route_" + name)(**args)
                    break
            else:
                raise _HTTPError(404, f"Not found: {method} {unquote(raw_path)}")
        except _HTTPError as err:
            status = err.status
            headers = dict(err.extra)
            if err.code:
                headers["X-Error-Code"] = err.code
            message = err.message
            if self.state.echo_auth_in_errors:
                message += f" (request had Authorization: {self.headers.get('Authorization')})"
            headers["X-Error-Message"] = message
            self._send_json(err.status, {"error": message}, headers)
        except Exception as exc:  # a server bug: answer 500 so the client shows it
            status = 500
            self._send_json(500, {"error": f"server error: {type(exc).__name__}: {exc}"})
        with self.state.lock:
            self.state.log.append(
                LoggedRequest(method, unquote(raw_path), self.query, status, len(self.body), self.detail)
            )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = self.rfile.readline().strip()
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str], content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> int:
        self._send(status, json.dumps(obj).encode(), headers or {}, "application/json")
        return status

    # -- auth and lookup --------------------------------------------------------------------------
    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer ") :]
        return None

    def _auth(self, write: bool) -> bool:
        """True when a valid token was sent; 401 for a bad token, or for no token on a write."""
        token = self._token()
        if token is not None and token != VALID_TOKEN:
            raise _HTTPError(401, "Invalid credentials in Authorization header")
        if token is None and write:
            raise _HTTPError(401, "Unauthorized: a token with write access is required")
        return token is not None

    def _repo(self, type: str, ns: str, name: str, write: bool = False) -> Repo:
        authed = self._auth(write)
        repo = self.state.repos.get((REPO_TYPES[type], f"{ns}/{name}"))
        if repo is None or (repo.private and not authed):
            raise _HTTPError(404 if authed else 401, "Repository not found", "RepoNotFound")
        if write and ns != USER and ns not in ORGS:
            raise _HTTPError(403, f"You don't have the rights to write to {ns}/{name}")
        return repo

    def _commit(self, repo: Repo, rev: str | None) -> Commit:
        rev = rev or "main"
        oid = repo.branches.get(rev, rev)
        commit = repo.commits.get(oid)
        if commit is None:
            raise _HTTPError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _json_body(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as exc:
            raise _HTTPError(400, f"invalid JSON body: {exc}") from None

    # -- routes -----------------------------------------------------------------------------------
    def route_whoami(self) -> int:
        if self._token() is None:
            raise _HTTPError(401, "Unauthorized")
        self._auth(write=False)
        if (rule := self.state._should_fail("whoami")) is not None:
            raise _HTTPError(rule.status, rule.message)
        return self._send_json(
            200,
            {
                "type": "user",
                "id": "0" * 24,
                "name": USER,
                "fullname": "Test User",
                "orgs": [{"type": "org", "name": o, "roleInOrg": "write"} for o in ORGS],
                "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}},
            },
        )

    def route_validate_yaml(self) -> int:
        self._auth(write=False)
        content = self._json_body().get("content", "")
        errors = _validate_card_yaml(content)
        if errors:
            return self._send_json(400, {"errors": [{"message": e} for e in errors], "warnings": []})
        return self._send_json(200, {"errors": [], "warnings": []})

    def route_create_repo(self) -> int:
        self._auth(write=True)
        if (rule := self.state._should_fail("create")) is not None:
            raise _HTTPError(rule.status, rule.message)
        payload = self._json_body()
        name, org = payload.get("name"), payload.get("organization") or USER
        repo_type = payload.get("type") or "model"
        if not name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise _HTTPError(400, f"invalid repo name: {name!r}")
        if org != USER and org not in ORGS:
            raise _HTTPError(403, f'You don\'t have the rights to create a {repo_type} under the namespace "{org}"')
        repo_id = f"{org}/{name}"
        url = f"{self.base_url}/{URL_PREFIX[repo_type]}{repo_id}"
        with self.state.lock:
            if (repo_type, repo_id) in self.state.repos:
                self.detail = {"repo_id": repo_id, "conflict": True}
                return self._send_json(409, {"error": f"You already created this {repo_type} repo", "url": url})
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            self.state.create_repo(repo_type, repo_id, private)
        self.detail = {"repo_id": repo_id, "private": private}
        return self._send_json(
            200, {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]}
        )

    def route_repo_info(self, type: str, ns: str, name: str, rev: str | None = None) -> int:
        repo = self._repo(type, ns, name)
        commit = self._commit(repo, rev)
        return self._send_json(
            200,
            {
                "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
                "id": repo.repo_id,
                "author": ns,
                "sha": commit.oid,
                "createdAt": _iso(repo.created),
                "lastModified": _iso(commit.date),
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            },
        )

    def route_refs(self, type: str, ns: str, name: str) -> int:
        repo = self._repo(type, ns, name)
        branches = [
            {"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid} for b, oid in sorted(repo.branches.items())
        ]
        return self._send_json(200, {"branches": branches, "converts": [], "tags": []})

    def route_create_branch(self, type: str, ns: str, name: str, branch: str) -> int:
        repo = self._repo(type, ns, name, write=True)
        payload = self._json_body() if self.body else {}
        with self.state.lock:
            if branch in repo.branches:
                raise _HTTPError(409, f"Reference already exists: {branch}")
            start = self._commit(repo, payload.get("startingPoint"))
            repo.branches[branch] = start.oid
        return self._send_json(200, {})

    def route_commits(self, type: str, ns: str, name: str, rev: str) -> int:
        repo = self._repo(type, ns, name)
        commit: Commit | None = self._commit(repo, rev)
        out = []
        while commit is not None:
            out.append(
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": "",
                    "authors": [{"user": USER}],
                    "date": _iso(commit.date),
                }
            )
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return self._send_json(200, out)

    def route_preupload(self, type: str, ns: str, name: str, rev: str) -> int:
        repo = self._repo(type, ns, name, write=True)
        if (rule := self.state._should_fail("preupload")) is not None:
            raise _HTTPError(rule.status, rule.message)
        commit = self._commit(repo, rev)
        files_out = []
        for f in self._json_body().get("files", []):
            sample = base64.b64decode(f.get("sample", ""))
            lfs = f["path"].endswith(LFS_SUFFIXES) or f.get("size", 0) >= 10 * 1024 * 1024 or b"\0" in sample
            existing = commit.files.get(f["path"])
            remote_oid = None if existing is None else (existing.sha256 if existing.is_lfs else existing.git_oid)
            files_out.append(
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": remote_oid,
                }
            )
        return self._send_json(200, {"files": files_out, "commitOid": commit.oid})

    def route_lfs_batch(self, ns: str, name: str, prefix: str | None = None) -> int:
        type = (prefix or "models/").rstrip("/")
        repo = self._repo(type if type in REPO_TYPES else "models", ns, name, write=True)
        if (rule := self.state._should_fail("lfs_batch")) is not None:
            raise _HTTPError(rule.status, rule.message)
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise _HTTPError(400, "only the upload operation is supported")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not self.state.has_lfs(repo, oid, size):
                key = f"{repo.repo_type}:{repo.repo_id}"
                query = urlencode({"size": size, "repo": key, "sig": _sign(self.state.secret, oid, size, key)})
                entry["actions"] = {
                    "upload": {"href": f"{self.base_url}/lfs-upload/{oid}?{query}", "header": {}},
                    "verify": {"href": f"{self.base_url}/lfs-verify/{oid}?{urlencode({'repo': key})}", "header": {}},
                }
            objects.append(entry)
        self.detail = {"oids": [o["oid"] for o in objects], "to_upload": [o["oid"] for o in objects if "actions" in o]}
        return self._send_json(
            200,
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            {"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _repo_from_key(self, key: str) -> Repo:
        repo_type, _, repo_id = key.partition(":")
        repo = self.state.repos.get((repo_type, repo_id))
        if repo is None:
            raise _HTTPError(404, "Repository not found", "RepoNotFound")
        return repo

    def route_lfs_upload(self, oid: str) -> int:
        size = int(self.params.get("size", -1))
        key = self.params.get("repo", "")
        if not hmac.compare_digest(self.params.get("sig", ""), _sign(self.state.secret, oid, size, key)):
            raise _HTTPError(403, "bad upload signature")
        repo = self._repo_from_key(key)
        self.detail = {"oid": oid}
        if (rule := self.state._should_fail("lfs_upload")) is not None:
            raise _HTTPError(rule.status, rule.message)
        if len(self.body) != size or hashlib.sha256(self.body).hexdigest() != oid:
            raise _HTTPError(400, "uploaded content does not match its oid and size")
        path = self.state.lfs_path(oid)
        tmp = path.with_name(path.name + f".{threading.get_ident()}.part")
        tmp.write_bytes(self.body)
        tmp.replace(path)
        with self.state.lock:
            repo.lfs_objects.add(oid)
        self._send(200, b"", {}, "text/plain")
        return 200

    def route_lfs_verify(self, oid: str) -> int:
        self._auth(write=True)
        payload = self._json_body()
        if not self.state.has_lfs(self._repo_from_key(self.params.get("repo", "")), oid, int(payload.get("size", -1))):
            raise _HTTPError(404, f"object {oid} not found")
        return self._send_json(200, {"oid": oid})

    def route_commit(self, type: str, ns: str, name: str, rev: str) -> int:
        repo = self._repo(type, ns, name, write=True)
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _HTTPError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        paths = [ln["value"]["path"] for ln in lines[1:]]
        self.detail = {"paths": paths, "ops": [ln["key"] for ln in lines[1:]], "title": header.get("summary")}
        if (rule := self.state._should_fail("commit")) is not None:
            raise _HTTPError(rule.status, rule.message)
        with self.state.lock:
            base = self._commit(repo, rev)
            if rev not in repo.branches:
                raise _HTTPError(400, f"can only commit to a branch, not {rev}")
            if header.get("parentCommit") and header["parentCommit"] != base.oid:
                raise _HTTPError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(base.files)
            for ln in lines[1:]:
                key, value = ln["key"], ln["value"]
                path = value["path"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    files[path] = FileEntry(path, len(data), self.state._store_blob(data))
                elif key == "lfsFile":
                    oid, size = value["oid"], int(value["size"])
                    if not self.state.has_lfs(repo, oid, size):
                        raise _HTTPError(422, f"LFS object {oid} for {path} was never uploaded")
                    pointer = lfs_pointer(oid, size)
                    files[path] = FileEntry(path, size, git_blob_oid(pointer), oid, len(pointer))
                elif key == "deletedFile":
                    if path not in files:
                        raise _HTTPError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    for p in [p for p in files if p.startswith(prefix)]:
                        del files[p]
                else:
                    raise _HTTPError(400, f"unsupported commit operation {key}")
            commit = self.state._add_commit(repo, rev, header.get("summary") or "commit", files)
        url = f"{self.base_url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{commit.oid}"
        return self._send_json(
            200, {"commitUrl": url, "commitOid": commit.oid, "pullRequestUrl": None, "success": True}
        )

    def route_tree(self, type: str, ns: str, name: str, rev: str, path: str | None = None) -> int:
        repo = self._repo(type, ns, name)
        if (rule := self.state._should_fail("tree")) is not None:
            raise _HTTPError(rule.status, rule.message)
        commit = self._commit(repo, rev)
        path = (path or "").strip("/")
        recursive = self.params.get("recursive", "false").lower() in ("1", "true")
        expand = self.params.get("expand", "false").lower() in ("1", "true")
        entries = list(_tree_entries(commit, path, recursive))
        if path and not entries and path not in commit.files:
            raise _HTTPError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        if path in commit.files:  # the tree of a file is the file itself
            entries = [commit.files[path]]
        page_size = min(self.state.page_size, 50) if expand else self.state.page_size
        start = int(self.params.get("cursor", "0") or 0)
        page = entries[start : start + page_size]
        headers = {}
        if start + page_size < len(entries):
            q = urlencode({"recursive": str(recursive), "expand": str(expand), "cursor": start + page_size})
            enc_path = "/" + quote(path, safe="") if path else ""
            next_url = f"{self.base_url}/api/{type}/{ns}/{name}/tree/{quote(rev, safe='')}{enc_path}?{q}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        return self._send_json(200, [_entry_json(e, commit, expand) for e in page], headers)

    def route_paths_info(self, type: str, ns: str, name: str, rev: str) -> int:
        repo = self._repo(type, ns, name)
        commit = self._commit(repo, rev)
        form = parse_qs(self.body.decode(), keep_blank_values=True)
        if not form and self.body.strip().startswith(b"{"):
            form = {k: (v if isinstance(v, list) else [v]) for k, v in self._json_body().items()}
        expand = str(form.get("expand", ["false"])[-1]).lower() in ("1", "true")
        out = []
        for p in form.get("paths", []):
            p = str(p).strip("/")
            if p in commit.files:
                out.append(_entry_json(commit.files[p], commit, expand))
            elif any(f.startswith(p + "/") for f in commit.files) or p == "":
                out.append(_entry_json(_Dir(p), commit, expand))
        return self._send_json(200, out)

    def route_resolve(self, ns: str, name: str, rev: str, path: str, prefix: str | None = None) -> int:
        type = (prefix or "models/").rstrip("/")
        repo = self._repo(type if type in REPO_TYPES else "models", ns, name)
        if (rule := self.state._should_fail("resolve")) is not None:
            raise _HTTPError(rule.status, rule.message)
        commit = self._commit(repo, rev)
        entry = commit.files.get(path)
        if entry is None:
            raise _HTTPError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        data = self.state.read_file(entry)
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if entry.is_lfs:
            headers["ETag"] = f'"{entry.sha256}"'
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
        else:
            headers["ETag"] = f'"{entry.git_oid}"'
        status = 200
        rng = self.headers.get("Range")
        if rng:
            start, stop = _parse_range(rng, len(data))
            if start is None:
                raise _HTTPError(
                    416, "Requested range not satisfiable", extra={"Content-Range": f"bytes */{len(data)}"}
                )
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
            data = data[start:stop]
            status = 206
        self.detail = {"path": path, "bytes": len(data), "range": rng}
        self._send(status, data, headers, "application/octet-stream")
        return status


@dataclass(frozen=True)
class _Dir:
    path: str


def _tree_entries(commit: Commit, path: str, recursive: bool) -> Iterator[FileEntry | _Dir]:
    """Children of ``path`` (all descendants when recursive), directories before files, sorted."""
    prefix = path + "/" if path else ""
    dirs: set[str] = set()
    files: list[FileEntry] = []
    for p, entry in commit.files.items():
        if not p.startswith(prefix):
            continue
        rest = p[len(prefix) :]
        parts = rest.split("/")
        if recursive:
            for k in range(1, len(parts)):
                dirs.add(prefix + "/".join(parts[:k]))
            files.append(entry)
        elif len(parts) == 1:
            files.append(entry)
        else:
            dirs.add(prefix + parts[0])
    for d in sorted(dirs):
        yield _Dir(d)
    yield from sorted(files, key=lambda e: e.path)


def _entry_json(entry: FileEntry | _Dir, commit: Commit, expand: bool) -> dict[str, Any]:
    if isinstance(entry, _Dir):
        listing = json.dumps(sorted((p, e.git_oid) for p, e in commit.files.items() if p.startswith(entry.path + "/")))
        out: dict[str, Any] = {
            "type": "directory",
            "oid": hashlib.sha1(listing.encode()).hexdigest(),
            "path": entry.path,
        }
    else:
        out = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": entry.path}
        if entry.is_lfs:
            out["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    if expand:
        out["lastCommit"] = {"id": commit.oid, "title": commit.title, "date": _iso(commit.date)}
    return out


def _parse_range(header: str, size: int) -> tuple[int | None, int]:
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None, 0
    if not m.group(1):  # suffix range: the last n bytes
        n = int(m.group(2))
        return max(0, size - n), size
    start = int(m.group(1))
    stop = min(size, int(m.group(2)) + 1) if m.group(2) else size
    if start >= size or stop <= start:
        return None, 0
    return start, stop


def _validate_card_yaml(content: str) -> list[str]:
    """The checks the Hub applies to a card's metadata that matter here; a list of error messages."""
    if not content.startswith("---"):
        return []
    parts = content.split("\n---", 1)
    if len(parts) < 2:
        return ["README.md metadata block is not closed with '---'"]
    try:
        meta = yaml.safe_load(parts[0][3:])
    except yaml.YAMLError as exc:
        return [f"YAML error: {exc}"]
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["metadata must be a YAML mapping"]
    errors = []
    licence = meta.get("license")
    for lic in licence if isinstance(licence, list) else [licence] if licence is not None else []:
        if lic not in KNOWN_LICENSES:
            errors.append(f'"license" must be one of the Hub licence ids, got "{lic}"')
    for cfg in meta.get("configs", []) or []:
        if not isinstance(cfg, dict) or "config_name" not in cfg:
            errors.append('"configs" items need a "config_name"')
            continue
        for df in cfg.get("data_files", []) or []:
            if isinstance(df, dict) and not {"split", "path"} <= set(df):
                errors.append('"configs[].data_files" items need "split" and "path"')
    return errors


def _sign(secret: str, oid: str, size: int, repo_key: str) -> str:
    """What an S3 presigned URL does: the upload target is valid only for this object and repo."""
    return hmac.new(secret.encode(), f"{oid}:{size}:{repo_key}".encode(), hashlib.sha256).hexdigest()[:32]


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def hub_env(server_url: str, home: Path, token: str | None = VALID_TOKEN) -> dict[str, str]:
    """Environment for a process that talks only to the test server (set before hub/datasets import)."""
    env = {
        "HF_ENDPOINT": server_url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(home / "hf_home"),
        "HF_HUB_CACHE": str(home / "hf_home" / "hub"),
        "HF_DATASETS_CACHE": str(home / "hf_home" / "datasets"),
        "HF_TOKEN_PATH": str(home / "hf_home" / "token"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_ETAG_TIMEOUT": "5",
        "HF_HUB_DOWNLOAD_TIMEOUT": "10",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "MMCURATE_NO_PROGRESS": "1",
    }
    if token is not None:
        env["HF_TOKEN"] = token
    return env
