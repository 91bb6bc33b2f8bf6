"""The page's data: a compact index of every sample, and the card details in small chunks.

The index (``data/index.js``, loaded with the page) holds per sample only what filtering, the
plots and the per-class table need, as base64 typed arrays: class, split, balanced bin,
preferred modality, d-histogram bin and (p_visual, p_audio) density cell, about 9 bytes a
sample. The histogram bin and density cell are computed here, with the same edges the page
draws, so a click in the page maps to exactly the samples counted in that bar or cell.

Samples are ordered by d (then sample_id) when scored, by sample_id otherwise; that order is
both "sort by d" and the chunk order, so the samples of a histogram bin, a density cell or a
page sorted by d sit in few consecutive chunks. Card details (``data/chunks/cK.js``, one
``MMB.chunk(K, rows)`` call each) are loaded with ``<script>`` tags when a page shows them:
Chromium refuses ``fetch()`` of local files from a ``file://`` page, but runs local scripts.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmcurate.browse.sources import BrowseSource
from mmcurate.common.errors import MMCurateError
from mmcurate.common.public_paths import public_path
from mmcurate.store.bins import assign_bins, bin_label
from mmcurate.store.scores_health import health_line, load_health

#: Fields of one card row in a chunk, in order (the page reads them by name through this list).
CARD_FIELDS = (
    "id",
    "path",
    "segment",
    "duration",
    "p_audio",
    "p_visual",
    "d",
    "d_std",
    "pred_audio",
    "pred_visual",
    "fold",
    "frames",
    "audio",
    "has_audio",
)
#: Code for "no value" in the index's unsigned columns.
NONE_U8, NONE_U16 = 255, 65535
#: Preferred modality codes in the index (and the page's filter).
PREFERRED = ("visual", "tie", "audio")
_SPLIT_ORDER = ("train", "val", "validation", "test")
NO_SPLIT = "(none)"

#: (sample_id -> (frame files, audio file or None)), relative to the site folder.
MediaMap = dict[str, tuple[list[str], str | None]]


@dataclass(frozen=True)
class SiteData:
    """What :func:`build_index` returns: the index object and the card rows in index order."""

    index: dict[str, Any]
    cards: list[list[Any]]

    def ids(self) -> list[str]:
        """Sample ids in index order (``data/ids.js``, loaded on the first search)."""
        return [row[0] for row in self.cards]

    def chunks(self) -> list[list[list[Any]]]:
        size = int(self.index["chunk_size"])
        return [self.cards[k : k + size] for k in range(0, len(self.cards), size)]


def build_index(
    src: BrowseSource,
    media: MediaMap | None,
    *,
    hist_bins: int = 20,
    grid: int = 25,
    page_size: int = 48,
    chunk_size: int = 16,
) -> SiteData:
    """The index and card rows of ``src`` (``media`` names each sample's files, None: no media)."""
    t = src.samples
    n = t.num_rows
    scored = src.scored
    d = _floats(t, "discrepancy", n)
    p_audio = _floats(t, "p_audio", n)
    p_visual = _floats(t, "p_visual", n)
    has_d = ~np.isnan(d)
    order = np.lexsort((np.arange(n), np.where(has_d, d, 0.0), ~has_d)) if scored else np.arange(n)

    class_of = {c: k for k, c in enumerate(src.classes)}
    labels = _codes([class_of[x] for x in t.column("label").to_pylist()], len(src.classes), "classes")
    split_values = t.column("split").to_pylist()
    splits = _split_vocabulary(split_values)
    split_of = {s: k for k, s in enumerate(splits)}
    split_codes = _codes([split_of[NO_SPLIT if s is None else s] for s in split_values], len(splits), "split names")
    columns: dict[str, np.ndarray] = {"label": labels, "split": split_codes}

    bins_meta = None
    if "bin" in t.column_names:
        b = np.asarray([NONE_U16 if x is None else int(x) for x in t.column("bin").to_pylist()], dtype=np.int64)
        columns["bin"] = b.astype("<u2")
        nb = int(b[b != NONE_U16].max()) + 1 if (b != NONE_U16).any() else 0
        if src.bin_edges and len(src.bin_edges) - 1 >= nb:
            nb = len(src.bin_edges) - 1
            bins_meta = [bin_label(src.bin_edges, k) for k in range(nb)]
        else:
            bins_meta = [f"bin {k}" for k in range(nb)]

    if src.bin_edges and len(src.bin_edges) >= 2:  # the balance's own bins: a bar is a bin of the set
        hist_edges = np.asarray(src.bin_edges, dtype=float)
        hist = assign_bins(d, hist_edges)
    else:
        hist_edges, hist = equal_bins(d, -1.0, 1.0, hist_bins)
    if scored:
        columns["pref"] = _preferred(t, d, has_d)
        columns["hist"] = np.where(hist >= 0, hist, NONE_U8).astype("<u1")
        _, cx = equal_bins(p_visual, 0.0, 1.0, grid)
        _, cy = equal_bins(p_audio, 0.0, 1.0, grid)
        columns["cell"] = np.where((cx >= 0) & (cy >= 0), cx * grid + cy, NONE_U16).astype("<u2")
    if "both_weak" in t.column_names:  # clips neither scorer gets right (mmcurate score's health check)
        columns["weak"] = np.asarray([1 if x else 0 for x in t.column("both_weak").to_pylist()], dtype="<u1")

    d_std = _floats(t, "discrepancy_std", n) if "discrepancy_std" in t.column_names else None
    cols = _card_columns(t)
    cards = [_card(cols, i, src.raw_dir, media, d, p_audio, p_visual, d_std) for i in order.tolist()]
    index = {
        "version": 1,
        "kind": src.kind,
        "title": folder_title(src.folder),
        "folder": folder_title(src.folder),  # a shared page names folders, never the machine's paths
        "ingest_dir": folder_title(src.ingest_dir),
        "hist_from_balance": bool(src.bin_edges),
        "health": health_line(load_health(src.ingest_dir)),
        "links": [],
        "scorer_id": src.scorer_id,
        "n": n,
        "classes": src.classes,
        "splits": splits,
        "bins": bins_meta,
        "hist_edges": [round(float(e), 6) for e in hist_edges],
        "grid": grid,
        "page_size": page_size,
        "chunk_size": chunk_size,
        "fields": list(CARD_FIELDS),
        "preferred": list(PREFERRED),
        "has_scores": scored,
        "has_std": d_std is not None and bool((~np.isnan(d_std)).any()),
        "has_media": media is not None,
        "notes": list(src.notes),
        "columns": {name: _b64_column(col[order]) for name, col in columns.items()},
    }
    return SiteData(index, cards)


def js_call(function: str, *args: Any) -> str:
    """``function(args...);`` with each argument as JSON that is safe anywhere in a page.

    ``<``, ``>`` and ``&`` are written as ``\\u003c`` etc., so no string from the data (a label or
    path holding ``</script>``) can end a script element or be read as markup.
    """
    parts = [json.dumps(a, ensure_ascii=True, separators=(",", ":"), allow_nan=False) for a in args]
    text = f"{function}({','.join(parts)});\n"
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def folder_title(folder: Path) -> str:
    """The folder's last two names (``mmcurate-work/balanced``): the last alone rarely says which set."""
    parts = folder.resolve().parts
    return "/".join(parts[-2:]) if len(parts) > 1 else str(folder)


def _card(
    cols: dict[str, list[Any]],
    i: int,
    raw_dir: str | None,
    media: MediaMap | None,
    d: np.ndarray,
    p_audio: np.ndarray,
    p_visual: np.ndarray,
    d_std: np.ndarray | None,
) -> list[Any]:
    sid = cols["sample_id"][i]
    path = cols["path"][i]
    full = public_path(path, raw_dir) if path else path  # relative to the raw folder, never the machine's
    start, end = cols["start"][i], cols["end"][i]
    frames, audio = (media or {}).get(sid, ([], None))
    row = {
        "id": sid,
        "path": full,
        "segment": [_round(start), _round(end)] if start is not None and end is not None else None,
        "duration": _round(cols["duration"][i]),
        "p_audio": _round(p_audio[i]),
        "p_visual": _round(p_visual[i]),
        "d": _round(d[i]),
        "d_std": _round(d_std[i]) if d_std is not None else None,
        "pred_audio": cols["pred_audio"][i],
        "pred_visual": cols["pred_visual"][i],
        "fold": cols["fold"][i],
        "frames": frames,
        "audio": audio,
        "has_audio": cols["has_audio"][i],
    }
    return [row[f] for f in CARD_FIELDS]


def _preferred(t: Any, d: np.ndarray, has_d: np.ndarray) -> np.ndarray:
    """The scores' ``preferred`` column where given, else the sign of d (the schema's rule)."""
    given = t.column("preferred").to_pylist() if "preferred" in t.column_names else [None] * len(d)
    out = np.full(len(d), NONE_U8, dtype="<u1")
    for i, (p, ok) in enumerate(zip(given, has_d.tolist(), strict=True)):
        if p in PREFERRED:
            out[i] = PREFERRED.index(p)
        elif ok:
            out[i] = 2 if d[i] > 0 else 0 if d[i] < 0 else 1
    return out


def equal_bins(values: np.ndarray, lo: float, hi: float, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(edges, bin per value) for ``count`` equal-width bins over [lo, hi], by the one binning rule
    (:func:`mmcurate.store.bins.assign_bins`, numpy.histogram's, as ``mmcurate report`` plots); -1 outside."""
    edges = np.linspace(lo, hi, count + 1)
    return edges, assign_bins(values, edges)


def _codes(values: list[int], count: int, what: str) -> np.ndarray:
    """Codes as the smallest unsigned type the page decodes (u1, else u2)."""
    if count > NONE_U16:
        raise MMCurateError(f"{count} {what}: the browser handles at most {NONE_U16}")
    return np.asarray(values, dtype="<u1" if count <= 256 else "<u2")


def _split_vocabulary(values: list[str | None]) -> list[str]:
    present = {NO_SPLIT if v is None else v for v in values}
    known = [s for s in _SPLIT_ORDER if s in present]
    return known + sorted(present - set(known) - {NO_SPLIT}) + ([NO_SPLIT] if NO_SPLIT in present else [])


def _floats(t: Any, name: str, n: int) -> np.ndarray:
    if name not in t.column_names:
        return np.full(n, np.nan)
    return t.column(name).to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN


def _card_columns(t: Any) -> dict[str, list[Any]]:
    """The columns a card shows, as Python lists (absent ones as all-None)."""
    names = ("sample_id", "path", "start", "end", "duration", "pred_audio", "pred_visual", "fold", "has_audio")
    return {c: t.column(c).to_pylist() if c in t.column_names else [None] * t.num_rows for c in names}


def _round(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else round(v, 6)


def _b64_column(values: np.ndarray) -> dict[str, str]:
    """A little-endian typed array as base64 (the page decodes it into the matching JS array)."""
    dtype = values.dtype.str.lstrip("<|")  # "u1", "u2"
    return {"dtype": dtype, "data": base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")}
