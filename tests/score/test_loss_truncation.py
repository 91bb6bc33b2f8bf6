"""``--loss-truncation``: the loss leaves out the batch's highest-loss share once ramped in; off (the
default) it is plain cross-entropy and the scorer id of earlier scores is unchanged."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.common.scoring import ScoreConfig
from mmcurate.score.train import _Attempt


def _loss(q: float, step: int, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    cfg = ScoreConfig(loss_truncation=q)
    return _Attempt._loss(SimpleNamespace(cfg=cfg, step=step, steps_per_epoch=10), logits, y)  # type: ignore[arg-type]


def test_truncation_leaves_out_the_highest_losses_once_ramped_in() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(40, 5, generator=g), torch.randint(0, 5, (40,), generator=g)
    per = F.cross_entropy(logits, y, reduction="none")
    full = per.mean()
    assert torch.allclose(_loss(0.0, 100, logits, y), full)
    assert torch.allclose(_loss(0.25, 0, logits, y), full)  # the first step: nothing left out yet
    lowest = per.sort().values[:30].mean()
    assert torch.allclose(_loss(0.25, 20, logits, y), lowest)  # two epochs in: the worst quarter is out
    half_way = per.sort().values[: 40 - int(0.125 * 40)].mean()
    assert torch.allclose(_loss(0.25, 10, logits, y), half_way)


def test_off_keeps_the_scorer_id_of_earlier_scores_and_on_changes_it() -> None:
    cfg = ScoreConfig(seed=0, device="cpu").resolved(False)
    assert "loss_truncation" not in cfg.content_dict()
    on = dataclasses.replace(cfg, loss_truncation=0.2)
    assert on.content_dict()["loss_truncation"] == 0.2 and on.scorer_id() != cfg.scorer_id()


@pytest.mark.parametrize("bad", [-0.1, 0.95, float("nan")])
def test_out_of_range_truncation_is_refused(bad: float) -> None:
    with pytest.raises(MMCurateError, match="--loss-truncation"):
        ScoreConfig(loss_truncation=bad).resolved(False)
