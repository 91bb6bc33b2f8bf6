"""``mmcurate browse``: a static HTML browser over an ingest, scored or balanced folder.

:func:`build_site` writes the site (see :mod:`mmcurate.browse.build` for its layout);
:mod:`mmcurate.browse.sources` is the one module that reads the work directory.
"""

from mmcurate.browse.build import BrowseOptions, BrowseResult, PageWeight, build_site

__all__ = ["BrowseOptions", "BrowseResult", "PageWeight", "build_site"]
