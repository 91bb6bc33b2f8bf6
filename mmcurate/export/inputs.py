"""What the export receives: the balanced selection joined with the ingest manifest, checked.

Everything a user can get wrong here (a selection that names a sample the ingest never produced,
labels the class list does not know) becomes a one-line :class:`MMCurateError` naming the file, so a
bad work directory never surfaces as a pyarrow traceback half way through an export. Reading the
files themselves is the store's job (:class:`~mmcurate.store.IngestDir`, :class:`~mmcurate.store.BalancedDir`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from mmcurate.common.errors import MMCurateError
from mmcurate.store import BalancedDir, IngestDir
from mmcurate.store.balanced_dir import check_selection


def read_selection(selection: Path | pa.Table) -> tuple[pa.Table, str]:
    """The selection (a selection.parquet path or a table) checked, plus a name for messages."""
    if isinstance(selection, pa.Table):
        return check_selection(selection, "selection table"), "selection table"
    path = Path(selection)
    table = BalancedDir(path.parent).read_selection() if path.name == BalancedDir.SELECTION else None
    if table is None:
        from mmcurate.store.io import read_parquet

        table = check_selection(
            read_parquet(path, what="the selection", fix="run `mmcurate balance` first"), str(path)
        )
    return table, str(path)


def join_manifest(selection: pa.Table, ingest: IngestDir, classes: list[str], selection_name: str) -> pa.Table:
    """Selection rows with the manifest's source path, sha256 and shard location added."""
    wanted = ingest.read_manifest(["sample_id", "path", "sha256", "shard", "shard_row"])
    joined = selection.join(wanted, keys="sample_id", join_type="left outer")
    missing = pc.filter(joined["sample_id"], pc.is_null(joined["shard"]))
    if len(missing):
        first = missing[0].as_py()
        raise MMCurateError(
            f"{selection_name}: {len(missing)} selected sample(s) are not in {ingest.manifest_path} "
            f"(first: '{first}'); the selection was made from another ingest, rerun `mmcurate balance`"
        )
    unknown = sorted(set(joined["label"].to_pylist()) - set(classes))
    if unknown:
        raise MMCurateError(
            f"{selection_name}: label(s) {unknown[:5]} are not in {ingest.file(IngestDir.CLASSES)}; "
            "the selection and the ingest disagree, rerun `mmcurate balance`"
        )
    return joined
