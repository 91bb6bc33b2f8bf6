"""Read ingest's Arrow shards back, memory-mapped, in manifest or caller order.

Shards are Arrow IPC *files*, so ``pyarrow.memory_map`` + ``ipc.open_file`` gives tables whose
buffers are pages of the file: reading all of a large ingest costs address space, not RAM, and
only the rows a stage touches are paged in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from mmcurate.common.errors import MMCurateError, StageNotReadyError
from mmcurate.common.hashing import canonical_json
from mmcurate.features import AudioFeatureConfig, resolve_feature_config
from mmcurate.schemas import SHARD_SCHEMA

#: Schema metadata key under which :func:`read_shards` records the cached features' config.
FEATURES_METADATA_KEY = b"mmcurate.audio_features_config"


def read_shards(ingest_dir: str | Path, sample_ids: Sequence[str] | None = None) -> pa.Table:
    """The shard rows of an ingest directory as one memory-mapped table.

    Without ``sample_ids``: every sample of ``manifest.parquet``, in manifest order (sorted by
    sample_id). With ``sample_ids``: exactly those samples, in the given order (an id twice gives
    the row twice). Rows are located through the manifest's ``shard``/``shard_row`` columns.
    When ``config.json`` names the feature config of the ``audio_features`` column, the table's
    schema metadata carries it (``FEATURES_METADATA_KEY``), so that :func:`build_av_tensors`
    knows whether the cache fits the features it is asked for.
    """
    ingest_dir = Path(ingest_dir)
    manifest_path = ingest_dir / "manifest.parquet"
    if not manifest_path.is_file():
        raise StageNotReadyError(
            f"{manifest_path} not found: run `mmcurate ingest` first (or point to its output folder)"
        )
    try:
        manifest = pq.read_table(manifest_path, columns=["sample_id", "shard", "shard_row"])
    except Exception as exc:
        raise MMCurateError(
            f"{manifest_path}: not a readable ingest manifest ({_one_line(exc)}); re-run mmcurate ingest"
        ) from None
    ids = manifest.column("sample_id").to_pylist()
    shard_names = manifest.column("shard").to_pylist()
    shard_rows = manifest.column("shard_row").to_numpy()
    if sample_ids is None:
        wanted = np.arange(len(ids))
    else:
        position = {sid: i for i, sid in enumerate(ids)}
        missing = [sid for sid in sample_ids if sid not in position]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise MMCurateError(
                f"{manifest_path}: {len(missing)} requested sample(s) are not in the manifest "
                f"({', '.join(map(repr, missing[:3]))}{more}); were they ingested into this folder?"
            )
        wanted = np.asarray([position[sid] for sid in sample_ids], dtype=np.int64)

    # Runs of consecutive rows of one shard become zero-copy slices of the mapped shard.
    names = sorted(set(shard_names))
    code_of = {name: k for k, name in enumerate(names)}
    codes = np.asarray([code_of[name] for name in shard_names], dtype=np.int64)[wanted]
    rows = shard_rows[wanted].astype(np.int64)
    opened: dict[int, pa.Table] = {}
    for code in np.unique(codes).tolist():
        path = ingest_dir / "shards" / names[code]
        opened[code] = _open_shard(path)
        top = int(rows[codes == code].max())
        if top >= opened[code].num_rows:
            raise MMCurateError(
                f"{path}: the manifest points at row {top} but the shard has {opened[code].num_rows} rows; "
                "the ingest output is inconsistent, re-run mmcurate ingest"
            )
    breaks = np.nonzero((np.diff(codes) != 0) | (np.diff(rows) != 1))[0] + 1
    starts = np.concatenate([[0], breaks]).astype(np.int64)
    ends = np.concatenate([breaks, [len(wanted)]]).astype(np.int64)
    pieces = [opened[int(codes[a])].slice(int(rows[a]), int(b - a)) for a, b in zip(starts, ends, strict=True) if b > a]
    if not pieces:
        result = SHARD_SCHEMA.empty_table()
    else:
        try:
            result = pa.concat_tables(pieces, promote_options="permissive") if len(pieces) > 1 else pieces[0]
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise MMCurateError(
                f"{ingest_dir / 'shards'}: shards have incompatible schemas ({_one_line(exc)})"
            ) from None
    got = result.column("sample_id").to_pylist()
    expected = [ids[i] for i in wanted]
    if got != expected:
        bad = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        raise MMCurateError(
            f"{ingest_dir}: manifest says {expected[bad]!r} is at {shard_names[wanted[bad]]} row "
            f"{int(shard_rows[wanted[bad]])}, but that row holds {got[bad]!r}; re-run mmcurate ingest"
        )
    features = ingest_features_config(ingest_dir)
    if features is not None:
        meta = dict(result.schema.metadata or {})
        meta[FEATURES_METADATA_KEY] = canonical_json(features.to_dict()).encode()
        result = result.replace_schema_metadata(meta)
    return result


def cached_features_config(table: pa.Table) -> AudioFeatureConfig | None:
    """The feature config :func:`read_shards` recorded in ``table``'s schema metadata, if any."""
    raw = (table.schema.metadata or {}).get(FEATURES_METADATA_KEY)
    if raw is None:
        return None
    return resolve_feature_config(json.loads(raw))


def ingest_features_config(ingest_dir: str | Path) -> AudioFeatureConfig | None:
    """The config of the cached ``audio_features`` in an ingest folder, from ``config.json``.

    Looks for ``features_config`` (the resolved config dict, preferred: it stays right even if a
    preset's definition changes later) then ``features`` (a preset name or dict), at the top
    level, under ``config`` or under ``identity.config`` (where ``mmcurate ingest`` writes its
    settings). None when the ingest cached no features.
    """
    path = Path(ingest_dir) / "config.json"
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MMCurateError(f"{path}: not readable JSON ({_one_line(exc)}); re-run mmcurate ingest") from None
    spec = _find_features_spec(cfg)
    if spec is None:
        return None
    try:
        return resolve_feature_config(spec)
    except MMCurateError as exc:
        raise MMCurateError(f"{path}: its audio feature settings are invalid: {exc}") from None


def read_class_list(ingest_dir: str | Path) -> list[str]:
    """``classes.json``: the class names in ClassLabel order."""
    path = Path(ingest_dir) / "classes.json"
    if not path.is_file():
        raise StageNotReadyError(f"{path} not found: run `mmcurate ingest` first")
    try:
        classes = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MMCurateError(f"{path}: not readable JSON ({_one_line(exc)})") from None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise MMCurateError(f"{path}: expected a JSON list of class names")
    return classes


#: Where ingest's config.json may hold the cache's feature config, most specific first: a resolved
#: config dict (``features_config``) beats a preset name, which could be redefined later.
_FEATURES_PATHS = (
    ("features_config",),
    ("identity", "config", "features_config"),
    ("config", "features_config"),
    ("features",),
    ("identity", "config", "features"),
    ("config", "features"),
)


def _find_features_spec(cfg: Any) -> Any:
    for path in _FEATURES_PATHS:
        node = cfg
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return node
    return None


def _open_shard(path: Path) -> pa.Table:
    if not path.is_file():
        raise MMCurateError(f"{path}: shard named by the manifest is missing; re-run mmcurate ingest")
    try:
        with pa.memory_map(str(path), "r") as source:
            return pa.ipc.open_file(source).read_all()
    except Exception as exc:
        raise MMCurateError(
            f"{path}: not a readable Arrow IPC shard ({_one_line(exc)}); re-run mmcurate ingest"
        ) from None


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]
