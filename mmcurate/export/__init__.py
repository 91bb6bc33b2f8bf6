"""Export the balanced selection as a Hugging Face dataset: Hub-layout Parquet, save_to_disk, card.

``export_balanced`` is what the balance stage calls; ``load_balanced`` reads an export back
(with audio readable without torchcodec); ``verify_export`` is what ``mmcurate push`` checks
before uploading anything.

Names are resolved on first use, so importing a light submodule (``mmcurate.export.layout``,
which ``mmcurate push`` needs) does not pay for importing ``datasets``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "ExportResult": "mmcurate.export.export",
    "export_balanced": "mmcurate.export.export",
    "EXPORT_MARKER": "mmcurate.export.layout",
    "HUB_SPLIT_NAMES": "mmcurate.export.layout",
    "hub_split_name": "mmcurate.export.layout",
    "verify_export": "mmcurate.export.layout",
    "load_balanced": "mmcurate.export.read",
    "with_audio_decoding": "mmcurate.export.read",
}

if TYPE_CHECKING:  # pragma: no cover
    from mmcurate.export.export import ExportResult, export_balanced
    from mmcurate.export.layout import EXPORT_MARKER, HUB_SPLIT_NAMES, hub_split_name, verify_export
    from mmcurate.export.read import load_balanced, with_audio_decoding


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmcurate.export' has no attribute {name!r}")


__all__ = sorted(_LAZY)
