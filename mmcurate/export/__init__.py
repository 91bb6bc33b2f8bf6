"""A library, not a stage: write a balanced selection as a Hugging Face dataset (Hub-layout Parquet,
save_to_disk, card).

The balance stage writes its dataset with it (``export_balanced``), and the ``mmcurate export`` stage
joins a selection with its manifest through it (:func:`mmcurate.export.inputs.join_manifest`); it
imports no stage, so using it ties no stage to another (tests/pipeline/test_import_graph.py). ``export_balanced``
is what the balance stage calls; ``load_balanced`` reads an export back
(with audio readable without torchcodec). Where the files live, and whether an export is
complete, is the store's business (:class:`mmcurate.store.BalancedDir`).
"""

from mmcurate.export.export import ExportResult, export_balanced
from mmcurate.export.read import audio_samples, load_balanced, with_audio_decoding

__all__ = ["ExportResult", "audio_samples", "export_balanced", "load_balanced", "with_audio_decoding"]
