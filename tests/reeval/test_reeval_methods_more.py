"""The eleven BalanceMM methods mmcurate added (issue 11): hand-computable arithmetic, and wiring on real models.

Every number asserted below was worked out by hand from the formula in the method's docstring.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from torch.nn import functional as F

from mmcurate.models import AVOutput
from mmcurate.reeval.batches import Batch, make_batch
from mmcurate.reeval.config import TrainConfig
from mmcurate.reeval.data import ReevalData, SplitData
from mmcurate.reeval.methods import METHODS, TrainContext, get_method, lookup_method, method_catalog
from mmcurate.reeval.methods.amco import amco_dependence, amco_mask, amco_mask_fraction
from mmcurate.reeval.methods.cml import balancemm_penalty, cml_penalty
from mmcurate.reeval.methods.lfm import (
    lfm_alignment,
    lfm_fitted_weights,
    lfm_hypergradient,
    lfm_step_size,
    lfm_update_alignment,
)
from mmcurate.reeval.methods.mbsd import balancemm_kd, logit_alignment, mbsd_weights, strong_to_weak_kd
from mmcurate.reeval.methods.mla import entropy_gate, owm_alpha, project_gradient, update_projector
from mmcurate.reeval.methods.mmcosine import cosine_logits
from mmcurate.reeval.methods.opm import opm_drop, opm_drop_probabilities, opm_scale
from mmcurate.reeval.methods.reconboost import boosting_loss, global_adjustment, reconboost_phase
from mmcurate.reeval.methods.relearning import cluster_purity, minmax_scale, purity, reinit_weight, soft_reset
from mmcurate.reeval.methods.umt import umt_distillation
from mmcurate.reeval.methods.valuation import (
    KEEP_AUDIO,
    KEEP_BOTH,
    KEEP_VISUAL,
    ValuedBatch,
    copies_for,
    modality_level_extras,
    resampling_fraction,
    sample_level_extras,
    shapley_contributions,
)
from mmcurate.reeval.trainer import runs_of

NEW = ["valuation", "mla", "opm", "amco", "mmcosine", "umt", "mbsd", "cml", "lfm", "relearning", "reconboost"]
K = 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _data(n: int = 8) -> ReevalData:
    g = torch.Generator().manual_seed(1)
    split = SplitData(
        "train",
        torch.randint(0, 255, (n, 2, 3, 16, 16), dtype=torch.uint8, generator=g),
        torch.randn(n, 1, 32, 24, generator=g),
        torch.arange(n) % K,
        [str(i) for i in range(n)],
        np.zeros(n),
        np.zeros(n, dtype=np.int64),
    )
    return ReevalData(split, split, split, [str(k) for k in range(K)], "mem", "balanced", "", 1, None, {})


def _setup(name: str, tmp_path: Path, epoch: int = 0, epochs: int = 4, **params: object):
    torch.manual_seed(0)
    data = _data()
    method = get_method(name, width=4, fusion="concat", epochs=epochs, **params)
    model = method.build_model(K)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = TrainConfig(epochs=1, batch_size=4, width=4)
    cpu = torch.device("cpu")
    ctx = TrainContext(
        epoch,
        epochs,
        epoch * 2,
        2,
        cpu,
        data,
        4,
        0,
        cfg=cfg,
        optimizer=opt,
        out_dir=tmp_path,
        run_of=runs_of(data, cfg, 0, tmp_path, cpu),  # what the trainer gives every run (UMT's teachers)
    )
    batch = make_batch(data.train, data, torch.arange(8), ctx.device)
    return method, model, opt, ctx, batch


# ----------------------------------------------------------------------------------------- registry and CLI


def test_the_eleven_are_registered_with_balancemm_categories_and_papers() -> None:
    assert list(METHODS)[-11:] == NEW
    cats = {r["name"]: r["category"] for r in method_catalog()}
    assert cats["valuation"] == "data"
    assert {n for n in NEW if cats[n] == "feed-forward"} == {"mla", "opm", "amco"}
    assert {n for n in NEW if cats[n] == "objective"} == {"mmcosine", "umt", "mbsd", "cml", "lfm"}
    assert {n for n in NEW if cats[n] == "optimisation"} == {"relearning", "reconboost"}
    assert all(r["paper"] and r["reference"] for r in method_catalog() if r["category"] != "baseline")


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("MMCosine", "mmcosine"),
        ("ReconBoost", "reconboost"),
        ("OGM-GE", "ogm_ge"),
        ("ogm", "ogm_ge"),
        ("G-Blending", "gblending"),
        ("Re-Learning", "relearning"),
        ("Sample", "valuation"),
        ("MLA", "mla"),
        ("Modality valuation", "valuation"),
        ("audio-only", "audio_only"),
        ("baseline", "joint"),
    ],
)
def test_method_names_as_researchers_write_them(spelling: str, name: str) -> None:
    assert lookup_method(spelling) == name


def test_every_shipped_spelling_names_its_own_method() -> None:
    """No title or alias of one method may shadow another's (the lookup would silently pick one)."""
    for name, cls in METHODS.items():
        for spelling in (name, cls.title, *cls.aliases):
            assert lookup_method(spelling) == name, (spelling, name)


def test_methods_option_and_method_params_accept_any_spelling() -> None:
    from mmcurate.common.errors import MMCurateError
    from mmcurate.reeval.config import ReevalConfig

    def parse_methods(text: str) -> list[str]:
        return ReevalConfig(methods=text).method_list()

    def parse_method_params(items: tuple[str, ...]) -> dict:
        return ReevalConfig(method_params=items).param_overrides()

    assert parse_methods("mla,OPM, UMT,mla") == ["mla", "opm", "umt"]
    assert parse_methods("all") == list(METHODS) and len(METHODS) == 20
    assert parse_method_params(("MMCosine.scaling=15",)) == {"mmcosine": {"scaling": 15}}
    with pytest.raises(MMCurateError, match="unknown method"):
        parse_methods("mla,nosuch")


def test_default_method_set_is_the_demos_eight_and_all_is_the_twenty() -> None:
    from mmcurate.reeval.config import ReevalConfig
    from mmcurate.reeval.methods import DEFAULT_METHODS

    demo = yaml.safe_load((Path(__file__).resolve().parents[2] / "mmcurate" / "demo" / "demo.yaml").read_text())
    assert ReevalConfig().method_list() == list(DEFAULT_METHODS) == demo["reeval"]["methods"]
    assert ReevalConfig(methods="all").method_list() == list(METHODS) and len(METHODS) == 20


def test_list_methods_prints_every_method_with_category_and_paper(capsys: pytest.CaptureFixture) -> None:
    from mmcurate.cli import main

    assert main(["reeval", "--list-methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(METHODS)
    for name, cls in METHODS.items():
        line = next(row for row in lines if row.split()[0] == name)
        assert cls.category in line.split() and (cls.paper or cls.title) in line


# ----------------------------------------------------------------------------------------- Modality valuation


def test_valuation_contributions_and_copies() -> None:
    # fused right, audio right, visual wrong: official (v_av = 2) 1.5 / 0.5; exact Shapley (v_av = 1) 1 / 0
    assert shapley_contributions(np.array([1]), np.array([1]), np.array([0])) == (1.5, 0.5)
    assert shapley_contributions(np.array([1]), np.array([1]), np.array([0]), full_value=1.0) == (1.0, 0.0)
    np.testing.assert_array_equal(copies_for(np.array([1.5, 1.0, 0.5, 0.0, -0.5, 0.4, -0.1])), [0, 0, 1, 2, 3, 0, 0])
    index, keep = sample_level_extras(np.array([1.5, 0.0]), np.array([0.5, 0.0]))
    np.testing.assert_array_equal(index, [1, 1, 0, 1, 1])
    np.testing.assert_array_equal(keep, [KEEP_AUDIO, KEEP_AUDIO, KEEP_VISUAL, KEEP_VISUAL, KEEP_VISUAL])


def test_valuation_modality_level_resamples_the_larger_gap_modality() -> None:
    assert resampling_fraction(1.2, 0.6, alpha=1.0) == pytest.approx(0.4)  # |(-0.2) - 0.4| * 2/3
    index, keep = modality_level_extras(1.0, 0.25, n=10, alpha=1.0, rng=np.random.default_rng(0))  # 0.75 * 2/3 of 10
    assert len(index) == 5 and set(keep) == {KEEP_VISUAL} and index.max() < 10
    index, keep = modality_level_extras(0.25, 1.0, n=10, alpha=0.5, rng=np.random.default_rng(0))
    assert len(index) == 2 and set(keep) == {KEEP_AUDIO}  # int(2.5)


def test_valuation_trains_on_originals_plus_single_modality_copies(tmp_path: Path) -> None:
    method, model, _opt, ctx, batch = _setup("valuation", tmp_path, epochs=4, warmup_epochs=1)
    assert method.train_batches(ctx) is None  # before any valuation: the plain split
    logs = method.on_epoch_end(model, ctx)  # epoch 0 = warmup - 1: value, plan epoch 1
    n_extra = logs["extra_audio_only"] + logs["extra_visual_only"]
    assert n_extra == len(method.extra_index) > 0
    ctx.epoch = 1
    batches = list(method.train_batches(ctx))
    keep = torch.cat([b.keep for b in batches])
    assert len(keep) == 8 + n_extra and int((keep == KEEP_BOTH).sum()) == 8
    assert int((keep == KEEP_AUDIO).sum()) == logs["extra_audio_only"]
    # a copy keeping audio only is classified from audio features with zeroed visual features
    model.eval()
    codes = torch.tensor([KEEP_AUDIO, KEEP_BOTH])
    one = ValuedBatch(batch.audio[:2], batch.frames[:2], batch.labels[:2], batch.index[:2], keep=codes)
    out = method.forward(model, one, ctx)
    a, v = model.encode(one.audio, one.frames)
    torch.testing.assert_close(out.logits[0], model.head(a, torch.zeros_like(v)).logits[0])
    torch.testing.assert_close(out.logits[1], model.head(a, v).logits[1])


def test_the_trainer_trains_on_the_batches_valuation_plans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """train_batches is the trainer's hook: epoch 1 must see the originals plus the planned copies."""
    import mmcurate.reeval.methods as registry
    from mmcurate.reeval.methods.valuation import Valuation
    from mmcurate.reeval.trainer import train_run

    seen: dict[int, list[int]] = {}

    class CountingValuation(Valuation):
        name = "counting_valuation"

        def forward(self, model: nn.Module, batch: Batch, ctx: TrainContext) -> AVOutput:
            keep = getattr(batch, "keep", None)
            seen.setdefault(ctx.epoch, []).extend([KEEP_BOTH] * len(batch) if keep is None else keep.tolist())
            return super().forward(model, batch, ctx)

    monkeypatch.setitem(registry.METHODS, "counting_valuation", CountingValuation)
    cfg = TrainConfig(epochs=2, batch_size=4, width=4, method_params={"counting_valuation": {"warmup_epochs": 1}})
    run = train_run("counting_valuation", _data(), cfg, 0, tmp_path, torch.device("cpu"))
    planned = run.history[0]["epoch_end_extra_audio_only"] + run.history[0]["epoch_end_extra_visual_only"]
    assert seen[0] == [KEEP_BOTH] * 8  # warm-up epoch: the plain split
    assert len(seen[1]) == 8 + planned and seen[1].count(KEEP_BOTH) == 8 and planned > 0


# ----------------------------------------------------------------------------------------- MLA


def test_mla_projector_update_and_gradient_modes() -> None:
    p = update_projector(torch.eye(2), torch.tensor([[1.0, 0.0]]), alpha=0.1)
    d = torch.tensor([1 - 1 / 1.1, 1.0])
    torch.testing.assert_close(p, torch.diag(d / d.norm()))  # diag(0.0905, 0.9959)
    g, proj = torch.tensor([[1.0, 2.0]]), torch.diag(torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(project_gradient(g, proj, "replace"), torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(project_gradient(g, proj, "additive"), torch.tensor([[1.5, 2.5]]))
    torch.testing.assert_close(project_gradient(g, proj, "none"), g)
    assert owm_alpha(0, 10) == pytest.approx(0.1) and owm_alpha(5, 10) == pytest.approx(0.1**1.5)


def test_mla_entropy_gate_per_sample_and_per_batch() -> None:
    # uniform audio (H = ln 2) against a certain visual prediction (H ~ 0): w_a = 0.5 / 1.5
    w_a, w_v = entropy_gate(torch.tensor([[0.0, 0.0]]), torch.tensor([[100.0, 0.0]]))
    assert float(w_a) == pytest.approx(1 / 3) and float(w_v) == pytest.approx(2 / 3)
    # official batch-level gate: softmax over the batch; H_a = 2 ln 2, H_v = ln 2 -> w_a = (1/4) / (1/4 + 1/2)
    z_a, z_v = torch.zeros(2, 2), torch.tensor([[100.0, 0.0], [0.0, 0.0]])
    w_a, w_v = entropy_gate(z_a, z_v, "batch")
    assert float(w_a) == pytest.approx(1 / 3) and float(w_v) == pytest.approx(2 / 3)


def test_mla_takes_one_step_per_modality_and_projects_all_but_the_first(tmp_path: Path) -> None:
    method, model, opt, ctx, batch = _setup("mla", tmp_path)
    a0 = [p.detach().clone() for p in model.audio_encoder.parameters()]
    v0 = [p.detach().clone() for p in model.visual_encoder.parameters()]
    out = method.forward(model, batch, ctx)  # the audio step has been taken, unprojected
    assert method.updates == 1 and method.projector is None
    assert any(not torch.equal(x, p) for x, p in zip(a0, model.audio_encoder.parameters()))
    assert all(torch.equal(x, p) for x, p in zip(v0, model.visual_encoder.parameters()))
    loss, _ = method.loss(model, batch, out, ctx)
    loss.backward()
    assert all(p.grad is None for p in model.audio_encoder.parameters())  # visual pass: audio encoder untouched
    g = model.head.weight.grad.clone()
    method.after_backward(model, batch, out, ctx)
    p = update_projector(torch.eye(g.shape[1]), out.visual_features.detach(), owm_alpha(0, 2))
    torch.testing.assert_close(model.head.weight.grad, g @ p.t())


# ----------------------------------------------------------------------------------------- OPM


def test_opm_drop_probability_and_rescaling() -> None:
    q = opm_drop_probabilities(20.0, 10.0, q_base=0.4, lam=0.5)  # BalanceMM's q_base
    assert q[0] == pytest.approx(0.4 * (1 + 0.5 * math.tanh(1))) and q[1] == 0.0  # 0.5523
    assert opm_scale(q, (512, 512)) == pytest.approx(1 / (1 - q[0] / 2))  # 1.3815
    q = opm_drop_probabilities(20.0, 10.0, q_base=0.5, lam=0.5)  # official script
    assert q[0] == pytest.approx(0.6904, abs=1e-4) and opm_scale(q, (512, 512)) == pytest.approx(1.5272, abs=1e-4)
    assert opm_drop_probabilities(10.0, 20.0, 0.5, 0.5) == (0.0, pytest.approx(0.6904, abs=1e-4))
    assert opm_drop_probabilities(7.0, 7.0, 0.5, 0.5) == (0.0, 0.0)


def test_opm_drop_masks_per_sample_and_scales_what_is_kept() -> None:
    a, v = torch.ones(5, 3), torch.ones(5, 3)
    a2, v2, kept = opm_drop(a, v, (1.0, 0.0), torch.Generator().manual_seed(0))
    assert torch.equal(a2, torch.zeros(5, 3)) and torch.allclose(v2, torch.full((5, 3), 2.0)) and bool(kept.all())
    a2, v2, kept = opm_drop(torch.ones(4000, 1), torch.ones(4000, 1), (0.5, 0.0), torch.Generator().manual_seed(0))
    assert float((a2 > 0).float().mean()) == pytest.approx(0.5, abs=0.03)  # Bernoulli(1 - q) per sample
    assert float(a2.max()) == pytest.approx(1 / (1 - 0.25))


# ----------------------------------------------------------------------------------------- AMCo


def test_amco_mask_schedule_and_dependence() -> None:
    # epoch 1: l_t = 0, 0.1, 0.2, 0.3 -> p_t = 0, 1/2, sqrt(3)/2, 1 -> N = 0, 3, 5, 6 of C = 6
    gen = torch.Generator().manual_seed(0)
    zeros = [int((amco_mask(6, amco_mask_fraction(lt, 0.3), gen) == 0).sum()) for lt in (0, 0.1, 0.2, 0.3)]
    assert zeros == [0, 3, 5, 6]
    sft_a, sft_v = amco_dependence(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]]))
    e2 = math.exp(2)
    assert sft_a == pytest.approx((e2 + 1) / (e2 + 3)) and sft_v == pytest.approx(2 / (e2 + 3))


def test_amco_masks_the_dependent_modalitys_logits_on_its_schedule(tmp_path: Path) -> None:
    method, model, _opt, ctx, batch = _setup("amco", tmp_path, epoch=2)  # l_t grows by 2/10 per batch
    method.on_epoch_start(model, ctx)
    fractions = []
    for _ in range(4):
        method.dependent = {"audio": True, "visual": False}
        out = method.forward(model, batch, ctx)
        fractions.append(out[1])
        zero_cols = int((out[0].audio_logits.abs().sum(0) == 0).sum())
        assert zero_cols == int(out[1] * K) and int((out[0].visual_logits == 0).sum()) == 0
    assert fractions == pytest.approx([0.0, math.sqrt(3) / 2, 1.0, 1.0])


# ----------------------------------------------------------------------------------------- MMCosine


def test_mmcosine_logits_are_scaled_cosines() -> None:
    z = cosine_logits(torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]]), 15.0)
    torch.testing.assert_close(z, torch.tensor([[9.0, 12.0]]))


def test_mmcosine_trains_and_predicts_on_the_cosine_sum(tmp_path: Path) -> None:
    method, model, _opt, ctx, batch = _setup("mmcosine", tmp_path, scaling=10.0)
    z_a, z_v = method.forward(model, batch, ctx)
    a, v = model.encode(batch.audio, batch.frames)
    w_a, w_v = model.head.split_weights()
    torch.testing.assert_close(z_a, 10 * F.normalize(a, dim=1) @ F.normalize(w_a, dim=1).t())
    assert float(z_a.detach().abs().max()) <= 10 + 1e-5 and float(z_v.detach().abs().max()) <= 10 + 1e-5
    pred = method.predict(model.eval(), batch)
    torch.testing.assert_close(pred.logits, pred.audio_logits + pred.visual_logits)
    raw = get_method("mmcosine", width=4, eval_logits="raw").predict(model, batch)
    torch.testing.assert_close(raw.logits, model(batch.audio, batch.frames).logits)


# ----------------------------------------------------------------------------------------- UMT


def test_umt_distillation_term() -> None:
    s = (torch.zeros(2, 3), torch.ones(2, 3))
    t = (torch.full((2, 3), 0.1), torch.full((2, 3), 0.9))
    assert float(umt_distillation(s, t, 10.0)) == pytest.approx(0.2)  # 10 * (0.01 + 0.01)


def test_umt_teachers_are_the_comparisons_unimodal_runs_frozen_in_eval_mode(tmp_path: Path) -> None:
    from mmcurate.reeval.trainer import run_dir_for

    method, model, _opt, ctx, batch = _setup("umt", tmp_path)
    method.on_train_start(model, ctx)
    for m in ("audio", "visual"):
        best = torch.load(run_dir_for(tmp_path, f"{m}_only", 0) / "best.pt", weights_only=False)["model"]
        teacher = method.teachers[m]
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
        for k, v in teacher.state_dict().items():
            torch.testing.assert_close(v, best[k])
    stats = method.teachers["audio"].encoder.net.bn1.running_mean.clone()
    out = method.forward(model.train(), batch, ctx)
    loss, logs = method.loss(model, batch, out, ctx)
    with torch.no_grad():
        t = (method.teachers["audio"].features(batch.audio), method.teachers["visual"].features(batch.frames))
    distill = umt_distillation((out.audio_features, out.visual_features), t, 10.0)
    expected = F.cross_entropy(out.logits, batch.labels) + distill
    torch.testing.assert_close(loss, expected)
    assert torch.equal(method.teachers["audio"].encoder.net.bn1.running_mean, stats)  # eval mode: BN stats frozen
    fresh = get_method("umt", width=4)
    fresh.load_state_dict(method.state_dict())  # resume restores the teachers
    torch.testing.assert_close(fresh.teachers["visual"].features(batch.frames), t[1])


# ----------------------------------------------------------------------------------------- MBSD


def test_mbsd_weights_alignment_and_the_two_distillation_terms() -> None:
    t = torch.tensor
    w = mbsd_weights(t([0.7, 0.7]), t([0.2, 0.2]), t([True, False]), t([False, False]))
    torch.testing.assert_close(w, torch.tensor([0.5, 0.0]))
    assert float(balancemm_kd(t(0.7), t(0.2))) == pytest.approx(0.2 * (math.log(0.2) - 0.7))  # -0.4619
    torch.testing.assert_close(logit_alignment(t([[1.0, 0.0]]), t([[0.0, 0.0]])), t([0.5]))
    z_s = torch.log(torch.tensor([[0.5, 0.5]])).requires_grad_()
    z_w = torch.log(torch.tensor([[0.75, 0.25]])).requires_grad_()
    kd = strong_to_weak_kd(z_s, z_w)
    assert float(kd.detach()) == pytest.approx(0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25))  # 0.1438
    kd.sum().backward()
    assert z_s.grad is None and z_w.grad is not None  # the strong modality is the teacher


def test_mbsd_defaults_to_balancemms_arithmetic_and_distill_keeps_the_strong_side_fixed(tmp_path: Path) -> None:
    """The only public code's arithmetic (BalanceMM: nothing detached) is the default; mmcurate's strong-to-weak
    construction is the named variant ``distill``."""
    assert get_method("mbsd", width=4).params["variant"] == "balancemm"
    # sample 0: audio strong (and right), sample 1: visual strong (and right); both get weight w > 0
    z_a = torch.tensor([[3.0, 0, 0, 0], [3.0, 0, 0, 0]], requires_grad=True)
    z_v = torch.tensor([[0.0, 0, 0, 0], [0.0, 2, 0, 0]], requires_grad=True)
    y = torch.tensor([0, 1])
    batch = Batch(torch.zeros(2), torch.zeros(2), y, torch.arange(2))
    for variant, strong_gets_gradient in (("distill", False), (None, True)):
        out = AVOutput(z_a + z_v, torch.zeros(2, 1), torch.zeros(2, 1), z_a, z_v)
        params = {} if variant is None else {"variant": variant}
        loss, logs = get_method("mbsd", width=4, **params).loss(None, batch, out, None)  # type: ignore[arg-type]
        base = sum(F.cross_entropy(z, y) for z in (out.logits, z_a, z_v))
        assert float(loss.detach()) == pytest.approx(float(base.detach()) + logs["rs"] + logs["kd"], rel=1e-5)
        g_a, g_v = torch.autograd.grad(loss - base, (z_a, z_v))
        assert float(g_v[0].abs().sum()) > 0 and float(g_a[1].abs().sum()) > 0  # the weak side learns
        assert (float(g_a[0].abs().sum()) > 0) == strong_gets_gradient
        assert (float(g_v[1].abs().sum()) > 0) == strong_gets_gradient
        if variant is None:  # BalanceMM's
            assert logs["kd"] <= 0  # pw (log pw - ps) is never positive: not a divergence


# ----------------------------------------------------------------------------------------- CML


def test_cml_penalty_per_sample_against_balancemms_clipped_sum() -> None:
    conf_f, conf_r = torch.tensor([0.9, 0.6]), torch.tensor([0.5, 0.8])
    right, y = torch.tensor([0, 1]), torch.tensor([0, 1])
    assert float(cml_penalty(conf_f, right, conf_r, right, y)) == pytest.approx(0.2)  # relu(-0.4) + relu(0.2)
    assert float(balancemm_penalty(conf_f, conf_r)) == 0.0  # max(0, -0.4 + 0.2)
    assert float(cml_penalty(conf_f, right, conf_r, right, y, eps=0.1)) == pytest.approx(0.1)
    # trick 2: both predictions wrong -> penalised, with the full-input confidence detached
    c_f, c_r = torch.tensor([0.3], requires_grad=True), torch.tensor([0.5], requires_grad=True)
    pen = cml_penalty(c_f, torch.tensor([1]), c_r, torch.tensor([2]), torch.tensor([0]))
    assert float(pen.detach()) == pytest.approx(0.2)
    pen.backward()
    assert float(c_f.grad) == 0.0 and float(c_r.grad) == 1.0
    # full prediction wrong but the removed one right: no penalty at all
    t = torch.tensor
    assert float(cml_penalty(t([0.3]), t([1]), t([0.5]), t([0]), t([0]))) == 0.0


def test_cml_removes_one_modality_per_sample(tmp_path: Path) -> None:
    method, model, _opt, ctx, batch = _setup("cml", tmp_path)
    full, removed = method.forward(model, batch, ctx)
    a, v = model.encode(batch.audio, batch.frames)
    only_a = model.head(a, torch.zeros_like(v)).logits
    only_v = model.head(torch.zeros_like(a), v).logits
    is_a = torch.isclose(removed, only_a).all(1)
    is_v = torch.isclose(removed, only_v).all(1)
    assert bool((is_a | is_v).all()) and bool(is_a.any()) and bool(is_v.any())


# ----------------------------------------------------------------------------------------- LFM


def test_lfm_alignment_schedules_and_update() -> None:
    p, q = torch.log(torch.tensor([[0.5, 0.5]])), torch.log(torch.tensor([[0.75, 0.25]]))
    m = torch.tensor([0.625, 0.375])
    kl_mp = float((m * (m / torch.tensor([0.5, 0.5])).log()).sum())
    kl_mq = float((m * (m / torch.tensor([0.75, 0.25])).log()).sum())
    assert float(lfm_alignment(p, q)) == pytest.approx((kl_mp + kl_mq) / 2) == pytest.approx(0.0348412, abs=1e-6)
    assert lfm_fitted_weights(0) == pytest.approx((0.204623704, 0.795376296))
    assert lfm_step_size(1e-4, 19) == 1e-4 and lfm_step_size(1e-4, 20) == 5e-5 and lfm_step_size(1e-4, 45) == 2.5e-5
    assert lfm_update_alignment(0.95, 100.0, 1e-4) == pytest.approx(0.94)
    assert lfm_update_alignment(0.5, -1e6, 1.0) == 0.95 and lfm_update_alignment(0.5, 1e6, 1.0) == 0.05


class _TinyAV(nn.Module):
    """A linear two-modality model: enough to check the Hessian-vector product numerically."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([0.8, 1.3]))  # first: its gradient does not average to zero
        self.wa = nn.Parameter(torch.tensor([[0.3, -0.2], [0.1, 0.4]]))
        self.wv = nn.Parameter(torch.tensor([[-0.5, 0.2], [0.3, 0.1]]))

    def forward(self, audio: torch.Tensor, frames: torch.Tensor) -> AVOutput:
        za, zv = (audio * self.scale) @ self.wa.t(), frames @ self.wv.t()
        return AVOutput(za + zv, audio, frames, za, zv)


def test_lfm_hypergradient_is_the_hessian_vector_product_of_the_first_parameter() -> None:
    model = _TinyAV().double()
    x = torch.tensor([[1.0, 2.0], [0.5, -1.0], [-1.5, 0.3]], dtype=torch.float64)
    batch = Batch(x, x.flip(1), torch.tensor([0, 1, 1]), torch.arange(3))
    alpha = (0.3, 0.7)

    def logits(params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return (batch.audio * params[0]) @ params[1].t(), batch.frames @ params[2].t()

    def first_grad(params: list[torch.Tensor]) -> torch.Tensor:
        za, zv = logits(params)
        total = alpha[0] * F.cross_entropy(0.5 * za + 0.5 * zv, batch.labels) + alpha[1] * lfm_alignment(za, zv)
        return torch.autograd.grad(total, params)[0]

    theta = [p.detach().clone().requires_grad_() for p in model.parameters()]
    za, zv = logits(theta)
    direction = torch.autograd.grad(F.cross_entropy(0.5 * za + 0.5 * zv, batch.labels), theta)  # what H is applied to
    eps = 1e-5
    plus = first_grad([(t + eps * d).detach().requires_grad_() for t, d in zip(theta, direction)])
    minus = first_grad([(t - eps * d).detach().requires_grad_() for t, d in zip(theta, direction)])
    finite_difference = float(((plus - minus) / (2 * eps)).mean())
    assert abs(finite_difference) > 1e-3  # a case where the estimate is not trivially zero
    assert lfm_hypergradient(model, batch, alpha) == pytest.approx(finite_difference, rel=1e-4)


def test_lfm_defaults_to_the_official_readmes_fitted_schedule_rescaled_to_the_run(tmp_path: Path) -> None:
    """`python Crema_epoch.py` (the README's run) reads the fitted polynomial over 200 epochs; a run of E epochs
    reads it at the same fraction of the run, as every other scaled schedule here."""
    method, model, _opt, ctx, _batch = _setup("lfm", tmp_path, epochs=20)
    assert method.params["schedule"] == "fitted" and method.train_subset(ctx.data) is None  # no hold-out needed
    for epoch in (0, 5, 19):
        ctx.epoch = epoch
        method.on_epoch_start(model, ctx)
        assert method.alpha == pytest.approx(lfm_fitted_weights(epoch * 10))  # epoch e of 20 = epoch 10e of 200
    assert method.alpha[0] > 0.9  # the end of the run gets the end of the schedule (CE 0.995), not its start (0.26)
    raw, model, _opt, ctx, _batch = _setup("lfm", tmp_path, epochs=20, fitted_epochs=None)
    ctx.epoch = 19
    raw.on_epoch_start(model, ctx)
    assert raw.alpha == pytest.approx(lfm_fitted_weights(19))  # the official code's raw epochs, as an option


def test_lfm_learnable_schedule_moves_alpha_by_the_hypergradient(tmp_path: Path) -> None:
    learnable = get_method("lfm", width=4, schedule="learnable")
    assert learnable.alpha == pytest.approx((0.05, 0.95))  # official start: CE 0.05, alignment 0.95
    method, model, _opt, ctx, _batch = _setup("lfm", tmp_path, schedule="learnable", init_align=0.5, lr_alpha=0.1)
    method.on_epoch_start(model, ctx)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert method.hypergradient != 0
    assert method.alpha[1] == pytest.approx(0.5 - 0.1 * method.hypergradient) and sum(method.alpha) == pytest.approx(
        1.0
    )


# ----------------------------------------------------------------------------------------- ReLearning


def test_relearning_purity_weight_and_soft_reset() -> None:
    assert purity(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])) == 0.75
    assert reinit_weight(0.9, 0.6, lam=3.0) == pytest.approx(math.tanh(0.9))  # 0.7163
    p = nn.Parameter(torch.ones(3))
    soft_reset([p], [torch.zeros(3)], math.tanh(0.9))
    torch.testing.assert_close(p.detach(), torch.full((3,), 1 - math.tanh(0.9)))  # 0.2837
    np.testing.assert_allclose(
        minmax_scale(np.array([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]])), [[-1, -1], [0, -1], [1, -1]]
    )
    blobs = np.concatenate([np.random.default_rng(0).normal(c, 0.1, (20, 2)) for c in (0.0, 5.0, 10.0)])
    assert cluster_purity(blobs, np.repeat([0, 1, 2], 20), k=3) == 1.0


def test_relearning_resets_encoders_towards_init_after_diagnosis_epochs(tmp_path: Path) -> None:
    method, model, _opt, ctx, _batch = _setup("relearning", tmp_path, epochs=6, every=1, max_resets=1)
    method.on_train_start(model, ctx)
    init = [p.detach().clone() for p in model.audio_encoder.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    trained = [p.detach().clone() for p in model.audio_encoder.parameters()]
    head = model.head.fc.weight.detach().clone()
    ctx.epoch = 1
    method.on_epoch_start(model, ctx)  # epoch 0 is never a diagnosis epoch
    assert method.resets == 0 and method.on_epoch_end(model, ctx) == {}
    ctx.epoch = 2
    method.on_epoch_start(model, ctx)
    logs = method.on_epoch_end(model, ctx)
    w = logs["reinit_audio"]
    gap = abs(logs["purity_train_audio"] - logs["purity_heldout_audio"])
    assert method.resets == 1 and w == pytest.approx(math.tanh(3 * gap))
    for p, p0, p1 in zip(model.audio_encoder.parameters(), init, trained):
        torch.testing.assert_close(p.detach(), w * p0 + (1 - w) * p1)
    assert torch.equal(model.head.fc.weight, head)
    ctx.epoch = 3
    method.on_epoch_start(model, ctx)
    assert method.resets == 1  # max_resets reached


# ----------------------------------------------------------------------------------------- ReconBoost


def test_reconboost_loss_phases_and_zero_gradient_global_adjustment() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1]]))
    loss = boosting_loss(logits, torch.tensor([0.8]), torch.tensor([0]), w1=5.0, w2=1.0)
    assert float(loss) == pytest.approx((-5 + 0.8) * math.log(0.5) / 6)  # 0.4852
    assert [reconboost_phase(e, 1, 1) for e in range(5)] == [
        (0, "audio", "boost"),
        (0, "audio", "correct"),
        (1, "visual", "boost"),
        (1, "visual", "correct"),
        (2, "audio", "boost"),
    ]
    assert reconboost_phase(5, 4, 4) == (0, "audio", "correct")
    f_m = torch.randn(3, 4, requires_grad=True)
    ga = global_adjustment(f_m, torch.randn(3, 4), alpha=0.5)
    assert not ga.requires_grad  # the official term carries no gradient
    global_adjustment(f_m, torch.randn(3, 4), alpha=0.5, with_gradient=True).backward()
    assert f_m.grad is not None and float(f_m.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("reset", "optimizer", "steps", "cleared"),
    [
        (True, "sgd", 2, True),  # the official per-phase optimiser, on request
        ("auto", "sgd", 2, False),  # a 2-step phase: momentum 0.9 would never rebuild, keep it
        ("auto", "sgd", 200, True),  # 200 steps at momentum 0.9: the rebuild is 5 % of the phase, reset as official
        ("auto", "adamw", 2, True),  # AdamW's bias correction restarts cleanly: reset as official
        (False, "sgd", 200, False),
    ],
)
def test_reconboost_resets_optimiser_state_only_where_a_phase_can_rebuild_it(
    reset: object, optimizer: str, steps: int, cleared: bool, tmp_path: Path
) -> None:
    method, model, opt, ctx, _batch = _setup("reconboost", tmp_path, epoch=2, reset_optimizer=reset)
    ctx.cfg = TrainConfig(epochs=4, batch_size=4, width=4, optimizer=optimizer)
    ctx.steps_per_epoch = steps
    opt.state[next(model.parameters())]["momentum_buffer"] = torch.zeros(1)
    method.on_epoch_start(model, ctx)
    assert (len(opt.state) == 0) == cleared
    assert method.on_epoch_end(model, ctx) == {"optimizer_reset": float(cleared)}
    ctx.epoch = 3  # the correction phase of stage 1 starts: the same rule
    opt.state[next(model.parameters())]["momentum_buffer"] = torch.zeros(1)
    method.on_epoch_start(model, ctx)
    assert (len(opt.state) == 0) == cleared


def test_reconboost_boosting_epoch_trains_only_its_learner(tmp_path: Path) -> None:
    method, model, opt, ctx, batch = _setup("reconboost", tmp_path, epoch=2)  # stage 1: visual boosting
    method.on_epoch_start(model, ctx)
    out = method.forward(model, batch, ctx)
    loss, logs = method.loss(model, batch, out, ctx)
    loss.backward()
    assert logs["boosting"] == 1.0 and "ga_loss" in logs
    assert all(p.grad is None for p in model.audio_encoder.parameters()) and model.boost_rate.grad is None
    assert any(p.grad is not None for p in model.visual_encoder.parameters())
    f_v = model.learner("visual", batch.frames)
    with torch.no_grad():
        p_ens = F.softmax(model.boost_rate * model.learner("audio", batch.audio), 1).gather(1, batch.labels[:, None])[
            :, 0
        ]
    torch.testing.assert_close(loss, boosting_loss(f_v, p_ens, batch.labels, 5.0, 1.0))


# ----------------------------------------------------------------------------------------- resume, every new method


@pytest.mark.parametrize("name", NEW)
def test_each_new_method_resumes_from_its_state(name: str, tmp_path: Path) -> None:
    """Two steps straight through equal one step, a state round trip into a fresh instance, one step."""

    def step(method, model, opt, ctx, batch) -> float:  # noqa: ANN001
        opt.zero_grad(set_to_none=True)
        out = method.forward(model, batch, ctx)
        loss, _ = method.loss(model, batch, out, ctx)
        loss.backward()
        method.after_backward(model, batch, out, ctx)
        opt.step()
        return float(loss.detach())

    method, model, opt, ctx, batch = _setup(name, tmp_path, epoch=1, epochs=4)
    method.on_train_start(model, ctx)
    method.on_epoch_start(model, ctx)
    first = step(method, model, opt, ctx, batch)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    saved = (method.state_dict(), weights, opt.state_dict(), torch.get_rng_state())
    second = step(method, model, opt, ctx, batch)
    assert math.isfinite(first) and math.isfinite(second)
    again = get_method(name, width=4, fusion="concat", epochs=4)
    again.load_state_dict(saved[0])
    model.load_state_dict(saved[1])
    opt.load_state_dict(saved[2])
    torch.set_rng_state(saved[3])
    assert step(again, model, opt, ctx, batch) == pytest.approx(second, rel=1e-5)
