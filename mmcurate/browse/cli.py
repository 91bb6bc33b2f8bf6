"""``mmcurate browse [DIR]``: build a static HTML browser of a dataset's samples and print its path
(options from :class:`BrowseConfig` and :class:`ServeOptions`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mmcurate.browse import STAGE
from mmcurate.browse.config import BrowseConfig, ServeOptions
from mmcurate.cli_options import workdir_option
from mmcurate.common.console import info
from mmcurate.common.errors import MMCurateError
from mmcurate.common.options import click_options, from_cli
from mmcurate.stages import run_stage
from mmcurate.store import Workdir


@click.command("browse", context_settings={"show_default": True}, epilog=STAGE.epilog())
@workdir_option
@click_options(BrowseConfig, ServeOptions)
def browse(workdir: str | None, **options: Any) -> None:
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
    cfg: BrowseConfig = from_cli(BrowseConfig, options)
    serve: ServeOptions = from_cli(ServeOptions, options)
    result = run_stage(STAGE, Workdir.resolve(workdir), cfg)
    STAGE.summarize(result)
    click.echo(str(result.index_html))
    if serve.serve:
        _serve(result.site, serve.port)


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
