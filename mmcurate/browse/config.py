"""``mmcurate browse``: every setting of the stage, written once (command line, recipes, Python).

:class:`BrowseOptions` is how the site is built (none of these change which samples it shows);
:class:`BrowseConfig` is the whole stage; :class:`ServeOptions` belong to the command only (serving the
built site until Ctrl-C is something a person asks for, not a step of a recipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmcurate.common.errors import MMCurateError
from mmcurate.common.options import nested, opt


@dataclass(frozen=True)
class BrowseOptions:
    """How the site is built (none of these change which samples it shows)."""

    max_frames: int = opt(
        8,
        "Stored frames shown per card, evenly spaced over the clip's frames (0: all). Bounds the media copied "
        "into the site.",
    )
    page_size: int = opt(48, "Cards per page.")
    hist_bins: int = opt(20, "Bars of the d histogram, equal width over [-1, 1].")
    grid: int = opt(25, "Cells per axis of the (p_visual, p_audio) density, over [0, 1].")
    chunk_size: int = opt(16, cli=False)
    media: bool = opt(
        True, "Cards with frames and audio; --no-media leaves them out: builds fast and small over very large sets."
    )

    def __post_init__(self) -> None:
        if self.max_frames < 0:
            raise MMCurateError(f"--max-frames must be 0 (all) or more (got {self.max_frames})")
        if not 1 <= self.page_size <= 1000:
            raise MMCurateError(f"--page-size must be in 1..1000 (got {self.page_size})")
        if not 1 <= self.hist_bins <= 200:
            raise MMCurateError(f"--hist-bins must be in 1..200 (got {self.hist_bins})")
        if not 1 <= self.grid <= 100:
            raise MMCurateError(f"--grid must be in 1..100 (got {self.grid})")
        if self.chunk_size < 1:
            raise MMCurateError(f"chunk size must be at least 1 (got {self.chunk_size})")


@dataclass(frozen=True)
class BrowseConfig:
    """``mmcurate browse [DIR]``: the site of a work directory, ingest folder or balanced folder."""

    folder: Path | None = opt(None, argument=True, metavar="[DIR]")
    out: Path | None = opt(
        None,
        "Folder for the site (default: the browsed folder's browse/). Rebuilding into it reuses the media files "
        "already there; a non-empty folder that is not a browse site is refused.",
        show_default=False,
    )
    ingest_dir: Path | None = opt(
        None,
        "For a balanced folder: the ingest folder holding its media, when it is no longer where balance.json "
        "records it.",
        show_default=False,
    )
    site: BrowseOptions = nested(BrowseOptions)


@dataclass(frozen=True)
class ServeOptions:
    """``--serve``/``--port``: the built site over HTTP on 127.0.0.1 (:mod:`mmcurate.browse.serve`)."""

    serve: bool = opt(
        False,
        "After building, serve the site on http://127.0.0.1:PORT until Ctrl-C (never on other addresses). Not "
        "needed: index.html opens from disk.",
    )
    port: int = opt(8000, "Port for --serve (0: any free port; at most 65535).")

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise MMCurateError(f"--port must be in 0..65535 (got {self.port})")
