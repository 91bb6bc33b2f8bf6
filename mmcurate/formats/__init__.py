"""The field's on-disk formats, read and written: ``mmcurate export --format NAME`` and the ingest layouts.

* ``balancemm``: BalanceMM's ``Balance`` dataset / GeWu-Lab BML release layout (annotation JSON,
  per-clip HDF5 JPEG frames, per-clip pickled spectrograms). :mod:`mmcurate.formats.balancemm`
  holds what the files are and how the reference loader reads them; the export stage
  (:data:`STAGE`, :func:`run_export`) writes it from a balanced dataset, and the ingest layout
  ``--layout balancemm`` (:mod:`mmcurate.recipes.balancemm`) reads it into an ingest folder.
* :mod:`mmcurate.formats.safe_pickle`: pickled numpy arrays, read without running the pickle's code.

Needs h5py (``pip install 'mmcurate[formats]'``); the error says so where it is missing.
"""

from __future__ import annotations

from mmcurate.common.stage import Stage
from mmcurate.formats.config import FORMATS, ExportConfig
from mmcurate.formats.export import ExportFormatResult, is_complete, print_summary, run_export

STAGE: Stage[ExportConfig, ExportFormatResult] = Stage(
    name="export",
    config=ExportConfig,
    reads=("balanced/selection.parquet", "balanced/balance.json", "ingest/manifest.parquet", "ingest/shards/*.arrow"),
    writes=("<format>/ (balancemm: annotations.json, visual/*.hdf5, audio/*.pkl, README.md, .mmcurate/)",),
    run=run_export,
    summarize=print_summary,
)

__all__ = ["FORMATS", "STAGE", "ExportConfig", "ExportFormatResult", "is_complete", "run_export"]
