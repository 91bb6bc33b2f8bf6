"""Build the static browser site for one folder: media, data index, card chunks, index.html.

Site layout (``DIR/browse`` by default)::

    index.html          the page: markup, style and script inline; opens from disk (file://)
    data/index.js       MMB.index({...}): the per-sample index (see mmcurate.browse.index)
    data/chunks/cK.js   MMB.chunk(K, rows): card details, loaded a page at a time
    media/ab/<hash>.jpg|.flac   stored frames and audio, named by content, reused by rebuilds
    browse.json         what was built from what (also marks the folder as a browse site)

``data/`` is replaced as a whole (built aside, then renamed), ``index.html`` and ``browse.json``
are written atomically, and media files are renamed into place: a killed build leaves the
previous site usable, and the next build picks up where it stopped.
"""

from __future__ import annotations

import html
import os
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mmcurate import __version__
from mmcurate.browse.config import BrowseConfig, BrowseOptions
from mmcurate.browse.index import MediaMap, SiteData, build_index, folder_title, js_call
from mmcurate.browse.media import MEDIA_DIR, MediaStats, MediaStore, pick_frames
from mmcurate.browse.sources import BrowseSource, iter_media, open_source, resolve_folder
from mmcurate.common.atomic import atomic_dir, atomic_write_json, atomic_write_text, clean_stale_temporaries
from mmcurate.common.console import info, summary_table
from mmcurate.common.errors import MMCurateError
from mmcurate.common.progress import progress_bar
from mmcurate.store import Workdir
from mmcurate.store.lock import locked_folder
from mmcurate.store.ownership import BOOKKEEPING, OWNER_FILE, check_output_path, make_output_dir, owner_kind

SITE_MARKER = "browse.json"
INDEX_HTML = "index.html"
DATA_DIR = "data"
#: the owner-file kind of a browse site (written when a build starts, so a killed first build is resumed)
SITE_KIND = "browse"
_PLACEHOLDER = re.compile(r"@(TITLE|CSS|APP)@")


@dataclass(frozen=True)
class PageWeight:
    """Bytes a browser reads: on opening the page, and per page of cards."""

    html_bytes: int
    index_bytes: int
    chunks: int
    chunk_bytes_max: int
    first_page_card_bytes: int
    worst_page_card_bytes: int
    frame_bytes_per_card: float
    audio_bytes_per_card: float
    page_size: int

    @property
    def initial_bytes(self) -> int:
        return self.html_bytes + self.index_bytes

    @property
    def page_frame_bytes(self) -> int:
        """Frames of a full page of cards (audio is read only when a player is started)."""
        return round(self.frame_bytes_per_card * self.page_size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "initial_bytes": self.initial_bytes,
            "html_bytes": self.html_bytes,
            "index_bytes": self.index_bytes,
            "chunks": self.chunks,
            "chunk_bytes_max": self.chunk_bytes_max,
            "page_size": self.page_size,
            "first_page_card_bytes": self.first_page_card_bytes,
            "worst_page_card_bytes": self.worst_page_card_bytes,
            "frame_bytes_per_card": round(self.frame_bytes_per_card, 1),
            "page_frame_bytes": self.page_frame_bytes,
            "audio_bytes_per_card": round(self.audio_bytes_per_card, 1),
        }


@dataclass
class BrowseResult:
    """A finished build."""

    site: Path
    source: BrowseSource
    media: MediaStats
    weight: PageWeight
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def index_html(self) -> Path:
        return self.site / INDEX_HTML


def default_site_dir(source_folder: Path) -> Path:
    return source_folder / "browse"


def build_site(
    target: Path, out: Path | None = None, options: BrowseOptions | None = None, ingest_dir: Path | None = None
) -> BrowseResult:
    """Build (or rebuild, reusing media) the browser site for ``target``; see the module doc."""
    opts = options or BrowseOptions()
    t0 = time.perf_counter()
    src = open_source(target, ingest_dir)
    site = out or default_site_dir(src.folder)
    _check_site_dir(site)
    make_output_dir(site)
    # one build at a time: two would prune each other's media and swap data/ under each other
    with locked_folder(site, what=f"browse site {site}"):
        atomic_write_json(site / OWNER_FILE, {"kind": SITE_KIND})  # ours from now on, even if killed
        return _build_site(site, src, opts, t0)


def _build_site(site: Path, src: BrowseSource, opts: BrowseOptions, t0: float) -> BrowseResult:
    clean_stale_temporaries(site, lambda dest: dest in (INDEX_HTML, SITE_MARKER, DATA_DIR, OWNER_FILE))
    timings = {"read": time.perf_counter() - t0}

    t = time.perf_counter()
    store = MediaStore(site)
    media = _extract_media(src, store, opts.max_frames) if opts.media else None
    timings["media"] = time.perf_counter() - t

    t = time.perf_counter()
    data = build_index(
        src, media, hist_bins=opts.hist_bins, grid=opts.grid, page_size=opts.page_size, chunk_size=opts.chunk_size
    )
    data.index["links"] = _links(site, src)
    chunk_sizes = _write_data(site, data)
    page = render_page(data.index["title"])
    atomic_write_text(site / INDEX_HTML, page)
    if opts.media:
        store.prune()
    timings["pages"] = time.perf_counter() - t

    weight = _page_weight(site, chunk_sizes, store, media, opts)
    elapsed = time.perf_counter() - t0
    atomic_write_json(
        site / SITE_MARKER,
        {
            "mmcurate_version": __version__,
            "folder": folder_title(src.folder),  # the site is shared: folder names, not the machine's paths
            "kind": src.kind,
            "ingest_dir": folder_title(src.ingest_dir),
            "samples": src.samples.num_rows,
            "options": {k: getattr(opts, k) for k in opts.__dataclass_fields__},
            "page_weight": weight.to_dict(),
            "media_files": store.stats.files,
            "media_bytes": store.stats.bytes_total,
        },
    )
    return BrowseResult(site, src, store.stats, weight, elapsed, timings)


def _kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.2f} MiB"


def print_summary(result: BrowseResult) -> None:
    """The end-of-run table: what was browsed, the media, the page weight, the build time."""
    src, w, m = result.source, result.weight, result.media
    rows = [
        ["browsed", f"{src.folder} ({src.kind})"],
        ["media from", str(src.ingest_dir)],
        ["samples", f"{src.samples.num_rows} in {len(src.classes)} classes"],
        [
            "media files",
            f"{m.files} ({_kib(m.bytes_total)}): {m.written} written, {m.reused} reused, {m.removed} removed",
        ],
        [
            "initial load",
            f"{_kib(w.initial_bytes)} (index.html {_kib(w.html_bytes)} + data/index.js {_kib(w.index_bytes)})",
        ],
        [
            "per page of cards",
            f"card data {_kib(w.first_page_card_bytes)} (first page), at most "
            f"{_kib(w.worst_page_card_bytes)}; frames {_kib(w.page_frame_bytes)} "
            f"({w.page_size} cards); audio {_kib(w.audio_bytes_per_card)} a card, "
            "read when played",
        ],
        ["build time", f"{result.seconds:.1f} s"],
    ]
    summary_table(f"browse -> {result.index_html}", ["", "value"], rows)
    for note in src.notes:
        info(f"browse: {note}")


def render_page(title: str) -> str:
    """``index.html``: the template with the style and script inline (nothing loaded from elsewhere)."""
    assets = resources.files("mmcurate.browse") / "assets"
    template = (assets / "page.html").read_text(encoding="utf-8")
    app = (assets / "app.js").read_text(encoding="utf-8")
    css = (assets / "page.css").read_text(encoding="utf-8")
    if "</script" in app.lower() or "</style" in css.lower():
        raise AssertionError("page assets must not close their own element")
    values = {"TITLE": html.escape(title + " \u2014 mmcurate browse"), "CSS": css, "APP": app}
    # one pass: a value is never searched for placeholders (a folder named @APP@ stays a name)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _check_site_dir(site: Path) -> None:
    """Refuse to write into a folder that holds something other than a browse site."""
    check_output_path(site)
    if (
        site.is_dir()
        and any(p.name not in BOOKKEEPING for p in site.iterdir())
        and not (site / SITE_MARKER).is_file()
        and owner_kind(site) != SITE_KIND
    ):
        raise MMCurateError(
            f"{site}: folder is not empty and holds no {SITE_MARKER} (not a browse site); choose another --out"
        )


def _extract_media(src: BrowseSource, store: MediaStore, max_frames: int) -> MediaMap:
    """Copy each sample's stored frames (at most ``max_frames``, evenly spaced) and audio into ``store``."""
    ids = src.samples.column("sample_id").to_pylist()
    media: MediaMap = {}
    with progress_bar("browse: media", len(ids)) as advance:
        for sid, frames, audio in iter_media(src.ingest_dir, ids):
            names = [store.put(frames[k], "jpg") for k in pick_frames(len(frames or []), max_frames)]
            media[sid] = (names, store.put(audio, "flac") if audio else None)
            advance()
    return media


def _links(site: Path, src: BrowseSource) -> list[dict[str, str]]:
    """Relative links from the page to the folder's report and dataset card, where they exist."""
    found = [
        ("balance report" if src.kind == "balanced" else "modality-bias report", src.folder / "report" / "report.md"),
        ("dataset card", src.folder / "README.md"),
    ]
    if src.kind == "balanced":
        found.append(("modality-bias report (before balancing)", src.ingest_dir / "report" / "report.md"))
    return [
        {"text": text, "href": Path(os.path.relpath(path.resolve(), site.resolve())).as_posix()}
        for text, path in found
        if path.is_file()
    ]


def _write_data(site: Path, data: SiteData) -> list[int]:
    """Write ``data/`` aside and swap it in; return each chunk file's size in bytes."""
    sizes = []
    with atomic_dir(site / DATA_DIR) as tmp:
        (tmp / "chunks").mkdir()
        for k, rows in enumerate(data.chunks()):
            text = js_call("MMB.chunk", k, rows).encode("utf-8")
            (tmp / "chunks" / f"c{k}.js").write_bytes(text)
            sizes.append(len(text))
        (tmp / "index.js").write_text(js_call("MMB.index", data.index), encoding="utf-8")
        (tmp / "ids.js").write_text(js_call("MMB.ids", data.ids()), encoding="utf-8")
    return sizes


def _page_weight(
    site: Path, chunk_sizes: list[int], store: MediaStore, media: MediaMap | None, opts: BrowseOptions
) -> PageWeight:
    """Page weight: the opening page's bytes, and a page of cards' data (the first page in d order,
    whose samples share few chunks, and the worst case of one chunk per card) and media."""
    first = chunk_sizes[: -(-opts.page_size // opts.chunk_size)]
    frames_per_card = audio_per_card = 0.0
    if media:
        frames_per_card = sum(store.sizes[f] for frames, _ in media.values() for f in frames) / len(media)
        audio_per_card = sum(store.sizes[a] for _, a in media.values() if a) / len(media)
    return PageWeight(
        html_bytes=(site / INDEX_HTML).stat().st_size,
        index_bytes=(site / DATA_DIR / "index.js").stat().st_size,
        chunks=len(chunk_sizes),
        chunk_bytes_max=max(chunk_sizes, default=0),
        first_page_card_bytes=sum(first),
        worst_page_card_bytes=sum(sorted(chunk_sizes, reverse=True)[: opts.page_size]),
        frame_bytes_per_card=frames_per_card,
        audio_bytes_per_card=audio_per_card,
        page_size=opts.page_size,
    )


__all__ = [
    "MEDIA_DIR",
    "BrowseOptions",
    "BrowseResult",
    "PageWeight",
    "build_site",
    "default_site_dir",
    "print_summary",
    "render_page",
]


def site_dir(workdir: Workdir, cfg: BrowseConfig) -> Path | None:
    """Where the site of ``cfg`` goes (None: nothing to browse there yet)."""
    if cfg.out is not None:
        return cfg.out
    try:
        return default_site_dir(resolve_folder(cfg.folder or workdir.path)[1])
    except MMCurateError:
        return None


def run_browse(workdir: Workdir, cfg: BrowseConfig) -> BrowseResult:
    """The ``mmcurate browse`` stage: the site of DIR (default: the work directory)."""
    return build_site(cfg.folder or workdir.path, cfg.out, cfg.site, cfg.ingest_dir)


def is_complete(workdir: Workdir, cfg: BrowseConfig) -> bool:
    """A finished site is there (rebuilt when the stages before it ran, as every stage is)."""
    site = site_dir(workdir, cfg)
    return site is not None and (site / SITE_MARKER).is_file() and (site / INDEX_HTML).is_file()
