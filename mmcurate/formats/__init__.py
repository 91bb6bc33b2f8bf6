"""The field's on-disk formats, read and written: ``mmcurate export --format NAME`` and the ingest layouts.

* ``balancemm``: BalanceMM's ``Balance`` dataset / GeWu-Lab BML release layout (annotation JSON,
  per-clip HDF5 JPEG frames, per-clip pickled spectrograms). :mod:`mmcurate.formats.balancemm`
  holds what the files are and how the reference loader reads them; the export stage
  (:data:`mmcurate.formats.export.STAGE`) writes it from a balanced dataset, and the ingest layout
  ``--layout balancemm`` (:mod:`mmcurate.recipes.balancemm`) reads it into an ingest folder.
* :mod:`mmcurate.formats.safe_pickle`: pickled numpy arrays, read without running the pickle's code.

Nothing is imported here: an ingest that reads a BalanceMM release loads the format, not the export stage.
Needs h5py (``pip install 'mmcurate[formats]'``); the error says so where it is missing.
"""
