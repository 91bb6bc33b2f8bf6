"""``export_balanced``: the balanced selection as a Hugging Face dataset, in Hub layout and on disk.

Writes into the balanced directory::

    data/{split}-00000-of-0000N.parquet   Hub layout, shards under a byte budget
    hf/                                  DatasetDict.save_to_disk of the same rows
    README.md                            dataset card (YAML header + provenance)
    export.json                          completion marker: every file's size and sha256

Rows are ordered by ``sample_id`` within each split and every writer option is fixed, so the
same inputs give byte-identical Parquet files, the same card and the same ``hf/`` folder.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetInfo

import mmcurate
from mmcurate.common.console import summary_table
from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import config_hash
from mmcurate.common.progress import progress_bar
from mmcurate.common.public_paths import path_roots, public_paths
from mmcurate.export.card import CONFIG_JSON, SplitSummary, config_document, render_card
from mmcurate.export.features import (
    audio_is_hub_encodable,
    build_export_table,
    build_features,
    row_nbytes,
    single_sample_rate,
)
from mmcurate.export.inputs import join_manifest, read_selection
from mmcurate.export.sharding import parse_shard_size, plan_shards, write_shards
from mmcurate.store import BalancedDir, IngestDir
from mmcurate.store.balanced_dir import EXPORT_MARKER_FORMAT
from mmcurate.store.completion import file_entry
from mmcurate.store.pools import check_same_settings
from mmcurate.store.splits import hub_split_name

CARD, DATA_DIR, HF_DIR = BalancedDir.CARD, BalancedDir.DATA_DIR, BalancedDir.HF_DIR

#: Splits in the order they appear in the card and in ``hf/``; others follow alphabetically.
_SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote (paths relative to ``out_dir``)."""

    out_dir: Path
    splits: dict[str, int]  # Hub split name -> rows
    shards: dict[str, list[str]]  # Hub split name -> data/... files
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # rel path -> {size, sha256}
    audio_as_hub_type: bool = True
    with_features: bool = False

    @property
    def card_path(self) -> Path:
        return self.out_dir / CARD

    @property
    def hf_dir(self) -> Path:
        return self.out_dir / HF_DIR

    @property
    def data_dir(self) -> Path:
        return self.out_dir / DATA_DIR

    @property
    def num_bytes(self) -> int:
        """Bytes of the Hub upload (card + shards)."""
        return sum(e["size"] for e in self.files.values())

    def summary_rows(self) -> list[list[Any]]:
        rows: list[list[Any]] = []
        for split, n in self.splits.items():
            size = sum(self.files[f]["size"] for f in self.shards[split])
            rows.append([split, n, len(self.shards[split]), _human(size)])
        return rows


def export_balanced(
    ingest_dir: Path | Mapping[str, Path],
    selection: Path | pa.Table,
    out_dir: Path,
    provenance: dict[str, Any],
    max_shard_size: str | int = "500MB",
    include_features: bool = True,
    *,
    show_summary: bool = True,
) -> ExportResult:
    """Export the selected samples as a Hub-layout dataset, a saved DatasetDict and a card.

    ``provenance`` is rendered into the card; keys it reads when present: ``scorer_id``,
    ``bin_edges``, ``targets`` (per bin), ``seed``, ``balance_config``, ``toolkit_version``
    (default ``mmcurate.__version__``), ``source`` (``{name, license, url}``; falls back to the
    ingest config's ``source``), ``pretty_name``, ``notes``. ``include_features`` exports the
    ingest's cached audio features (log-mel) when the shards hold any.

    ``ingest_dir`` may map pool names to several ingest folders (``balance --pool``): each
    selected row is then read from the folder its ``pool`` column names, and the export carries
    that column. The first folder's ingest config describes the source on the card.
    """
    out_dir = Path(out_dir)
    balanced = BalancedDir(out_dir)
    max_bytes = parse_shard_size(max_shard_size)
    pools = _open_pools(ingest_dir)
    ingest = next(iter(pools.values()))
    classes = ingest.read_classes()
    ingest_config = ingest.read_config()
    sel, sel_name = read_selection(selection)
    joined = _join_pools(sel, pools, classes, sel_name)
    with_features = include_features and _pools_have_features(pools, joined)
    features_meta = _features_metadata(ingest) if with_features else {}

    split_groups = _group_splits(joined, sel_name)
    audio_probe = []
    rates = []
    media_by_split: dict[str, pa.Table] = {}
    # counts samples (the label once said shards while it counted splits: "3/3" with one shard)
    total_rows = sum(rows.num_rows for _, rows in split_groups.values())
    with progress_bar("export: reading samples", total=total_rows) as advance:
        for hub_name, (_, rows) in split_groups.items():
            media = _media_for(pools, rows, with_features)
            media_by_split[hub_name] = media
            audio_probe.append(media["audio"])
            rates.append(pc.filter(media["audio_sample_rate"], pc.is_valid(media["audio"])))
            advance(rows.num_rows)
    audio_as_hub_type = all(audio_is_hub_encodable(a) for a in audio_probe)
    sample_rate = single_sample_rate(pa.chunked_array([c for r in rates for c in r.chunks], pa.int32()))
    features = build_features(classes, sample_rate, audio_as_hub_type, with_features, with_pool=None not in pools)

    balanced.clean_stale_staging()
    staging = balanced.new_staging_dir()
    try:
        summaries, shards, files = _write_all(
            staging, split_groups, media_by_split, features, classes, max_bytes, features_meta
        )
        toolkit_version = str(provenance.get("toolkit_version") or mmcurate.__version__)
        # what goes to the Hub names no folder of this machine (the card and its configuration)
        roots = path_roots(
            out_dir,
            {str(name or "ingest"): p.path for name, p in pools.items()},
            ingest_config.get("raw_dir"),
        )
        public_provenance = public_paths(provenance, roots)
        public_ingest = public_paths(ingest_config, roots)
        card = render_card(
            features=features,
            splits=summaries,
            download_size=sum(e["size"] for e in files.values()),
            provenance=public_provenance,
            ingest_config=public_ingest,
            toolkit_version=toolkit_version,
        )
        (staging / CARD).write_text(card, encoding="utf-8")
        files[CARD] = file_entry(staging / CARD)
        (staging / CONFIG_JSON).write_text(
            config_document(public_provenance, public_ingest, toolkit_version), encoding="utf-8"
        )
        files[CONFIG_JSON] = file_entry(staging / CONFIG_JSON)
        marker = {
            "format": EXPORT_MARKER_FORMAT,
            "toolkit_version": toolkit_version,
            "splits": {
                s.name: {"rows": s.num_examples, "selection_split": s.source_name, "shards": shards[s.name]}
                for s in summaries
            },
            "files": dict(sorted(files.items())),
            "content_hash": config_hash(files),
            "audio": "Audio" if audio_as_hub_type else "bytes",
            "audio_features": with_features,
        }
        balanced.install_export(staging, marker)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result = ExportResult(
        out_dir=out_dir,
        splits={s.name: s.num_examples for s in summaries},
        shards=shards,
        files=files,
        audio_as_hub_type=audio_as_hub_type,
        with_features=with_features,
    )
    if show_summary:
        summary_table(f"export -> {out_dir}", ["split", "rows", "shards", "bytes"], result.summary_rows())
    return result


def _open_pools(ingest_dir: Path | Mapping[str, Path]) -> dict[str | None, IngestDir]:
    """One ingest folder (key None: the selection's pool column is not consulted) or pool name -> folder."""
    if not isinstance(ingest_dir, Mapping):
        return {None: IngestDir(Path(ingest_dir)).require()}
    if not ingest_dir:
        raise MMCurateError("export: no ingest folder given")
    pools: dict[str | None, IngestDir] = {str(k): IngestDir(Path(v)).require() for k, v in ingest_dir.items()}
    first = next(iter(pools.values()))
    for other in pools.values():
        if other.read_classes() != first.read_classes():
            raise MMCurateError(
                f"pools {first.path} and {other.path} have different class lists; export pools with "
                "the same classes in the same order"
            )
    check_same_settings(pools)  # one dataset, one card: the media must be made alike
    return pools


def _join_pools(sel: pa.Table, pools: dict[str | None, IngestDir], classes: list[str], sel_name: str) -> pa.Table:
    """The selection joined with each row's own pool's manifest (one folder: with that folder's)."""
    if None in pools:
        return join_manifest(sel, pools[None], classes, sel_name)
    if "pool" not in sel.column_names or sel["pool"].null_count:
        raise MMCurateError(
            f"{sel_name}: several pools given but the selection has no pool for every row; rerun `mmcurate balance`"
        )
    unknown = sorted(set(sel["pool"].to_pylist()) - set(pools))
    if unknown:
        raise MMCurateError(
            f"{sel_name}: pool(s) {unknown[:5]} are not among the folders given ({', '.join(map(str, pools))})"
        )
    parts = [
        join_manifest(sel.filter(pc.equal(sel["pool"], name)), ingest, classes, sel_name)
        for name, ingest in pools.items()
    ]
    return pa.concat_tables(parts, promote_options="permissive")


def _pools_have_features(pools: dict[str | None, IngestDir], joined: pa.Table) -> bool:
    """Whether to export cached audio features: some selected row has them, and every pool cached
    them with the same config (rows of one column must mean the same thing)."""
    if len(pools) > 1 and len({canonical(_features_metadata(p)) for p in pools.values()}) > 1:
        return False
    for name, ingest in pools.items():
        rows = joined if name is None else joined.filter(pc.equal(joined["pool"], name))
        if rows.num_rows and ingest.any_features(rows["shard"].to_pylist()):
            return True
    return False


def canonical(meta: dict[bytes, bytes]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple(sorted(meta.items()))


def _media_for(pools: dict[str | None, IngestDir], rows: pa.Table, with_features: bool) -> pa.Table:
    """Media columns for ``rows`` in their order, each row read from its own pool's shards."""
    if None in pools:
        return pools[None].media_for(rows, with_features)
    names = rows["pool"].to_pylist()
    pieces, order = [], []
    for name, ingest in pools.items():
        idx = [i for i, n in enumerate(names) if n == name]
        if idx:
            pieces.append(ingest.media_for(rows.take(pa.array(idx, pa.int64())), with_features))
            order.extend(idx)
    combined = pa.concat_tables(pieces, promote_options="permissive").combine_chunks()
    inverse = [0] * len(order)
    for pos, i in enumerate(order):
        inverse[i] = pos
    return combined.take(pa.array(inverse, pa.int64()))


def _group_splits(joined: pa.Table, sel_name: str) -> dict[str, tuple[str, pa.Table]]:
    """Hub split name -> (selection split name, rows sorted by sample_id), in card order."""
    groups: dict[str, tuple[str, pa.Table]] = {}
    for split in sorted(set(joined["split"].to_pylist())):
        hub = hub_split_name(split)
        if hub in groups:
            raise MMCurateError(
                f"{sel_name}: splits '{groups[hub][0]}' and '{split}' would both become the Hub split '{hub}'; "
                "rename one"
            )
        rows = joined.filter(pc.equal(joined["split"], split))
        rows = rows.take(pc.sort_indices(rows, sort_keys=[("sample_id", "ascending")]))
        groups[hub] = (split, rows)
    return dict(sorted(groups.items(), key=lambda kv: (_SPLIT_ORDER.get(kv[0], 99), kv[0])))


def _write_all(
    staging: Path,
    split_groups: dict[str, tuple[str, pa.Table]],
    media_by_split: dict[str, pa.Table],
    features: Any,
    classes: list[str],
    max_bytes: int,
    features_meta: dict[bytes, bytes] | None = None,
) -> tuple[list[SplitSummary], dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Write every split's Parquet shards and its save_to_disk copy into ``staging``."""
    summaries: list[SplitSummary] = []
    shards: dict[str, list[str]] = {}
    files: dict[str, dict[str, Any]] = {}
    (staging / HF_DIR).mkdir()
    with progress_bar("export: writing splits", total=len(split_groups)) as advance:
        for hub_name, (source_name, rows) in split_groups.items():
            table = build_export_table(rows, media_by_split.pop(hub_name), features, classes)
            if features_meta:  # the cached features' config travels with them (readers use the cache only then)
                table = table.replace_schema_metadata({**(table.schema.metadata or {}), **features_meta})
            ranges = plan_shards(row_nbytes(table), max_bytes)
            paths = write_shards(table, hub_name, ranges, staging / DATA_DIR)
            rels = [f"{DATA_DIR}/{p.name}" for p in paths]
            for rel, p in zip(rels, paths, strict=True):
                files[rel] = file_entry(p)
            shards[hub_name] = rels
            fingerprint = config_hash([files[r]["sha256"] for r in rels], length=16)
            ds = Dataset(table, info=DatasetInfo(features=features), split=hub_name, fingerprint=fingerprint)
            with _quiet_datasets():
                ds.save_to_disk(str(staging / HF_DIR / hub_name), num_shards=len(ranges))
            counts = Counter(rows["bin"].to_pylist())
            summaries.append(
                SplitSummary(
                    name=hub_name,
                    source_name=source_name,
                    num_examples=table.num_rows,
                    num_bytes=table.nbytes,
                    bin_counts=dict(sorted(counts.items())),
                )
            )
            advance()
    (staging / HF_DIR / "dataset_dict.json").write_text(json.dumps({"splits": list(shards)}), encoding="utf-8")
    return summaries, shards, files


def _features_metadata(ingest: IngestDir) -> dict[bytes, bytes]:
    """Schema metadata naming the config of the exported ``audio_features`` (as ``read_shards`` records it)."""
    from mmcurate.common.hashing import canonical_json
    from mmcurate.data.shards import FEATURES_METADATA_KEY, ingest_features_config

    try:
        cfg = ingest_features_config(ingest.path)
    except MMCurateError:  # a cache whose config is unknown is never used in place of the audio
        return {}
    return {} if cfg is None else {FEATURES_METADATA_KEY: canonical_json(cfg.to_dict()).encode()}


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Silence ``datasets``' own tqdm bars: the export shows one progress bar of its own."""
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
