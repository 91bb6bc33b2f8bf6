"""Everything ``mmcurate browse`` reads from disk, in one place.

The browser is built over three kinds of folder (``mmcurate.schemas`` gives their files):

* an **ingest** folder: ``manifest.parquet`` + ``shards/`` (cards and class/split filters only);
* a **scored** ingest folder: the same plus ``scores.parquet`` (plots, d, preferred modality);
* a **balanced** folder: ``selection.parquet`` (bins, splits, the scores it was balanced on) and
  ``balance.json``, whose ``ingest_dir`` names the ingest folder holding the media.

A work directory (``ingest/`` and perhaps ``balanced/`` inside) resolves to its balanced folder
when there is one, else to its ingest folder. No other module of :mod:`mmcurate.browse` opens a
file of the work directory, so pointing the browser at another store means changing only this one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc
import pyarrow.parquet as pq

from mmcurate.common.errors import MMCurateError

MANIFEST = "manifest.parquet"
SCORES = "scores.parquet"
SELECTION = "selection.parquet"
BALANCE_META = "balance.json"
CLASSES = "classes.json"
CONFIG = "config.json"

#: Manifest columns a card shows (the rest stay on disk).
_MANIFEST_COLUMNS = ("sample_id", "path", "label", "split", "start", "end", "duration", "has_audio", "num_frames")
#: Optional score columns a card shows when the scores file has them.
_SCORE_EXTRAS = ("preferred", "pred_audio", "pred_visual", "fold", "discrepancy_std", "scorer_id")


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
    if (target / SELECTION).is_file():
        return "balanced", target
    if (target / MANIFEST).is_file():
        return "ingest", target
    for kind, sub in (("balanced", target / "balanced"), ("ingest", target / "ingest")):
        if (sub / (SELECTION if kind == "balanced" else MANIFEST)).is_file():
            return kind, sub
    raise MMCurateError(
        f"{target}: not an mmcurate output (no {MANIFEST} or {SELECTION} in it, nor an ingest/ or balanced/ folder "
        "holding one); give a work directory, an ingest folder or a balanced folder"
    )


def open_source(target: Path, ingest_dir: Path | None = None) -> BrowseSource:
    """Read the folder at ``target`` (see :func:`resolve_folder`); ``ingest_dir`` overrides the
    ingest folder a balanced folder's ``balance.json`` records (for a moved work directory)."""
    kind, folder = resolve_folder(target)
    if kind == "balanced":
        return _open_balanced(folder, ingest_dir)
    return _open_ingest(folder)


def _open_ingest(folder: Path) -> BrowseSource:
    manifest = _manifest(folder)
    classes = _classes(folder, manifest)
    scores_path = folder / SCORES
    if not scores_path.is_file():
        return BrowseSource("ingest", folder, folder, manifest, classes, _raw_dir(folder))
    scores = _parquet(scores_path, "scores")
    _require(scores, ("sample_id", "p_audio", "p_visual", "discrepancy"), scores_path)
    keep = ["sample_id", "p_audio", "p_visual", "discrepancy", *[c for c in _SCORE_EXTRAS if c in scores.column_names]]
    joined = manifest.join(scores.select(keep), "sample_id", join_type="left outer")
    notes = []
    unscored = joined.column("discrepancy").null_count
    if unscored > 0:
        notes.append(f"{unscored} of {joined.num_rows} samples have no scores (shown without d)")
    scorer = scores.column("scorer_id")[0].as_py() if "scorer_id" in scores.column_names and scores.num_rows else None
    return BrowseSource("scored", folder, folder, joined.sort_by("sample_id"), classes, _raw_dir(folder),
                        scorer_id=scorer, notes=notes)


def _open_balanced(folder: Path, ingest_override: Path | None) -> BrowseSource:
    sel_path = folder / SELECTION
    selection = _parquet(sel_path, "selection")
    _require(selection, ("sample_id", "label", "bin", "split", "p_audio", "p_visual", "discrepancy"), sel_path)
    meta = _json(folder / BALANCE_META) if (folder / BALANCE_META).is_file() else {}
    meta = meta if isinstance(meta, dict) else {}
    recorded = meta.get("ingest_dir")
    if ingest_override is not None:
        ingest_dir = ingest_override
    elif recorded:
        ingest_dir = Path(recorded)
    else:
        raise MMCurateError(f"{folder / BALANCE_META}: missing or without ingest_dir; pass --ingest-dir INGEST_FOLDER")
    if not (ingest_dir / MANIFEST).is_file():
        how = "given by --ingest-dir" if ingest_override is not None else f"recorded in {folder / BALANCE_META}"
        raise MMCurateError(
            f"{ingest_dir}: the ingest folder {how} has no {MANIFEST}; pass --ingest-dir INGEST_FOLDER"
        )
    manifest = _manifest(ingest_dir)
    cols = ["sample_id", "label", "bin", "split", "p_audio", "p_visual", "discrepancy"]
    media_side = manifest.drop_columns(["label", "split"])
    joined = selection.select(cols).join(media_side, "sample_id", join_type="left outer")
    missing = joined.filter(pc.is_null(joined.column("path")))
    if missing.num_rows:
        raise MMCurateError(
            f"{sel_path}: {missing.num_rows} selected sample(s) are not in {ingest_dir / MANIFEST} "
            f"(e.g. {missing.column('sample_id')[0].as_py()!r}); "
            "pass the ingest folder they came from with --ingest-dir"
        )
    summary = meta.get("summary") if isinstance(meta.get("summary"), dict) else {}
    scorer = summary.get("scorer_id") or meta.get("scorer_id")
    notes: list[str] = []
    scores_path = ingest_dir / SCORES
    if scores_path.is_file():
        scores = _parquet(scores_path, "scores")
        extras = [c for c in _SCORE_EXTRAS if c in scores.column_names and c != "scorer_id"]
        same = ("scorer_id" in scores.column_names and scores.num_rows > 0
                and scores.column("scorer_id")[0].as_py() == scorer)
        if extras and same:
            joined = joined.join(scores.select(["sample_id", *extras]), "sample_id", join_type="left outer")
        elif extras:
            notes.append(f"{scores_path} comes from another scorer than the balanced set; "
                         "its extra columns are not shown")
    edges = summary.get("edges") or meta.get("bin_edges")
    return BrowseSource(
        "balanced", folder, ingest_dir, joined.sort_by("sample_id"), _classes(ingest_dir, manifest),
        _raw_dir(ingest_dir),
        bin_edges=[float(e) for e in edges] if edges else None, scorer_id=scorer, notes=notes,
    )


def iter_media(ingest_dir: Path, sample_ids: Sequence[str],
               batch_rows: int = 128) -> Iterator[tuple[str, list[bytes], bytes | None]]:
    """``(sample_id, jpeg_frames, flac_or_None)`` of ``sample_ids``, shard by shard.

    Each shard is memory-mapped and its wanted rows copied out ``batch_rows`` at a time, so
    memory stays flat however large the ingest. (Not ``mmcurate.data.read_shards``: importing
    ``mmcurate.data`` loads torch, seconds that a command needing no tensors should not pay.)
    """
    manifest_path = ingest_dir / MANIFEST
    m = _parquet(manifest_path, "ingest manifest")
    _require(m, ("sample_id", "shard", "shard_row"), manifest_path)
    wanted = set(sample_ids)
    by_shard: dict[str, list[tuple[int, str]]] = {}
    for sid, shard, row in zip(m.column("sample_id").to_pylist(), m.column("shard").to_pylist(),
                               m.column("shard_row").to_pylist(), strict=True):
        if sid in wanted:
            by_shard.setdefault(shard, []).append((int(row), sid))
    found = sum(len(v) for v in by_shard.values())
    if found != len(wanted):
        raise MMCurateError(f"{manifest_path}: {len(wanted) - found} sample(s) to show are not in the manifest")
    for shard in sorted(by_shard):
        path = ingest_dir / "shards" / shard
        rows = sorted(by_shard[shard])
        with _mapped_shard(path) as table:
            if rows[-1][0] >= table.num_rows:
                raise MMCurateError(f"{path}: the manifest points at row {rows[-1][0]} but the shard has "
                                    f"{table.num_rows} rows; re-run mmcurate ingest")
            for start in range(0, len(rows), batch_rows):
                part = rows[start : start + batch_rows]
                batch = table.take(pa.array([r for r, _ in part], pa.int64()))
                got = batch.column("sample_id").to_pylist()
                for (row, sid), have in zip(part, got, strict=True):
                    if have != sid:
                        raise MMCurateError(f"{path}: row {row} holds {have!r}, but the manifest says {sid!r}; "
                                            "re-run mmcurate ingest")
                yield from zip(got, batch.column("frames").to_pylist(), batch.column("audio").to_pylist(), strict=True)


@contextlib.contextmanager
def _mapped_shard(path: Path) -> Iterator[pa.Table]:
    """A shard's ``sample_id``, ``frames`` and ``audio`` columns, memory-mapped (zero copy)."""
    if not path.is_file():
        raise MMCurateError(f"{path}: shard named by the manifest is missing; re-run mmcurate ingest")
    try:
        source = pa.memory_map(str(path), "r")
        table = pa.ipc.open_file(source).read_all().select(["sample_id", "frames", "audio"])
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise MMCurateError(
            f"{path}: not a readable Arrow IPC shard ({_one_line(exc)}); re-run mmcurate ingest"
        ) from None
    try:
        yield table
    finally:
        del table
        source.close()


def _manifest(folder: Path) -> pa.Table:
    path = folder / MANIFEST
    table = _parquet(path, "ingest manifest")
    _require(table, ("sample_id", "path", "label"), path)
    cols = [c for c in _MANIFEST_COLUMNS if c in table.column_names]
    table = table.select(cols)
    if "split" not in cols:
        table = table.append_column("split", pa.nulls(table.num_rows, pa.string()))
    return table


def _classes(folder: Path, manifest: pa.Table) -> list[str]:
    path = folder / CLASSES
    present = sorted(set(manifest.column("label").to_pylist()))
    if not path.is_file():
        return present
    classes = _json(path)
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise MMCurateError(f"{path}: expected a JSON list of class names")
    return classes + [c for c in present if c not in set(classes)]


def _raw_dir(folder: Path) -> str | None:
    path = folder / CONFIG
    if not path.is_file():
        return None
    cfg = _json(path)
    raw = cfg.get("raw_dir") if isinstance(cfg, dict) else None
    return raw if isinstance(raw, str) else None


def _parquet(path: Path, what: str) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise MMCurateError(f"{path}: not a readable {what} Parquet file ({_one_line(exc)})") from None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MMCurateError(f"{path}: not readable JSON ({_one_line(exc)})") from None


def _require(table: pa.Table, columns: Sequence[str], path: Path) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise MMCurateError(f"{path}: missing column(s) {', '.join(missing)}; is it an mmcurate output?")


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]
