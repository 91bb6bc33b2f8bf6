"""Everything ``mmcurate browse`` reads, through the store.

The browser is built over three kinds of folder (:mod:`mmcurate.store` owns their files):

* an **ingest** folder: ``manifest.parquet`` + ``shards/`` (cards and class/split filters only);
* a **scored** ingest folder: the same plus ``scores.parquet`` (plots, d, preferred modality);
* a **balanced** folder: ``selection.parquet`` (bins, splits, the scores it was balanced on) and
  ``balance.json``, whose ``ingest_dir`` names the ingest folder holding the media.

A work directory (``ingest/`` and perhaps ``balanced/`` inside) resolves to its balanced folder
when there is one, else to its ingest folder. The store imports neither torch nor PyAV, so the
command starts fast.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from mmcurate.common.errors import MMCurateError
from mmcurate.store import BalancedDir, IngestDir
from mmcurate.store.io import require_columns

#: Manifest columns a card shows (the rest stay on disk).
_MANIFEST_COLUMNS = ("sample_id", "path", "label", "split", "start", "end", "duration", "has_audio", "num_frames")
#: Optional score columns a card shows when the scores file has them.
_SCORE_EXTRAS = ("preferred", "pred_audio", "pred_visual", "fold", "discrepancy_std", "both_weak", "scorer_id")


def _present(scores: pa.Table, column: str) -> bool:
    """A score column with values (imported scores carry the uncertainty columns, all null)."""
    return column in scores.column_names and scores.column(column).null_count < scores.num_rows


@dataclass(frozen=True)
class BrowseSource:
    """One browsable folder, read: a row per sample and what the page needs to describe it.

    ``samples`` has the columns of ``_MANIFEST_COLUMNS`` and, when scored, ``p_audio``,
    ``p_visual``, ``discrepancy`` and whichever of ``_SCORE_EXTRAS`` exist; a balanced folder
    adds ``bin`` (its split replaces the manifest's).
    """

    kind: str  # "ingest" | "scored" | "balanced"
    folder: Path  # the folder browsed (ingest or balanced)
    ingest_dir: Path  # where manifest.parquet and shards/ are
    samples: pa.Table
    classes: list[str]
    raw_dir: str | None = None
    bin_edges: list[float] | None = None
    scorer_id: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def scored(self) -> bool:
        return "discrepancy" in self.samples.column_names


def resolve_folder(target: Path) -> tuple[str, Path]:
    """(``"balanced"`` | ``"ingest"``, folder) for a work directory, ingest or balanced folder."""
    if not target.exists():
        raise MMCurateError(f"{target}: folder not found")
    if not target.is_dir():
        raise MMCurateError(f"{target}: not a folder; give a work directory, an ingest folder or a balanced folder")
    for kind, folder in (
        ("balanced", target),
        ("ingest", target),
        ("balanced", target / "balanced"),
        ("ingest", target / "ingest"),
    ):
        if kind == "balanced" and BalancedDir(folder).selection_path.is_file():
            return kind, folder
        if kind == "ingest" and IngestDir(folder).is_complete():
            return kind, folder
    raise MMCurateError(
        f"{target}: not an mmcurate output (no {IngestDir.MANIFEST} or {BalancedDir.SELECTION} in it, nor an ingest/ "
        "or balanced/ folder holding one); give a work directory, an ingest folder or a balanced folder"
    )


def open_source(target: Path, ingest_dir: Path | None = None) -> BrowseSource:
    """Read the folder at ``target`` (see :func:`resolve_folder`); ``ingest_dir`` overrides the
    ingest folder a balanced folder's ``balance.json`` records (for a moved work directory)."""
    kind, folder = resolve_folder(target)
    if kind == "balanced":
        return _open_balanced(folder, ingest_dir)
    return _open_ingest(folder)


def _open_ingest(folder: Path) -> BrowseSource:
    ingest = IngestDir(folder)
    manifest = _manifest(ingest)
    classes = ingest.read_classes()
    if not ingest.scores_path.is_file():
        return BrowseSource("ingest", folder, folder, manifest, classes, _raw_dir(ingest))
    scores = ingest.read_scores()
    require_columns(
        scores.column_names,
        ("sample_id", "p_audio", "p_visual", "discrepancy"),
        ingest.scores_path,
        "rerun `mmcurate score`",
    )
    keep = ["sample_id", "p_audio", "p_visual", "discrepancy", *[c for c in _SCORE_EXTRAS if _present(scores, c)]]
    joined = manifest.join(scores.select(keep), "sample_id", join_type="left outer")
    notes = []
    unscored = joined.column("discrepancy").null_count
    if unscored > 0:
        notes.append(f"{unscored} of {joined.num_rows} samples have no scores (shown without d)")
    scorer = scores.column("scorer_id")[0].as_py() if "scorer_id" in scores.column_names and scores.num_rows else None
    return BrowseSource(
        "scored", folder, folder, joined.sort_by("sample_id"), classes, _raw_dir(ingest), scorer_id=scorer, notes=notes
    )


def _open_balanced(folder: Path, ingest_override: Path | None) -> BrowseSource:
    balanced = BalancedDir(folder)
    selection = balanced.read_selection()
    meta = balanced.read_meta()
    recorded = meta.get("ingest_dir")
    if ingest_override is not None:
        ingest = IngestDir(ingest_override)
    elif recorded:
        ingest = IngestDir(Path(recorded))
    else:
        raise MMCurateError(f"{balanced.meta_path}: missing or without ingest_dir; pass --ingest-dir INGEST_FOLDER")
    if not ingest.is_complete():
        how = "given by --ingest-dir" if ingest_override is not None else f"recorded in {balanced.meta_path}"
        raise MMCurateError(
            f"{ingest.path}: the ingest folder {how} has no {IngestDir.MANIFEST}; pass --ingest-dir INGEST_FOLDER"
        )
    balanced.check_ingest(ingest)
    manifest = _manifest(ingest)
    cols = ["sample_id", "label", "bin", "split", "p_audio", "p_visual", "discrepancy"]
    media_side = manifest.drop_columns(["label", "split"])
    joined = selection.select(cols).join(media_side, "sample_id", join_type="left outer")
    missing = joined.filter(pc.is_null(joined.column("path")))
    if missing.num_rows:
        raise MMCurateError(
            f"{balanced.selection_path}: {missing.num_rows} selected sample(s) are not in {ingest.manifest_path} "
            f"(e.g. {missing.column('sample_id')[0].as_py()!r}); "
            "pass the ingest folder they came from with --ingest-dir"
        )
    summary = meta.get("summary") if isinstance(meta.get("summary"), dict) else {}
    scorer = summary.get("scorer_id") or meta.get("scorer_id")
    notes: list[str] = []
    if ingest.scores_path.is_file():
        scores = ingest.read_scores()
        extras = [c for c in _SCORE_EXTRAS if _present(scores, c) and c != "scorer_id"]
        same = (
            "scorer_id" in scores.column_names
            and scores.num_rows > 0
            and scores.column("scorer_id")[0].as_py() == scorer
        )
        if extras and same:
            joined = joined.join(scores.select(["sample_id", *extras]), "sample_id", join_type="left outer")
        elif extras:
            notes.append(
                f"{ingest.scores_path} comes from another scorer than the balanced set; "
                "its extra columns are not shown"
            )
    return BrowseSource(
        "balanced",
        folder,
        ingest.path,
        joined.sort_by("sample_id"),
        ingest.read_classes(),
        _raw_dir(ingest),
        bin_edges=balanced.bin_edges(),
        scorer_id=scorer,
        notes=notes,
    )


def iter_media(
    ingest_dir: Path, sample_ids: Sequence[str], batch_rows: int = 128
) -> Iterator[tuple[str, list[bytes], bytes | None]]:
    """``(sample_id, jpeg_frames, flac_or_None)`` of ``sample_ids``, shard by shard.

    Each shard is memory-mapped by the store and its wanted rows copied out ``batch_rows`` at a
    time, so memory stays flat however large the ingest.
    """
    ingest = IngestDir(ingest_dir)
    m = ingest.read_manifest(["sample_id", "shard", "shard_row"])
    wanted = set(sample_ids)
    by_shard: dict[str, list[tuple[int, str]]] = {}
    for sid, shard, row in zip(
        m.column("sample_id").to_pylist(),
        m.column("shard").to_pylist(),
        m.column("shard_row").to_pylist(),
        strict=True,
    ):
        if sid in wanted:
            by_shard.setdefault(shard, []).append((int(row), sid))
    found = sum(len(v) for v in by_shard.values())
    if found != len(wanted):
        raise MMCurateError(f"{ingest.manifest_path}: {len(wanted) - found} sample(s) to show are not in the manifest")
    for shard in sorted(by_shard):
        path = ingest.shards_dir / shard
        rows = sorted(by_shard[shard])
        table = ingest.open_shard(shard).select(["sample_id", "frames", "audio"])
        if rows[-1][0] >= table.num_rows:
            raise MMCurateError(
                f"{path}: the manifest points at row {rows[-1][0]} but the shard has "
                f"{table.num_rows} rows; rerun `mmcurate ingest`"
            )
        for start in range(0, len(rows), batch_rows):
            part = rows[start : start + batch_rows]
            batch = table.take(pa.array([r for r, _ in part], pa.int64()))
            got = batch.column("sample_id").to_pylist()
            for (row, sid), have in zip(part, got, strict=True):
                if have != sid:
                    raise MMCurateError(
                        f"{path}: row {row} holds {have!r}, but the manifest says {sid!r}; rerun `mmcurate ingest`"
                    )
            yield from zip(got, batch.column("frames").to_pylist(), batch.column("audio").to_pylist(), strict=True)
        del table


def _manifest(ingest: IngestDir) -> pa.Table:
    table = ingest.read_manifest()
    cols = [c for c in _MANIFEST_COLUMNS if c in table.column_names]
    table = table.select(cols)
    if "split" not in cols:
        table = table.append_column("split", pa.nulls(table.num_rows, pa.string()))
    return table


def _raw_dir(ingest: IngestDir) -> str | None:
    raw = ingest.read_config().get("raw_dir")
    return raw if isinstance(raw, str) else None
