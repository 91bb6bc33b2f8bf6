"""Ingest shards as the data layer sees them: the store's rows, stamped with the cached features' config.

:meth:`mmcurate.store.IngestDir.read_media` reads the rows (memory-mapped, in manifest or caller
order); this module adds, in the table's schema metadata, the resolved config of the cached
``audio_features`` column, so that :func:`mmcurate.data.build_av_tensors` knows whether the cache
fits the features it is asked for (resolving a preset needs :mod:`mmcurate.features`, which the
store does not import).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import canonical_json
from mmcurate.features import AudioFeatureConfig, resolve_feature_config
from mmcurate.store import IngestDir

#: Schema metadata key under which :func:`read_shards` records the cached features' config.
FEATURES_METADATA_KEY = b"mmcurate.audio_features_config"


def read_shards(ingest_dir: str | Path, sample_ids: Sequence[str] | None = None) -> pa.Table:
    """The shard rows of an ingest directory as one memory-mapped table (see
    :meth:`IngestDir.read_media`), with the cached features' config in the schema metadata."""
    ingest = IngestDir(Path(ingest_dir))
    result = ingest.read_media(sample_ids)
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
    """The resolved config of the cached ``audio_features`` of an ingest folder (None when it cached none)."""
    ingest = IngestDir(Path(ingest_dir))
    spec = ingest.features_spec()
    if spec is None:
        return None
    try:
        return resolve_feature_config(spec)
    except MMCurateError as exc:
        raise MMCurateError(
            f"{ingest.file(IngestDir.CONFIG)}: its audio feature settings are invalid: {exc}"
        ) from None


def read_class_list(ingest_dir: str | Path) -> list[str]:
    """``classes.json``: the class names in ClassLabel order."""
    return IngestDir(Path(ingest_dir)).read_classes()
