"""``mmcurate browse [DIR]``: build a static HTML browser of a dataset's samples and print its path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from mmcurate.cli_options import workdir_option
from mmcurate.common.console import info, summary_table
from mmcurate.common.errors import MMCurateError
from mmcurate.store import resolve_workdir

if TYPE_CHECKING:
    from mmcurate.browse.build import BrowseResult


@click.command("browse", context_settings={"show_default": True})
@click.argument("folder", metavar="[DIR]", required=False, type=click.Path(path_type=Path))
@workdir_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    show_default=False,
    help="Folder for the site (default: the browsed folder's browse/). Rebuilding into it reuses the media "
    "files already there; a non-empty folder that is not a browse site is refused.",
)
@click.option(
    "--ingest-dir",
    type=click.Path(path_type=Path),
    default=None,
    show_default=False,
    help="For a balanced folder: the ingest folder holding its media, when it is no longer where "
    "balance.json records it.",
)
@click.option(
    "--max-frames",
    type=int,
    default=8,
    help="Stored frames shown per card, evenly spaced over the clip's frames (0: all). Bounds the media "
    "copied into the site.",
)
@click.option(
    "--no-media",
    is_flag=True,
    default=False,
    help="Cards without frames or audio: builds fast and small over very large sets.",
)
@click.option("--page-size", type=int, default=48, help="Cards per page.")
@click.option("--hist-bins", type=int, default=20, help="Bars of the d histogram, equal width over [-1, 1].")
@click.option("--grid", type=int, default=25, help="Cells per axis of the (p_visual, p_audio) density, over [0, 1].")
@click.option(
    "--serve",
    is_flag=True,
    default=False,
    help="After building, serve the site on http://127.0.0.1:PORT until Ctrl-C (never on other "
    "addresses). Not needed: index.html opens from disk.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, help="Port for --serve (0: any free port).")
def browse(
    folder: Path | None,
    workdir: str | None,
    out: Path | None,
    ingest_dir: Path | None,
    max_frames: int,
    no_media: bool,
    page_size: int,
    hist_bins: int,
    grid: int,
    serve: bool,
    port: int,
) -> None:
    """Build a static HTML browser over DIR and print the path of its index.html.

    \b
    DIR is a work directory (default: --workdir, $MMCURATE_WORKDIR or ./mmcurate-work; its
    balanced/ folder when there is one, else its ingest/ folder), an ingest folder
    (manifest.parquet + shards/, scored or not) or a balanced folder (selection.parquet; its
    media come from the ingest folder recorded in balance.json).

    \b
    The page shows the 2-D density of (p_visual, p_audio) and the histogram of
    d = p_audio - p_visual; clicking a cell or a bar lists exactly its samples. Each sample's
    card has its stored frames, an audio player, label, confidences, d (with its uncertainty
    when the scores have discrepancy_std), bin, split, preferred modality and source path.
    Filters: class, bin, split, preferred modality; sort by d; per-class share of
    audio-preferred samples. The site works offline from disk (no server, nothing fetched
    from the network); card data load a page at a time, so 100k samples stay quick.
    """
    from mmcurate.browse.build import BrowseOptions, build_site

    target = folder if folder is not None else resolve_workdir(workdir)
    opts = BrowseOptions(
        max_frames=max_frames, page_size=page_size, hist_bins=hist_bins, grid=grid, media=not no_media
    )
    result = build_site(target, out, opts, ingest_dir)
    _summary(result)
    click.echo(str(result.index_html))
    if serve:
        _serve(result.site, port)


def _kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.2f} MiB"


def _summary(result: BrowseResult) -> None:
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


def _serve(site: Path, port: int) -> None:
    from mmcurate.browse.serve import HOST, make_server

    try:
        server = make_server(site, port)
    except OSError as exc:
        raise MMCurateError(
            f"--serve: cannot listen on {HOST}:{port} ({exc.strerror or exc}); try another --port"
        ) from None
    url = f"http://{HOST}:{server.server_address[1]}/index.html"
    info(f"browse: serving {site} at {url} (Ctrl-C stops)")
    click.echo(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
