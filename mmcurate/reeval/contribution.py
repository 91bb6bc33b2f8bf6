"""Modality contribution on the test split: BalanceMM's Shapley values with zeroed inputs.

For a model f and test sample i, c_S(i) = 1 when f predicts i correctly with only the modalities
in S (the others replaced by zeros at the model input, i.e. the normalisation mean) and 0 otherwise.
With two players:

* dataset level (BalanceMM ``Calculate_Shapley``): v(S) = accuracy with S, v({}) = accuracy of
  f(0, 0), phi_a = 1/2 [(v(a,v) - v(v)) + (v(a) - v({}))], phi_v likewise;
* sample level (BalanceMM ``Calculate_Shapley_Sample``): v_i(S) = c_S(i) with v_i({}) = 0 (its code
  fixes the empty coalition at "wrong" instead of evaluating f(0, 0)), so phi_a(i) + phi_v(i) = c_av(i).

The imbalance degree is |phi_a - phi_v|. A unimodal model ignores the other input, so the other
modality's contribution is 0 by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmcurate.reeval.batches import Batch, iter_batches
from mmcurate.reeval.data import ReevalData, SplitData

#: coalitions, as (keep audio, keep visual)
COALITIONS: dict[str, tuple[bool, bool]] = {
    "av": (True, True),
    "a0": (True, False),
    "0v": (False, True),
    "00": (False, False),
}


@torch.no_grad()
def coalition_correctness(
    method: Any, model: torch.nn.Module, split: SplitData, data: ReevalData, batch_size: int, device: torch.device
) -> dict[str, np.ndarray]:
    """Per coalition, a bool per sample: is the fused prediction with the other inputs zeroed correct?"""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in COALITIONS}
    for batch in iter_batches(split, data, batch_size, device):
        for key, (keep_a, keep_v) in COALITIONS.items():
            probe = Batch(
                audio=batch.audio if keep_a else torch.zeros_like(batch.audio),
                frames=batch.frames if keep_v else torch.zeros_like(batch.frames),
                labels=batch.labels,
                index=batch.index,
            )
            pred = method.predict(model, probe).logits.argmax(1)
            parts[key].append((pred == batch.labels).cpu().numpy())
    return {k: np.concatenate(v) if v else np.zeros(0, dtype=bool) for k, v in parts.items()}


def shapley_contribution(correct: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(summary for results.json, per-sample phi_audio / phi_visual arrays)."""
    c = {k: np.asarray(v, dtype=np.float64) for k, v in correct.items()}
    n = int(c["av"].size)
    acc = {k: (float(v.mean()) if n else None) for k, v in c.items()}
    sample_a = 0.5 * ((c["av"] - c["0v"]) + c["a0"])
    sample_v = 0.5 * ((c["av"] - c["a0"]) + c["0v"])
    if n:
        phi_a = 0.5 * ((acc["av"] - acc["0v"]) + (acc["a0"] - acc["00"]))
        phi_v = 0.5 * ((acc["av"] - acc["a0"]) + (acc["0v"] - acc["00"]))
        dataset = {"audio": phi_a, "visual": phi_v, "imbalance": abs(phi_a - phi_v)}
        sample = {
            "audio_mean": float(sample_a.mean()),
            "visual_mean": float(sample_v.mean()),
            "imbalance_mean": float(np.abs(sample_a - sample_v).mean()),
        }
    else:
        dataset = {"audio": None, "visual": None, "imbalance": None}
        sample = {"audio_mean": None, "visual_mean": None, "imbalance_mean": None}
    summary = {"dataset": dataset, "sample": sample, "coalition_accuracy": acc, "n": n}
    return summary, {"audio": sample_a, "visual": sample_v}
