"""Discrepancy bins: equal-width over [-1, 1] by default, or custom edges; the one binning rule.

``balance`` assigns bins with it and records the edges in ``balance.json``; ``reeval`` and ``browse``
read the same edges and apply the same rule, so a sample is in the same bin everywhere. The rule is
numpy.histogram's (and so matplotlib's): bins are ``[lo, hi)`` except the last, ``[lo, hi]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmcurate.common.errors import MMCurateError


def make_edges(bins: int, edges: Sequence[float] | None = None) -> np.ndarray:
    """Bin edges: ``bins`` equal-width bins over [-1, 1], or the given increasing ``edges``."""
    if edges is not None:
        e = np.asarray(list(edges), dtype=float)
        if len(e) < 2:
            raise MMCurateError("--edges needs at least two values (one bin)")
        if np.any(np.diff(e) <= 0):
            raise MMCurateError(f"--edges must be strictly increasing (got {', '.join(f'{x:g}' for x in e)})")
        if e[0] < -1 or e[-1] > 1:
            raise MMCurateError("--edges must lie within [-1, 1], the range of the discrepancy")
        return e
    if bins < 1:
        raise MMCurateError(f"--bins must be at least 1 (got {bins})")
    return np.linspace(-1.0, 1.0, bins + 1)


def parse_edges(text: str | None) -> list[float] | None:
    """``"-1,-0.5,0,0.5,1"`` -> floats (``None`` stays ``None``)."""
    if text is None:
        return None
    try:
        return [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise MMCurateError(f"--edges expects comma-separated numbers (got {text!r})") from None


def assign_bins(d: np.ndarray, edges: np.ndarray | Sequence[float]) -> np.ndarray:
    """Bin index per value (``-1`` outside the edges or NaN). Bins are [lo, hi) except the last, [lo, hi]."""
    d = np.asarray(d, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    idx = np.searchsorted(edges, d, side="right") - 1
    idx = np.where(d == edges[-1], len(edges) - 2, idx)
    return np.where((d < edges[0]) | (d > edges[-1]) | np.isnan(d), -1, idx).astype(np.int64)


def bin_label(edges: np.ndarray | Sequence[float], b: int) -> str:
    """``[-0.2, 0)`` style label of bin ``b``."""
    right = "]" if b == len(edges) - 2 else ")"
    return f"[{edges[b]:.2g}, {edges[b + 1]:.2g}{right}"


def bin_probability(d: np.ndarray, std: np.ndarray, edges: np.ndarray | Sequence[float]) -> np.ndarray:
    """Probability that a sample's true discrepancy lies in the bin its estimate ``d`` falls in,
    if the estimate's error is normal with standard deviation ``std``.

    Bins are ``[lo, hi)`` (the last ``[lo, hi]``) as :func:`assign_bins` assigns them. The discrepancy
    cannot leave [-1, 1], so an outer edge at -1 or 1 is open (all the mass beyond it belongs to
    the outer bin). ``std == 0`` gives 1; a ``d`` outside the edges gives NaN. Part of the binning
    rule, so that balance (re-binning with its own edges) and score (with the default edges) share it.
    """
    from scipy.stats import norm  # not for every reader of the store

    d = np.asarray(d, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    idx = np.searchsorted(edges, d, side="right") - 1
    idx = np.where(d == edges[-1], len(edges) - 2, idx)
    inside = (d >= edges[0]) & (d <= edges[-1])
    idx = np.clip(idx, 0, len(edges) - 2)
    lo = edges[idx]
    hi = edges[idx + 1]
    lo = np.where((idx == 0) & (lo <= -1.0), -np.inf, lo)
    hi = np.where((idx == len(edges) - 2) & (hi >= 1.0), np.inf, hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(std > 0, std, 1.0)
        p = norm.cdf((hi - d) / s) - norm.cdf((lo - d) / s)
    p = np.where(std > 0, p, 1.0)
    return np.where(inside, p, np.nan)
