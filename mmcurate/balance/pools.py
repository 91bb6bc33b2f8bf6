"""Several scored ingest folders sampled as one pool: ``mmcurate balance --pool A --pool B``.

Why: a uniform set is limited by its smallest bin, and the way to fill a bin is to collect more
clips (the paper's authors did) and score them with the scorers saved for the first set
(``mmcurate score A --candidates B``). Balancing then draws from every pool together; each sample
keeps the name of the pool it came from (the ``pool`` column of selection.parquet and of the
export), so its media are read from its own folder's shards.

Pools must agree on the class list (same names, same order: the exported ClassLabel is one list)
and on the media settings, and must not share a sample_id (the id is the key of every table
downstream). Clips whose bytes repeat under another name are found by content
(:mod:`mmcurate.store.pools`): refused, or dropped with ``--drop-duplicates``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from mmcurate.common.errors import MMCurateError
from mmcurate.store import IngestDir
from mmcurate.store.pools import check_same_settings


def pool_names(paths: list[Path]) -> list[str]:
    """A short, distinct name per pool folder: the shortest tail of its path that no other pool shares
    (``ingest`` and ``candidates``; ``a/ingest`` and ``b/ingest`` when the last parts agree)."""
    # the names travel with the data (the export's pool column, the card): never the filesystem's root
    parts = [Path(p).resolve().parts[1:] or ("pool",) for p in paths]
    names = []
    for i, path in enumerate(parts):
        for depth in range(1, len(path) + 1):
            tail = "/".join(path[-depth:])
            if all("/".join(q[-depth:]) != tail for j, q in enumerate(parts) if j != i):
                break
        names.append(tail)
    return names


def open_pools(paths: list[Path]) -> dict[str, IngestDir]:
    """Pool name -> its finished ingest folder, in the order given (the first is the seed pool)."""
    seen: dict[Path, Path] = {}
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            raise MMCurateError(f"{p}: given twice as a pool (also as {seen[key]}); name each folder once")
        seen[key] = Path(p)
    return {name: IngestDir(Path(p)).require() for name, p in zip(pool_names(paths), paths, strict=True)}


def check_same_classes(pools: dict[str, IngestDir]) -> list[str]:
    """The class list every pool shares (one-line error naming both folders otherwise)."""
    first = next(iter(pools.values()))
    classes = first.read_classes()
    for ingest in pools.values():
        other = ingest.read_classes()
        if other != classes:
            raise MMCurateError(
                f"pools {first.path} and {ingest.path} have different class lists ({first.file(IngestDir.CLASSES)}, "
                f"{ingest.file(IngestDir.CLASSES)}); balance pools with the same classes in the same order "
                "(ingest with --classes)"
            )
    return classes


def scored_pools(pools: dict[str, IngestDir]) -> tuple[pa.Table, dict[str, dict[str, Any]]]:
    """Every pool's scored samples (:meth:`IngestDir.scored_pool`) in one table sorted by sample_id,
    with a ``pool`` column; and each pool's scores.json. With one pool, the rows are exactly that
    pool's (the selection is the one balance made before pools existed). Pools must share the class
    list and the media settings (:func:`mmcurate.store.pools.check_same_settings`)."""
    check_same_classes(pools)
    check_same_settings(pools)
    tables, metas = [], {}
    owner: dict[str, str] = {}
    for name, ingest in pools.items():
        table, meta = ingest.scored_pool()
        for sid in table.column("sample_id").to_pylist():
            if sid in owner:
                raise MMCurateError(
                    f"sample_id {sid!r} is in two pools, {pools[owner[sid]].path} and {ingest.path}; a sample may be "
                    "in one pool only (ingest the new clips without the ones already ingested)"
                )
            owner[sid] = name
        tables.append(table.append_column("pool", pa.array([name] * table.num_rows, pa.string())))
        metas[name] = meta
    joined = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    return joined.sort_by("sample_id"), metas


def score_sources(metas: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Pool name -> how its scores were made (``oof``, ``candidates``, ``imported``, ``plugin``)."""
    return {name: str(meta.get("source", "unknown")) for name, meta in metas.items()}
