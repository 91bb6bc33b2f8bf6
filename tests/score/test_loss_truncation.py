"""``--loss-truncation``: the loss leaves out the batch's highest-loss share once ramped in (or, with
``--truncation-after``, once the job has gained that share of ln C); off (the default) it is plain
cross-entropy and the scorer id of earlier scores is unchanged."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _tensor_fixtures import random_av_tensors

from mmcurate.common.errors import MMCurateError
from mmcurate.common.scoring import ScoreConfig
from mmcurate.score.train import InMemorySource, _Attempt, fit_predict


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


def test_a_gated_truncation_leaves_out_the_full_share_at_once_and_nothing_before() -> None:
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(40, 5, generator=g), torch.randint(0, 5, (40,), generator=g)
    per = F.cross_entropy(logits, y, reduction="none")
    cfg = ScoreConfig(loss_truncation=0.25, truncation_after=0.5)

    def gated(truncating: bool) -> torch.Tensor:
        job = SimpleNamespace(cfg=cfg, step=0, steps_per_epoch=10, truncating=truncating)
        return _Attempt._loss(job, logits, y)  # type: ignore[arg-type]

    assert torch.allclose(gated(False), per.mean())
    assert torch.allclose(gated(True), per.sort().values[:30].mean())  # step 0, yet the whole quarter is out


def test_truncation_after_starts_only_once_the_job_has_gained_that_share() -> None:
    """A converging job: a gate it never reaches trains exactly as without truncation; one it reaches at once
    trains otherwise (the gate is read from the job's own inner loss, after each search epoch)."""
    tensors = random_av_tensors(60, 3, separation=2.0)
    source = InMemorySource(tensors, "audio")
    held = np.arange(0, 60, 5)
    train = np.setdiff1d(np.arange(60), held)
    base = ScoreConfig(width=4, image_size=16, batch_size=8, train_frames=1, num_frames=2, max_epochs=8)

    def probs(cfg: ScoreConfig) -> np.ndarray:
        return fit_predict(source, train, held, 3, cfg, seed=0, device=torch.device("cpu"), n_frames=2).probs

    plain = probs(base)
    never = probs(dataclasses.replace(base, loss_truncation=0.3, truncation_after=0.999))
    soon = probs(dataclasses.replace(base, loss_truncation=0.3, truncation_after=0.01))
    assert np.array_equal(plain, never)
    assert not np.allclose(plain, soon)


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan")])
def test_out_of_range_truncation_gate_is_refused(bad: float) -> None:
    with pytest.raises(MMCurateError, match="--truncation-after"):
        ScoreConfig(truncation_after=bad).resolved(False)
