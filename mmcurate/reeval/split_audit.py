"""What the splits allow a reader to conclude: group overlap between splits, and splits too small to use.

A test split that shares speakers (or source videos) with train measures memorised voices as much as
the method; ``results.md`` states exactly whether test is group-disjoint, by which key, and how many
groups cross. A validation split of a handful of clips cannot choose a checkpoint and a test split
of a handful cannot tell methods apart: the run warns at its start, and the report repeats it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmcurate.reeval.data import ReevalData, SplitData
from mmcurate.reeval.stats import MIN_SPLIT, wilson_half_width

#: ingest layouts and the group their adapter records (mmcurate.recipes)
LAYOUT_GROUPS: dict[str, str] = {"cremad": "actor", "vggsound": "youtube_id", "kinetics_sounds": "youtube_id"}


def _groups(split: SplitData) -> set[str]:
    return {g for g in (split.groups or []) if g is not None}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _find(node: Any, key: str) -> str | None:
    """The first non-empty string stored under ``key`` anywhere in a JSON document."""
    if isinstance(node, dict):
        value = node.get(key)
        if isinstance(value, str) and value:
            return value
        node = list(node.values())
    if isinstance(node, list):
        for value in node:
            found = _find(value, key)
            if found:
                return found
    return None


def group_key_name(data: ReevalData) -> str | None:
    """The name of the column the groups came from (e.g. ``speaker``), where the source records it.

    The ingest records its ``--group-column`` (or the layout whose adapter fills the group) in its
    ``config.json``; a balanced export names its ingest folder in ``balance.json`` (``ingest_dir``),
    or carries the ingest settings there. None when unknown (the column is then ``group``).
    """
    docs: list[Any] = []
    source = Path(data.source)
    if data.source_kind == "ingest":
        docs.append(_read_json(source / "config.json"))
    elif data.source_kind == "balanced":
        balance = _read_json(source / "balance.json")
        docs.append(balance)
        ingest_dir = _find(balance, "ingest_dir")
        if ingest_dir:
            docs.insert(0, _read_json(Path(ingest_dir) / "config.json"))
    for doc in docs:
        column = _find(doc, "group_column")
        if column:
            return column
    for doc in docs:
        layout = _find(doc, "layout")
        if layout in LAYOUT_GROUPS:
            return LAYOUT_GROUPS[layout]
    return None


def group_statement(data: ReevalData) -> dict[str, Any]:
    """Whether test is group-disjoint from train and validation, by which key, with the counts."""
    test, train, val = _groups(data.test), _groups(data.train), _groups(data.val)
    known = bool(test or train or val)
    key = group_key_name(data) if known else None
    shared_train, shared_val = sorted(test & train), sorted(test & val)
    ungrouped_test = sum(g is None for g in (data.test.groups or [None] * len(data.test)))
    doc: dict[str, Any] = {
        "groups_known": known,
        "key": key,
        "test_groups": len(test),
        "test_groups_in_train": len(shared_train),
        "test_groups_in_val": len(shared_val),
        "test_clips_without_group": int(ungrouped_test) if known else len(data.test),
        "disjoint": known and not shared_train and not shared_val and ungrouped_test == 0,
    }
    doc["text"] = _group_text(doc)
    return doc


def _group_text(doc: dict[str, Any]) -> str:
    if not doc["groups_known"]:
        return (
            "Groups: the source records none (no speaker, actor or video column), so nothing shows whether test "
            "shares a speaker or source video with train; if it does, accuracies are optimistic."
        )
    key = f"`{doc['key']}`" if doc["key"] else "the source's `group` column"
    crossing = doc["test_groups_in_train"] + doc["test_groups_in_val"]
    if doc["disjoint"]:
        return (
            f"Groups: test is group-disjoint from train and validation by {key}: its {doc['test_groups']} "
            f"group(s) appear in no other split."
        )
    parts = []
    if crossing:
        parts.append(
            f"{doc['test_groups_in_train']} of its {doc['test_groups']} group(s) also appear in train and "
            f"{doc['test_groups_in_val']} in validation"
        )
    if doc["test_clips_without_group"]:
        parts.append(f"{doc['test_clips_without_group']} test clip(s) have no group")
    return (
        f"Groups: test is **not** group-disjoint by {key}: {'; '.join(parts)}. Accuracies on test partly measure "
        "memorised groups (for example known speakers) and are optimistic."
    )


def small_split_warnings(data: ReevalData) -> list[str]:
    """One line per validation or test split too small to choose a checkpoint or compare methods."""
    out = []
    for name, role in (("val", "choose each run's checkpoint"), ("test", "tell methods apart")):
        n = len(data.split(name))
        if n < MIN_SPLIT:
            half = 100 * wilson_half_width(n)
            out.append(
                f"the {'validation' if name == 'val' else 'test'} split holds {n} clip(s): one run's accuracy on it "
                f"has a 95 % interval about +-{half:.0f} points wide, too wide to {role}; use at least {MIN_SPLIT} "
                "(more data, or a balance with a larger split share)"
            )
    return out
