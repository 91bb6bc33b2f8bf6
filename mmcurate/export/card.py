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
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from datasets import DatasetInfo, Features, SplitDict, SplitInfo

from mmcurate.common.public_paths import public_paths
from mmcurate.store.balanced_dir import BalancedDir
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
    """The full README.md text. It is published: every path in it is made relative to the raw folder, never
    the machine's (:mod:`mmcurate.common.public_paths`, which the export has applied already)."""
    raw_dir = ingest_config.get("raw_dir") if isinstance(ingest_config.get("raw_dir"), str) else None
    provenance, ingest_config = public_paths(dict(provenance), raw_dir), public_paths(dict(ingest_config), raw_dir)
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
    """The page a reader reads: what the set is, how it was made, its splits and bins, how good the
    scorers were, its limits and how to cite it. The full configuration is in :data:`CONFIG_JSON`."""
    total = sum(s.num_examples for s in splits)
    edges = provenance.get("bin_edges")
    n_bins = len(edges) - 1 if edges else None
    lines = [f"# {pretty}", ""]
    lines += [
        f"{total} audio-visual clips from {_cell(src.get('name', 'its source dataset'))}, selected so that the "
        f"modality discrepancy spreads evenly over {n_bins or 'its'} bins: the set is neither audio- nor "
        "visual-dominated. A clip's discrepancy is `d = p_audio - p_visual`, the out-of-fold confidence of an "
        "audio-only and of a visual-only classifier in the true class. Use it to study modality imbalance "
        "(per bin, per preferred modality) and to re-evaluate imbalance methods on a set where both modalities "
        "matter. The clips keep the licence of their source.",
        "",
    ]
    if any(pool.get("scores") == "candidates" for pool in (provenance.get("pools") or {}).values()):
        lines += [
            "Some clips were added to fill the bins: their scores are **not out-of-fold** (scorers trained on the "
            "whole seed pool, which never saw those clips; the `pool` column says where each clip came from).",
            "",
        ]
    lines += ["## How it was made", "", *_commands(provenance, ingest_config), ""]
    lines += ["| | |", "|---|---|"]
    lines.append(
        f"| source | {_cell(src.get('name', 'unknown'))}, licence {_cell(src.get('license', 'unknown'))} "
        f"(`{licence_id}`) |"
    )
    if src.get("url"):
        lines.append(f"| source url | {_cell(src['url'])} |")
    lines += [
        f"| toolkit | mmcurate {toolkit_version} |",
        f"| seed | {_cell(provenance.get('seed', 'unknown'))} |",
        f"| scorer id | `{_cell(provenance.get('scorer_id', 'unknown'))}` |",
    ]
    if edges is not None:
        lines.append(f"| bin edges | {_cell(', '.join(_num(e) for e in edges))} |")
    targets = provenance.get("targets")
    if targets is not None:
        lines.append(f"| clips per bin | {_cell(_targets_text(targets))} |")
    if provenance.get("max_discrepancy_std") is not None:
        lines.append(
            f"| left out as bin-uncertain | {_cell(provenance.get('uncertain_left_out'))} samples with "
            f"discrepancy_std above {_num(provenance['max_discrepancy_std'])} |"
        )
    if provenance.get("excluded"):
        lines.append(
            f"| left out by hand | {_cell(provenance['excluded'])} clips listed in "
            f"`{_cell(provenance.get('exclude_file', '--exclude'))}` (ids in `{CONFIG_JSON}`) |"
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
    labels = {b: _bin_range(edges, b) for b in bins}
    lines.append("| split | rows | " + " | ".join(f"bin {b} {labels[b]}".strip() for b in bins) + " |")
    lines.append("|---|---|" + "---|" * len(bins))
    for s in splits:
        label = s.name if s.name == s.source_name else f"{s.name} (`{s.source_name}` in the selection)"
        lines.append(f"| {label} | {s.num_examples} | " + " | ".join(str(s.bin_counts.get(b, 0)) for b in bins) + " |")
    lines += ["", *_scorer_section(provenance.get("scorer_health"))]
    lines += ["## Columns", ""]
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
        "## Limitations and biases",
        "",
        *_limitations(provenance, splits),
        "",
        "## Citation",
        "",
        *_citation(pretty, src, toolkit_version),
        "",
        "## Full configuration",
        "",
        f"`{CONFIG_JSON}` next to this card holds the resolved balance settings and summary, the scorer settings "
        "and the ingest configuration (paths relative to the work directory; `<raw>` is the source folder).",
        "",
    ]
    return "\n".join(lines)


#: the machine-readable record next to the card: everything the card summarises, valid JSON
CONFIG_JSON = BalancedDir.CONFIG_JSON


def config_document(provenance: Mapping[str, Any], ingest_config: Mapping[str, Any], toolkit_version: str) -> str:
    """``mmcurate_config.json``: strict JSON (NaN and infinities become null), sorted keys."""
    doc = {"toolkit_version": toolkit_version, "balance": provenance, "ingest": ingest_config}
    return json.dumps(_finite(_jsonable(doc)), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _bin_range(edges: Any, b: int) -> str:
    if not edges or b + 1 >= len(edges):
        return ""
    return f"[{_num(float(edges[b]), 2)}, {_num(float(edges[b + 1]), 2)}{']' if b + 2 == len(edges) else ')'}"


def _commands(provenance: Mapping[str, Any], ingest_config: Mapping[str, Any]) -> list[str]:
    """The three commands that made the set, with the settings that differ from the defaults."""
    ident = ingest_config.get("identity") or {}
    icfg = ident.get("config") or {}
    ingest = ["mmcurate ingest RAW_DIR"]
    if ident.get("layout") and ident.get("layout") != "folders":
        ingest.append(f"--layout {ident['layout']}")
    if ident.get("manifest"):
        ingest.append(f"--manifest {Path(str(ident['manifest'])).name}")
    if ident.get("group_column"):
        ingest.append(f"--group-column {ident['group_column']}")
    for key in ("frames", "fps", "size", "sample_rate", "features"):
        if icfg.get(key) is not None:
            ingest.append(f"--{key.replace('_', '-')} {icfg[key]}")
    scorer = provenance.get("scorer") or {}
    scfg = scorer.get("config") or {}
    if scorer.get("source") == "imported":
        score = "mmcurate score --scores-from FILE   # scores imported, not made by mmcurate"
    else:
        flags = [f"--{k.replace('_', '-')} {scfg[k]}" for k in ("folds", "epochs", "width", "image_size") if k in scfg]
        score = " ".join(["mmcurate score", *flags])
    bcfg = provenance.get("balance_config") or {}
    balance = ["mmcurate balance", f"--bins {bcfg.get('bins_requested') or bcfg.get('bins', '?')}"]
    defaults = {"shortfall": "ask", "stratify": "label", "split": "80/10/10", "ignore_groups": False}
    if bcfg.get("edges"):
        balance.append("--edges " + ",".join(_num(e) for e in bcfg["edges"]))
    for key in ("per_bin", "size", "max_discrepancy_std"):
        if bcfg.get(key) is not None:
            balance.append(f"--{key.replace('_', '-')} {bcfg[key]}")
    for key, default in defaults.items():
        if key in bcfg and bcfg[key] != default:
            balance.append(f"--{key.replace('_', '-')}" + ("" if isinstance(default, bool) else f" {bcfg[key]}"))
    if bcfg.get("exclude"):
        balance.append(f"--exclude {Path(str(bcfg['exclude'])).name}")
    balance.append(f"--seed {bcfg.get('seed', provenance.get('seed', 0))}")
    return ["```sh", " ".join(ingest), score, " ".join(balance), "```"]


def _scorer_section(health: Mapping[str, Any] | None) -> list[str]:
    """Each scorer's accuracy against chance: a discrepancy from scorers at chance is noise."""
    mods = (health or {}).get("modalities") or {}
    rows = [(m, v) for m, v in mods.items() if isinstance(v, Mapping) and v.get("accuracy") is not None]
    if not rows:
        return []
    out = ["## Scorer accuracy", ""]
    out += ["| modality | accuracy | 95 % interval | chance | above chance |", "|---|---:|---|---:|---|"]
    for m, v in rows:
        interval = v.get("interval")
        span = f"{float(interval[0]):.1%} - {float(interval[1]):.1%}" if interval else "n/a"
        chance = v.get("chance", health.get("chance")) if health else None
        above = "yes" if v.get("above_chance") else "**no**"
        out.append(f"| {m} | {float(v['accuracy']):.1%} | {span} | {_pct(chance)} | {above} |")
    out.append("")
    status = health.get("status") if health else None
    origin = "`mmcurate score`'s health check" if status else "the scores table (true class and each prediction)"
    out.append(
        f"Out-of-fold accuracy of each unimodal scorer, from {origin}"
        + (f"; status **{status}**." if status else "; chance is the majority-class rate.")
    )
    both = (health or {}).get("both_weak")
    if isinstance(both, Mapping) and both.get("count") is not None:
        out.append(
            f"{both['count']} clips are weak for both scorers (confidence below {_num(both.get('threshold'))} in "
            "each): their discrepancy says little about which modality is stronger."
        )
    return [*out, ""]


def _pct(x: Any) -> str:
    return f"{float(x):.1%}" if isinstance(x, (int, float)) else "n/a"


def _limitations(provenance: Mapping[str, Any], splits: Sequence[SplitSummary]) -> list[str]:
    out = [
        "- The discrepancy is measured by two particular scorers (architecture, input size, seed): other models "
        "may rank the same clips differently, and a clip near a bin edge may belong to the next bin.",
        "- Within a bin, classes are spread as evenly as the pool allowed, not exactly; rare classes may be "
        "missing from some bins.",
        "- The biases of the source (who recorded it, where, which classes) carry over; balancing the "
        "discrepancy does not remove them.",
    ]
    small = [
        f"{s.name} bin {b}: {n}"
        for s in splits
        if s.source_name in ("val", "test", "validation")
        for b, n in sorted(s.bin_counts.items())
        if n < 10
    ]
    if small:
        out.append(
            f"- Some evaluation bins hold fewer than 10 clips ({', '.join(small[:6])}"
            f"{', ...' if len(small) > 6 else ''}): per-bin results on them are noisy."
        )
    health = provenance.get("scorer_health") or {}
    weak = [
        m
        for m, v in (health.get("modalities") or {}).items()
        if isinstance(v, Mapping) and v.get("above_chance") is False
    ]
    if weak:
        out.append(
            f"- The {' and '.join(weak)} scorer is not above chance: the discrepancy of this set is largely noise."
        )
    return out


def _citation(pretty: str, src: Mapping[str, Any], toolkit_version: str) -> list[str]:
    key = re.sub(r"[^a-z0-9]+", "_", pretty.lower()).strip("_") or "dataset"
    out = [
        "Cite the source dataset, and this subset as:",
        "",
        "```bibtex",
        f"@misc{{{key},",
        f"  title = {{{pretty}}},",
        f"  note = {{Modality-balanced subset of {src.get('name', 'its source')}, built with mmcurate "
        f"{toolkit_version}}},",
        "}",
        "```",
    ]
    if src.get("citation"):
        out += ["", "Source:", "", "```bibtex", str(src["citation"]).strip(), "```"]
    return out


def _scores_text(pool: Mapping[str, Any]) -> str:
    if pool.get("scores") == "oof":
        return "out-of-fold"
    if pool.get("scores") == "candidates":
        return "candidates, not out-of-fold (a fold ensemble that never saw these clips)"
    return str(pool.get("scores"))


def _targets_text(targets: Any) -> str:
    if isinstance(targets, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in sorted(targets.items(), key=lambda kv: str(kv[0])))
    if isinstance(targets, Sequence) and not isinstance(targets, str):
        return ", ".join(str(t) for t in targets)
    return str(targets)


def _num(x: Any, digits: int = 4) -> str:
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _cell(x: Any) -> str:
    return " ".join(str(x).split()).replace("|", "\\|")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
