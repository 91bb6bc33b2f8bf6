"""The work directory's one owner: every path, reader, writer and freshness check of it.

Stages talk only through files keyed by a stable ``sample_id``; this package is where those files
are named, read, written (atomically, checked against :mod:`mmcurate.store.schemas`) and judged
complete or stale. Stages import the store, not each other.

* :class:`Workdir`: resolves ``--workdir`` / ``$MMCURATE_WORKDIR`` / ``./mmcurate-work`` and knows the
  stage folders (each stage says when its output is complete, from the folders' checks);
* :class:`IngestDir`: manifest, classes, config, shards, failures, scores and their fingerprint;
* :class:`BalancedDir`: selection, balance settings and bin edges, export staging, marker and verification;
* :mod:`mmcurate.store.splits`: the one split vocabulary and splitters;
* :mod:`mmcurate.store.items`: what discovery hands to ingest (items and failures);
* :mod:`mmcurate.store.completion`: the one completion-marker scheme of work units.
"""

from mmcurate.store.balanced_dir import BalancedDir
from mmcurate.store.completion import UnitMarker
from mmcurate.store.ingest_dir import IngestDir
from mmcurate.store.workdir import (
    DEFAULT_WORKDIR,
    WORKDIR_ENV,
    Workdir,
    resolve_workdir,
)

__all__ = ["DEFAULT_WORKDIR", "WORKDIR_ENV", "BalancedDir", "IngestDir", "UnitMarker", "Workdir", "resolve_workdir"]
