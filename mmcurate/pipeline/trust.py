"""What a recipe file may not decide: replacing files in folders mmcurate did not make.

A recipe is shared and copied. ``balance: {out: ~/thesis, overwrite: true}`` in someone else's
recipe would replace the README.md, data/ and hf/ of a folder of yours; ``--overwrite`` is the
user's word that a folder may be written although mmcurate did not make it, so only the command
line may give it (``mmcurate run R.yaml --set balance.overwrite=true``). Folders mmcurate made are
written by a recipe without it (a changed setting reruns the stage into its own output).
"""

from __future__ import annotations

from typing import Any

from mmcurate.common.errors import MMCurateError
from mmcurate.stages import NAMES, load_stage


def folder_claiming_sections() -> tuple[str, ...]:
    """The recipe sections of the stages whose ``overwrite`` lets them write into a folder that is not their
    own output (``Stage.claims_folder``; score's ``overwrite`` only retrains, so it is not one)."""
    stages = (load_stage(name) for name in NAMES)
    return tuple(s.section for s in stages if s.claims_folder and s.section)


def refuse_folder_overwrite(data: Any, where: str) -> None:
    """A one-line error when the recipe file (before ``--set``) says ``overwrite`` for a stage's folder."""
    if not isinstance(data, dict):
        return
    for stage in folder_claiming_sections():
        section = data.get(stage)
        if isinstance(section, dict) and section.get("overwrite") not in (None, False):
            raise MMCurateError(
                f"recipe {where}: {stage}.overwrite may not be set in a recipe file (a shared recipe could point "
                f"it at your files); remove it, and if you mean it pass --set {stage}.overwrite=true on the "
                "command line"
            )
