"""The dataset card: ``README.md`` with the Hub's YAML header and a provenance section.

The YAML header is what the Hub and ``load_dataset`` read (``configs`` maps splits to shard
globs, ``dataset_info`` carries the features so ClassLabel names survive); the body is for people:
where the clips came from and under which licence, which scorer measured discrepancy, the bin
edges and per-bin targets, the seed, the toolkit version and the resolved config, so that anyone
can tell how the set was made and rebuild it. The text depends only on its inputs (no dates),
so two exports of the same inputs write the same card.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from datasets import DatasetInfo, Features, SplitDict, SplitInfo

from mmcurate.store.schemas import EXPORT_COLUMNS

#: Licence identifiers the Hub accepts in a card's ``license`` field (the ones sources here use).
HUB_LICENSES = frozenset(
    {
        "apache-2.0",
        "mit",
        "bsd-3-clause",
        "cc0-1.0",
        "cc-by-2.0",
        "cc-by-3.0",
        "cc-by-4.0",
        "cc-by-sa-3.0",
        "cc-by-sa-4.0",
        "cc-by-nc-3.0",
        "cc-by-nc-4.0",
        "cc-by-nc-sa-3.0",
        "cc-by-nc-sa-4.0",
        "cc-by-nd-4.0",
        "cc-by-nc-nd-4.0",
        "odc-by",
        "odbl",
        "pddl",
        "gpl-3.0",
        "lgpl-3.0",
        "unknown",
        "other",
    }
)

#: What each column means, for people reading the card.
COLUMN_TEXT = {
    "sample_id": "stable id: the source file's path relative to the raw folder, plus `#start-end` for a segment",
    "label": "class (ClassLabel; the names are in the YAML header)",
    "frames": "video frames in time order, JPEG images",
    "audio": (
        "mono audio (FLAC, the Hub's Audio type; plain bytes where not a decodable container); "
        "null when the clip had none"
    ),
    "audio_sample_rate": "sample rate of `audio`",
    "audio_features": "cached audio features from ingest (e.g. log-mel), bins x time, float16",
    "p_audio": "out-of-fold probability an audio-only classifier gives the true class",
    "p_visual": "out-of-fold probability a visual-only classifier gives the true class",
    "discrepancy": "`p_audio - p_visual`, in [-1, 1]; positive where audio is the stronger modality",
    "bin": "discrepancy bin, 0 = most visual-preferred (edges above)",
    "split": "split as named in the mmcurate selection",
    "path": "source file, relative to the raw folder",
    "sha256": "sha256 of the source file",
    "pool": "the scored ingest folder (pool) the clip was sampled from, named in the pool rows above",
}

_SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)


@dataclass(frozen=True)
class SplitSummary:
    """What the card says about one Hub split."""

    name: str  # Hub split name (validation, not val)
    source_name: str  # the selection's split value
    num_examples: int
    num_bytes: int  # in-memory Arrow bytes, as datasets reports them
    bin_counts: Mapping[int, int]


def normalize_license(text: str | None) -> str:
    """``"CC BY-SA 4.0"`` -> ``"cc-by-sa-4.0"``; anything the Hub does not list -> ``"other"``."""
    if not text:
        return "unknown"
    key = re.sub(r"[\s_]+", "-", text.strip().lower())
    key = key.replace("cc-zero", "cc0").replace("creative-commons", "cc")
    return key if key in HUB_LICENSES else "other"


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` bucket for a row count."""
    for bound, name in _SIZE_CATEGORIES:
        if num_rows < bound:
            return name
    return "n>1B"


def source_info(provenance: Mapping[str, Any], ingest_config: Mapping[str, Any]) -> dict[str, Any]:
    """Source dataset name, licence and url: from the provenance, else the ingest config."""
    src: dict[str, Any] = {}
    for candidate in (ingest_config.get("source"), provenance.get("source")):
        if isinstance(candidate, Mapping):
            src.update({k: v for k, v in candidate.items() if v is not None})
        elif isinstance(candidate, str) and candidate:
            src["name"] = candidate
    for key, field in (("source_dataset", "name"), ("source_license", "license"), ("source_url", "url")):
        if provenance.get(key):
            src[field] = provenance[key]
    return src


def render_card(
    *,
    features: Features,
    splits: Sequence[SplitSummary],
    download_size: int,
    provenance: Mapping[str, Any],
    ingest_config: Mapping[str, Any],
    toolkit_version: str,
) -> str:
    """The full README.md text."""
    src = source_info(provenance, ingest_config)
    licence_id = normalize_license(src.get("license"))
    total = sum(s.num_examples for s in splits)
    pretty = str(provenance.get("pretty_name") or f"{src.get('name', 'audio-visual clips')} (modality-balanced)")
    header: dict[str, Any] = {"pretty_name": pretty, "license": licence_id}
    if licence_id == "other":
        header["license_name"] = (
            re.sub(r"[^a-z0-9-]+", "-", str(src.get("license", "see-card")).lower()).strip("-") or "see-card"
        )
        if src.get("license_url") or src.get("url"):
            header["license_link"] = str(src.get("license_url") or src.get("url"))
    header["task_categories"] = ["audio-classification", "video-classification"]
    header["size_categories"] = [size_category(total)]
    header["source_datasets"] = [f"extended|{src['name']}"] if src.get("name") else ["original"]
    header["tags"] = ["audio-visual", "multimodal", "modality-imbalance", "mmcurate"]
    header["configs"] = [
        {
            "config_name": "default",
            "data_files": [{"split": s.name, "path": f"data/{s.name}-*"} for s in splits],
        }
    ]
    split_dict = SplitDict()
    for s in splits:
        split_dict.add(SplitInfo(name=s.name, num_bytes=s.num_bytes, num_examples=s.num_examples))
    info = DatasetInfo(
        features=features,
        splits=split_dict,
        download_size=download_size,
        dataset_size=sum(s.num_bytes for s in splits),
    )
    header["dataset_info"] = info._to_yaml_dict()
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000)
    return (
        f"---\n{front}---\n\n"
        f"{_body(pretty, src, licence_id, features, splits, provenance, ingest_config, toolkit_version)}"
    )


def _body(
    pretty: str,
    src: Mapping[str, Any],
    licence_id: str,
    features: Features,
    splits: Sequence[SplitSummary],
    provenance: Mapping[str, Any],
    ingest_config: Mapping[str, Any],
    toolkit_version: str,
) -> str:
    lines = [f"# {pretty}", ""]
    lines += [
        f"A modality-balanced audio-visual subset of {_cell(src.get('name', 'its source dataset'))}, built with "
        f"mmcurate {toolkit_version}. Each clip's modality discrepancy is `d = p_audio - p_visual`: the "
        "out-of-fold confidence of an audio-only and of a visual-only classifier in the true class. Clips were "
        "sampled so that `d` spreads evenly over the bins below, so the set is neither audio- nor "
        "visual-dominated. The clips keep the licence of their source.",
        "",
    ]
    if any(pool.get("scores") == "candidates" for pool in (provenance.get("pools") or {}).values()):
        lines += [
            "Some clips were added to fill the bins: their scores are **not out-of-fold**. They come from scorers "
            "trained on the whole seed pool, models that never saw those clips, with the seed pool's out-of-fold "
            "calibration (the `pool` column says which pool each clip came from; see the pool rows below).",
            "",
        ]
    lines += [
        "## Provenance",
        "",
        "| | |",
        "|---|---|",
        f"| source dataset | {_cell(src.get('name', 'unknown'))} |",
        f"| source licence | {_cell(src.get('license', 'unknown'))} (`{licence_id}`) |",
    ]
    if src.get("url"):
        lines.append(f"| source url | {_cell(src['url'])} |")
    lines += [
        f"| scorer id | `{_cell(provenance.get('scorer_id', 'unknown'))}` |",
        f"| seed | {_cell(provenance.get('seed', 'unknown'))} |",
        f"| toolkit | mmcurate {toolkit_version} |",
    ]
    edges = provenance.get("bin_edges")
    if edges is not None:
        lines.append(f"| bin edges | {_cell(', '.join(_num(e) for e in edges))} |")
    targets = provenance.get("targets")
    if targets is not None:
        lines.append(f"| per-bin targets | {_cell(_targets_text(targets))} |")
    if provenance.get("max_discrepancy_std") is not None:
        lines.append(
            f"| left out as bin-uncertain | {_cell(provenance.get('uncertain_left_out'))} samples with "
            f"discrepancy_std above {_num(provenance['max_discrepancy_std'])} |"
        )
    for name, pool in (provenance.get("pools") or {}).items():
        lines.append(
            f"| pool `{_cell(name)}` | {_cell(pool.get('selected'))} of {_cell(pool.get('pool_size'))} clips; "
            f"scores: {_cell(_scores_text(pool))} |"
        )
    if provenance.get("notes"):
        lines.append(f"| notes | {_cell(provenance['notes'])} |")
    lines += ["", "## Splits and bins", ""]
    bins = sorted({b for s in splits for b in s.bin_counts})
    lines.append("| split | rows | " + " | ".join(f"bin {b}" for b in bins) + " |")
    lines.append("|---|---|" + "---|" * len(bins))
    for s in splits:
        label = s.name if s.name == s.source_name else f"{s.name} (`{s.source_name}` in the selection)"
        lines.append(f"| {label} | {s.num_examples} | " + " | ".join(str(s.bin_counts.get(b, 0)) for b in bins) + " |")
    lines += ["", "## Columns", ""]
    for name in features:
        lines.append(f"- `{name}`: {COLUMN_TEXT.get(name) or EXPORT_COLUMNS.get(name, '')}")
    lines += [
        "",
        "## Loading",
        "",
        "```python",
        "import io, soundfile",
        "from datasets import load_dataset",
        'ds = load_dataset("ORG/NAME")  # or load_dataset("parquet", data_dir="<export>/data")',
        'row = ds["train"][0]  # audio: {"bytes": <FLAC>, "path": ...}; decoding needs no torchcodec',
        'samples, rate = soundfile.read(io.BytesIO(row["audio"]["bytes"]))',
        "```",
        "",
        "## Resolved configuration",
        "",
        "Balance provenance:",
        "",
        "```json",
        json.dumps(_jsonable(provenance), indent=2, sort_keys=True, default=str),
        "```",
        "",
        "Ingest configuration:",
        "",
        "```json",
        json.dumps(_jsonable(ingest_config), indent=2, sort_keys=True, default=str),
        "```",
        "",
    ]
    return "\n".join(lines)


def _scores_text(pool: Mapping[str, Any]) -> str:
    if pool.get("scores") == "oof":
        return "out-of-fold"
    if pool.get("scores") == "candidates":
        return "candidates, not out-of-fold (whole-set scorers that never saw these clips)"
    return str(pool.get("scores"))


def _targets_text(targets: Any) -> str:
    if isinstance(targets, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in sorted(targets.items(), key=lambda kv: str(kv[0])))
    if isinstance(targets, Sequence) and not isinstance(targets, str):
        return ", ".join(str(t) for t in targets)
    return str(targets)


def _num(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _cell(x: Any) -> str:
    return " ".join(str(x).split()).replace("|", "\\|")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
