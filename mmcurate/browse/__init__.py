"""``mmcurate browse``: a static HTML browser over an ingest, scored or balanced folder.

:data:`STAGE` / :func:`run_browse` with :class:`BrowseConfig`; :func:`build_site` writes the site (see
:mod:`mmcurate.browse.build` for its layout); :mod:`mmcurate.browse.sources` is the one module that
reads the work directory.
"""

from mmcurate.browse.build import (
    BrowseResult,
    PageWeight,
    build_site,
    is_complete,
    print_summary,
    run_browse,
)
from mmcurate.browse.config import BrowseConfig, BrowseOptions
from mmcurate.common.stage import Stage

STAGE: Stage[BrowseConfig, BrowseResult] = Stage(
    name="browse",
    config=BrowseConfig,
    reads=(
        "balanced/selection.parquet + balance.json, or ingest/manifest.parquet (+ scores.parquet)",
        "ingest/shards/*.arrow (frames and audio)",
    ),
    writes=("<browsed folder>/browse/ (index.html, data/, media/, browse.json)",),
    run=run_browse,
    summarize=print_summary,
    is_complete=is_complete,
    sections=("browse",),
    optional=True,
)

__all__ = ["STAGE", "BrowseConfig", "BrowseOptions", "BrowseResult", "PageWeight", "build_site", "run_browse"]
