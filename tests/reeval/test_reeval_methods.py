"""Each method's core computation on hand-computable cases, and its wiring on a real model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _reeval_fixtures import tensor_data
from torch.nn import functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.models import AVOutput, MMTMClassifier
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods import METHODS, TrainContext, get_method
from mmcurate.reeval.methods.agm import AGM, agm_coefficients, agm_responses, agm_score
from mmcurate.reeval.methods.gblending import gblending_weights
from mmcurate.reeval.methods.greedy import Greedy, greedy_bdr, greedy_caring_modality, relative_grad_norms
from mmcurate.reeval.methods.mmpareto import MMPareto, mgda_two, pareto_direction, pareto_weights
from mmcurate.reeval.methods.ogm_ge import OGMGE, ogm_coefficients
from mmcurate.reeval.methods.pmr import (
    class_means,
    pmr_coefficients,
    pmr_loss,
    pmr_ratio,
    prototype_logits,
    update_prototypes,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


K = 4  # classes in the small real-model cases


def _batch(n: int = 6, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        audio=torch.randn(n, 1, 32, 24, generator=g),
        frames=torch.randn(n, 2, 3, 16, 16, generator=g),
        labels=torch.arange(n) % K,
        index=torch.arange(n),
    )


def _ctx(epoch: int = 0) -> TrainContext:
    return TrainContext(epoch, 10, 0, 1, torch.device("cpu"), None, 8, 0)  # type: ignore[arg-type]


def _memory_data(n: int = 12):  # noqa: ANN202 - ReevalData
    return tensor_data(n_train=n, n_val=4, n_test=4, classes=K)


# ----------------------------------------------------------------------------------------- OGM-GE


def test_ogm_coefficient_slows_the_more_confident_modality() -> None:
    k_a, k_v = ogm_coefficients(30.0, 20.0, alpha=0.5)  # rho_audio = 1.5
    assert k_a == pytest.approx(1 - math.tanh(0.75)) and k_v == 1.0
    k_a, k_v = ogm_coefficients(20.0, 30.0, alpha=0.5)  # rho_visual = 1.5
    assert k_a == 1.0 and k_v == pytest.approx(1 - math.tanh(0.75))
    assert ogm_coefficients(7.0, 7.0, alpha=0.5) == (1.0, 1.0)


def test_ogm_scales_only_the_dominant_encoders_conv_gradients() -> None:
    torch.manual_seed(0)
    method = OGMGE(width=4, fusion="concat", epochs=10, alpha=0.5, ge=False)
    model = method.build_model(K)
    batch = _batch()
    out = model(batch.audio, batch.frames)
    # Hand-set split logits: audio puts all mass on the truth, visual is uniform.
    confident = F.one_hot(batch.labels, K).float() * 50
    hand = AVOutput(out.logits, out.audio_features, out.visual_features, confident, torch.zeros_like(confident))
    loss, logs = method.loss(model, batch, hand, _ctx())
    s_a, s_v = len(batch), len(batch) / K  # sums of true-class probabilities
    assert logs["k_audio"] == pytest.approx(1 - math.tanh(0.5 * s_a / s_v)) and logs["k_visual"] == 1.0
    loss.backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    method.after_backward(model, batch, hand, _ctx(epoch=0))
    for name, p in model.named_parameters():
        if name.startswith("audio_encoder") and p.dim() == 4:
            torch.testing.assert_close(p.grad, before[name] * logs["k_audio"])
        else:
            torch.testing.assert_close(p.grad, before[name])  # visual, BN, head untouched


def test_ogm_ge_adds_noise_with_the_gradients_own_std_and_respects_the_window() -> None:
    torch.manual_seed(0)
    method = OGMGE(width=8, fusion="concat", epochs=10, alpha=0.5)  # window: epochs 0..4
    model = method.build_model(K)
    batch = _batch()
    out = model(batch.audio, batch.frames)
    loss, logs = method.loss(model, batch, out, _ctx())
    loss.backward()
    p = model.visual_encoder.net.layer4[0].conv1.weight  # 64 x 32 x 3 x 3: enough entries for a std
    g0 = p.grad.clone()
    method.after_backward(model, batch, out, _ctx(epoch=7))  # outside the window: nothing happens
    torch.testing.assert_close(p.grad, g0)
    method.after_backward(model, batch, out, _ctx(epoch=2))
    noise = p.grad - g0 * logs["k_visual"]
    assert noise.std().item() == pytest.approx(g0.std().item(), rel=0.1)


def test_ogm_refuses_heads_without_modality_logits() -> None:
    with pytest.raises(MMCurateError, match="per-modality logits"):
        get_method("ogm_ge", width=4, fusion="film")


# ----------------------------------------------------------------------------------------- G-Blending


def test_gblending_weights_from_overfitting_to_generalisation_ratio() -> None:
    # dG = (0.8, 0.4, 0.1), dO = (0.2, 0.1, 0.1): raw = (20, 40, 10) -> (2/7, 4/7, 1/7)
    w = gblending_weights(np.array([0.8, 0.4, 0.1]), np.array([0.2, -0.1, 0.1]))
    np.testing.assert_allclose(w, [2 / 7, 4 / 7, 1 / 7])


def test_gblending_gives_no_weight_to_a_head_that_did_not_generalise() -> None:
    w = gblending_weights(np.array([0.5, -0.2, 0.5]), np.array([0.5, 0.1, 0.5]))
    assert w[1] == 0.0 and w[0] == pytest.approx(0.5) and w[2] == pytest.approx(0.5)
    assert gblending_weights(np.array([-0.1, 0.0, -0.3]), np.array([0.1, 0.1, 0.1])) is None  # none generalised


def test_gblending_look_ahead_trains_a_copy_on_one_head_and_measures_train_and_holdout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The look-ahead trains only on the kept train positions, measures L_T there and L_V on the
    hold-out, and leaves the run's model untouched."""
    from mmcurate.reeval.config import TrainConfig
    from mmcurate.reeval.methods import gblending as gb

    data = _memory_data(n=12)
    seen: list[tuple[bool, list[int]]] = []
    real_iter = gb.iter_batches

    def spy(split, data_, batch_size, device, order=None, drop_singleton=False):  # noqa: ANN001, ANN202
        assert split is data_.train
        for batch in real_iter(split, data_, batch_size, device, order=order, drop_singleton=drop_singleton):
            seen.append((torch.is_grad_enabled(), batch.index.tolist()))
            yield batch

    monkeypatch.setattr(gb, "iter_batches", spy)
    copies: list[torch.nn.Module] = []
    real_deepcopy = gb.copy.deepcopy

    class _Copy:  # the copy module, recording what it copied
        @staticmethod
        def deepcopy(obj):  # noqa: ANN001, ANN205
            copies.append(real_deepcopy(obj))
            return copies[-1]

    monkeypatch.setattr(gb, "copy", _Copy)
    torch.manual_seed(0)
    method = get_method("gblending", width=2, epochs=2)
    model = method.build_model(K)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_pos, hold_pos = torch.arange(8), torch.tensor([8, 9, 10, 11])
    ctx = TrainContext(0, 2, 0, 1, torch.device("cpu"), data, 4, 0, cfg=TrainConfig(width=2, lr=0.05), lr=0.05)
    l_t, l_v, l_v_clips = gb.look_ahead(model, "audio", ctx, train_pos, hold_pos, epochs=2, seed=3)
    trained = sorted(i for grad, idx in seen if grad for i in idx)
    assert trained == sorted(train_pos.tolist() * 2)  # two epochs over the kept positions, never the hold-out
    measured = [set(idx) for grad, idx in seen if not grad]
    assert set().union(*measured) == set(range(12))  # L_T over the kept positions and L_V over the hold-out
    assert all(s <= set(train_pos.tolist()) or s <= set(hold_pos.tolist()) for s in measured)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])  # a copy was trained, not the run's model
    (probe,) = copies  # the audio look-ahead trained the audio encoder and head only
    changed = {n for n, p in probe.named_parameters() if not torch.equal(p, dict(model.named_parameters())[n])}
    assert changed and all(n.startswith(("audio_encoder.", "audio_head.")) for n in changed)
    assert any(n.startswith("audio_head.") for n in changed)
    l_t0 = gb.mean_losses(model, data, train_pos, 4, torch.device("cpu"))[gb.HEADS.index("audio")]
    assert l_t != pytest.approx(l_t0)  # the copy was trained on its head
    assert np.isfinite(l_v) and l_v_clips.shape == (4,) and l_v == pytest.approx(l_v_clips.mean())


# ----------------------------------------------------------------------------------------- MMPareto


def test_mgda_two_known_vectors() -> None:
    assert mgda_two(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == pytest.approx((0.5, 0.5))
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    w = mgda_two(g1, g2)
    assert w == pytest.approx((0.6, 0.4))
    point = w[0] * g1 + w[1] * g2  # (0.2, 0.4): orthogonal to g1 - g2 at the minimum
    assert float(point.dot(g1 - g2)) == pytest.approx(0.0, abs=1e-7)
    assert mgda_two(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])) == pytest.approx((1.0, 0.0))
    assert mgda_two(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])) == (0.5, 0.5)


def test_pareto_weights_equal_when_gradients_agree() -> None:
    assert pareto_weights(torch.tensor([1.0, 0.2]), torch.tensor([0.5, 1.0])) == (0.5, 0.5)
    assert pareto_weights(torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])) == pytest.approx((0.6, 0.4))


def test_pareto_direction_lifts_to_the_plain_sums_norm_then_scales_by_gamma() -> None:
    g_mm, g_uni = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    d = pareto_direction(g_mm, g_uni, (0.6, 0.4), gamma=1.5)
    # 2(0.6 g_mm + 0.4 g_uni) = (0.4, 0.8), norm 0.894 < |g_mm + g_uni| = 1 -> rescaled to norm 1
    torch.testing.assert_close(d, torch.tensor([0.4, 0.8]) / math.sqrt(0.8) * 1.5)
    d = pareto_direction(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), (0.5, 0.5), gamma=1.5)
    torch.testing.assert_close(d, torch.tensor([1.5, 1.5]))


def test_mmpareto_sets_encoder_gradients_from_the_two_losses() -> None:
    torch.manual_seed(0)
    method = MMPareto(width=4, fusion="concat", epochs=1)
    model = method.build_model(K)
    batch = _batch()
    out = model(batch.audio, batch.frames)
    loss, _ = method.loss(model, batch, out, _ctx())
    loss.backward()
    head_grad = model.head.fc.weight.grad.clone()
    method.after_backward(model, batch, out, _ctx())
    # independent recomputation of the audio encoder's target gradient
    out2 = model(batch.audio, batch.frames)
    params = list(model.audio_encoder.parameters())
    g_mm = torch.autograd.grad(F.cross_entropy(out2.logits, batch.labels), params, retain_graph=True)
    g_a = torch.autograd.grad(F.cross_entropy(out2.audio_head_logits, batch.labels), params)
    w = pareto_weights(torch.cat([g.flatten() for g in g_mm]), torch.cat([g.flatten() for g in g_a]))
    for p, gm, ga in zip(params, g_mm, g_a):
        torch.testing.assert_close(p.grad, pareto_direction(gm, ga, w, 1.5), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(model.head.fc.weight.grad, head_grad)  # heads keep the summed loss's gradient


# ----------------------------------------------------------------------------------------- AGM


def test_agm_responses_have_no_f00_term_and_sum_to_the_fused_logits() -> None:
    f_av, f_a0, f_0v = (torch.tensor([[x, 0.0]]) for x in (3.0, 2.0, 1.0))
    m_a, m_v = agm_responses(f_av, f_a0, f_0v)
    torch.testing.assert_close(m_a, torch.tensor([[2.0, 0.0]]))  # 1/2 [(3 - 1) + 2]
    torch.testing.assert_close(m_v, torch.tensor([[1.0, 0.0]]))  # 1/2 [(3 - 2) + 1]
    torch.testing.assert_close(m_a + m_v, f_av)


def test_agm_coefficients_official_and_balancemm() -> None:
    # losses: audio 0.1, visual 1.1 (audio ahead); historically even -> r_a = e, r_bar = 1
    k_a, k_v = agm_coefficients((0.1, 1.1), (0.6, 0.6), alpha=0.1)
    assert k_a == pytest.approx(math.exp(0.1 * (1 - math.e)))
    assert k_v == pytest.approx(math.exp(0.1 * (1 - math.exp(-1))))
    assert k_a < 1 < k_v  # the official code slows the modality that is further ahead than usual
    k_a, _ = agm_coefficients((1.0, 1.0), (0.0, 5.0), alpha=0.1)  # r_bar_a - r_a = e^5 - 1: capped at 10
    assert k_a == pytest.approx(math.exp(0.1 * 10))
    k_a, _ = agm_coefficients((1.0, 1.0), (0.0, 5.0), alpha=0.1, cap=7.0)
    assert k_a == pytest.approx(math.exp(0.1 * 7))
    k_a, k_v = agm_coefficients((0.1, 1.1), (0.6, 0.6), alpha=0.1, cap=7.0, variant="balancemm")
    assert k_a == pytest.approx(math.exp(0.1 * (1 - math.exp(-1)))) and k_a > 1 > k_v  # BalanceMM's reversed sign
    assert agm_score(torch.tensor([[0.0, -1e9]]), torch.tensor([1])) == pytest.approx(-math.log(1e-8))


def test_agm_scales_each_modalitys_head_columns_and_encoder_through_its_response() -> None:
    """The gradient of the concat head's audio columns is the official hooks' mix of the three
    forwards: f(a,v) in train mode, f(0,v) and f(a,0) in eval mode, weighted by kappa."""
    import copy

    torch.manual_seed(0)
    method = AGM(width=4, fusion="concat", epochs=1, alpha=0.5)
    method.running, method.iterations = (0.4, 1.6), 3  # a history that makes the two kappas differ
    model = method.build_model(K).train()
    twin = copy.deepcopy(model)
    batch = _batch()
    out = method.forward(model, batch, _ctx())
    loss, logs = method.loss(model, batch, out, _ctx())
    loss.backward()
    k_a, k_v = logs["kappa_audio"], logs["kappa_visual"]
    assert abs(k_a - k_v) > 0.05
    with torch.no_grad():
        a_tr, _ = twin.encode(batch.audio, batch.frames)  # train mode: batch statistics, as the run's forward
        twin.eval()
        a_ev = twin.audio_encoder(batch.audio)
        a_0 = twin.audio_encoder(torch.zeros_like(batch.audio))
    g = (F.softmax(out.logits.detach(), 1) - F.one_hot(batch.labels, K)) / len(batch)
    mix = 0.5 * (k_a + k_v) * a_tr + 0.5 * (k_v - k_a) * a_0 + 0.5 * (k_a - k_v) * a_ev
    d_a = model.audio_encoder.out_dim
    torch.testing.assert_close(model.head.fc.weight.grad[:, :d_a], g.t() @ mix, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(model.head.fc.bias.grad, 0.5 * (k_a + k_v) * g.sum(0), rtol=1e-4, atol=1e-6)


def test_agm_clips_all_gradients_when_the_head_gradient_leaves_the_trigger() -> None:
    torch.manual_seed(0)
    method = AGM(width=4, fusion="concat", epochs=1)
    model = method.build_model(K)
    batch = _batch()
    out = method.forward(model, batch, _ctx())
    loss, _ = method.loss(model, batch, out, _ctx())
    (loss * 1e3).backward()  # head gradient entries far beyond 1
    method.after_backward(model, batch, out, _ctx())
    total = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None))
    assert float(total) == pytest.approx(1.0, rel=1e-3)  # official CREMA-D: clip to norm 1.0


def test_agm_method_caps_at_10_by_default_and_7_for_balancemm() -> None:
    for variant, cap in (("official", 10.0), ("balancemm", 7.0)):
        torch.manual_seed(0)
        method = AGM(width=4, fusion="concat", epochs=1, alpha=0.1, variant=variant)
        method.running, method.iterations = ((0.0, 50.0), 5) if variant == "official" else ((50.0, 0.0), 5)
        model = method.build_model(K)
        batch = _batch()
        out = method.forward(model, batch, _ctx())
        _, logs = method.loss(model, batch, out, _ctx())
        assert logs["kappa_audio"] == pytest.approx(math.exp(0.1 * cap))


def test_agm_balancemm_variant_scales_encoder_gradients_only() -> None:
    torch.manual_seed(0)
    method = AGM(width=4, fusion="concat", epochs=1, alpha=0.5, variant="balancemm")
    method.running, method.iterations = (0.4, 1.6), 3
    model = method.build_model(K)
    batch = _batch()
    out = method.forward(model, batch, _ctx())
    loss, logs = method.loss(model, batch, out, _ctx())
    loss.backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    method.after_backward(model, batch, out, _ctx())
    for name, p in model.named_parameters():
        k = 1.0
        if p.dim() != 1 and name.startswith("audio_encoder"):
            k = logs["kappa_audio"]
        elif p.dim() != 1 and name.startswith("visual_encoder"):
            k = logs["kappa_visual"]
        torch.testing.assert_close(p.grad, before[name] * k)


# ----------------------------------------------------------------------------------------- PMR


def test_pmr_ratio_and_which_modality_gets_the_prototype_loss() -> None:
    protos = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([0])
    q_a = prototype_logits(torch.tensor([[0.0, 0.0]]), protos)  # distances 0, 1
    q_v = prototype_logits(torch.tensor([[0.5, 0.0]]), protos)  # distances 0.5, 0.5
    rho = pmr_ratio(q_a, q_v, labels)
    assert rho == pytest.approx((1 / (1 + math.exp(-1))) / 0.5)
    assert pmr_coefficients(rho, alpha=0.6) == (0.0, 0.6)  # visual is weaker: the hard alpha, as the official code
    assert pmr_coefficients(0.8, alpha=0.6) == (0.6, 0.0)  # audio is weaker
    assert pmr_coefficients(1.0, alpha=0.6) == (0.0, 0.0)
    assert pmr_coefficients(rho, 0.6, "clipped") == pytest.approx((0.0, 0.6 * (rho - 1)))  # the named option
    assert pmr_coefficients(0.8, 0.6, "clipped") == pytest.approx((0.6 * 0.25, 0.0))
    assert pmr_coefficients(3.0, 0.6, "clipped") == (0.0, 0.6)


def test_pmr_loss_is_fused_ce_plus_weak_prototype_ce_plus_dominant_entropy_term() -> None:
    fused = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    q_a = torch.tensor([[0.0, -1.0, -2.0], [-2.0, 0.0, -1.0]])  # audio: true class closest
    q_v = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, -1.5, -0.5]])  # visual: uninformative
    y = torch.tensor([0, 1])
    loss, logs = pmr_loss(fused, q_a, q_v, y, alpha=0.6, per_weight=0.1)
    assert logs["rho"] > 1 and logs["beta_visual"] == 0.6 and logs["beta_audio"] == 0.0
    p_a = F.softmax(q_a, 1)
    neg_entropy_a = float((p_a * p_a.log()).sum(1).mean())
    expected = float(F.cross_entropy(fused, y)) + 0.6 * float(F.cross_entropy(q_v, y)) + 0.1 * neg_entropy_a
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert logs["per_audio"] == 0.1 and logs["per_visual"] == 0.0  # PER on the dominant modality only
    loss0, _ = pmr_loss(fused, q_a, q_v, y, alpha=0.6, per_weight=0.0)
    assert float(loss0) == pytest.approx(expected - 0.1 * neg_entropy_a, rel=1e-6)


def test_pmr_method_assembles_its_loss_from_model_features_and_stops_per_after_the_early_stage() -> None:
    torch.manual_seed(0)
    method = get_method("pmr", width=4, epochs=20)  # per_epochs: a tenth of the run = 2
    model = method.build_model(K)
    batch = _batch()
    out = model(batch.audio, batch.frames)
    g = torch.Generator().manual_seed(5)
    method.prototypes = {
        "audio": torch.randn(K, out.audio_features.shape[1], generator=g),
        "visual": torch.randn(K, out.visual_features.shape[1], generator=g),
    }
    q_a = prototype_logits(out.audio_features, method.prototypes["audio"])
    q_v = prototype_logits(out.visual_features, method.prototypes["visual"])
    for epoch, per in ((1, 0.1), (2, 0.0)):
        loss, _ = method.loss(model, batch, out, _ctx(epoch))
        expected, _ = pmr_loss(out.logits, q_a, q_v, batch.labels, alpha=0.6, per_weight=per)
        assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_pmr_prototypes_are_means_of_training_features_only() -> None:
    from mmcurate.reeval.batches import epoch_order, make_batch

    torch.manual_seed(0)
    data = _memory_data(n=16)
    method = get_method("pmr", width=2, epochs=2, seed=0, proto_fraction=0.5, momentum=0.0)
    model = method.build_model(K)
    ctx = TrainContext(0, 2, 0, 1, torch.device("cpu"), data, 4, 0)
    method.on_epoch_start(model, ctx)
    subset = epoch_order(16, 0 + 7_919, 0)[:8]
    model.eval()
    with torch.no_grad():
        batch = make_batch(data.train, data, subset, ctx.device)
        a, v = model.encode(batch.audio, batch.frames)
    means, _ = class_means(a, batch.labels, K)
    torch.testing.assert_close(method.prototypes["audio"], means, rtol=1e-4, atol=1e-5)
    means_v, _ = class_means(v, batch.labels, K)
    torch.testing.assert_close(method.prototypes["visual"], means_v, rtol=1e-4, atol=1e-5)


def test_prototypes_are_class_means_blended_by_momentum() -> None:
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    means, counts = class_means(feats, torch.tensor([0, 0, 1]), 3)
    torch.testing.assert_close(means, torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))
    torch.testing.assert_close(counts, torch.tensor([2.0, 1.0, 0.0]))
    old = torch.ones(3, 2)
    new = update_prototypes(old, means, counts, momentum=0.5)
    torch.testing.assert_close(new, torch.tensor([[1.5, 0.5], [0.5, 1.5], [1.0, 1.0]]))  # class 2 unseen: kept
    torch.testing.assert_close(update_prototypes(None, means, counts, 0.5), means)


# ----------------------------------------------------------------------------------------- Greedy


def test_greedy_speed_and_caring_modality_threshold() -> None:
    assert greedy_bdr(10.0, 1.0) == pytest.approx(1.0)
    assert greedy_bdr(1.0, 100.0) == pytest.approx(-2.0)
    assert greedy_caring_modality(1.0, 0.5, alpha=0.1) == "audio"  # the larger BDR is re-balanced
    assert greedy_caring_modality(0.5, 1.0, alpha=0.1) == "visual"
    assert greedy_caring_modality(0.5, 0.505, alpha=0.01) is None  # |gap| 0.005 <= 0.01: the threshold holds
    assert greedy_caring_modality(0.5, 0.52, alpha=0.01) == "visual"  # |gap| 0.02 > 0.01
    assert greedy_caring_modality(0.5, 0.5005, alpha=0.001) is None and greedy_caring_modality(0.5, 0.502, alpha=0.001)


def test_greedy_groups_mmtm_and_encoder_parameters_by_modality() -> None:
    torch.manual_seed(0)
    model = MMTMClassifier(K, width=4)
    batch = _batch()
    F.cross_entropy(model(batch.audio, batch.frames).logits, batch.labels).backward()
    got = relative_grad_norms(model)

    def ratio(pred) -> float:  # noqa: ANN001
        ps = [p for n, p in model.named_parameters() if pred(n)]
        return float(sum(p.grad.pow(2).sum() for p in ps) / sum(p.detach().pow(2).sum() for p in ps))

    assert got["audio"][0] == pytest.approx(
        ratio(lambda n: n.startswith("mmtm.") and ".fc_visual." not in n), rel=1e-5
    )
    assert got["visual"][0] == pytest.approx(
        ratio(lambda n: n.startswith("mmtm.") and ".fc_audio." not in n), rel=1e-5
    )
    assert got["audio"][1] == pytest.approx(ratio(lambda n: n.startswith("audio_encoder.")), rel=1e-5)


def _greedy_steps(method: Greedy, epoch: int, n: int) -> list[str | None]:
    model = method.build_model(K)
    batch = _batch()
    out = method.forward(model, batch, _ctx(epoch))
    F.cross_entropy(out.logits, batch.labels).backward()
    cares = []
    for _ in range(n):
        method.after_backward(model, batch, out, _ctx(epoch))
        cares.append(method.caring)
    return cares


def test_greedy_never_rebalances_during_the_warm_up_epoch_but_keeps_measuring() -> None:
    torch.manual_seed(0)
    method = Greedy(width=4, fusion="concat", epochs=3, alpha=-1.0)  # |gap| > -1: would always trigger
    assert _greedy_steps(method, epoch=0, n=6) == [None] * 6  # reference: starting_epoch=2, counted from 1
    assert method.speed["audio_main"] > 0  # speeds accumulate during the warm-up
    assert _greedy_steps(method, epoch=1, n=1)[0] in ("audio", "visual")


def test_greedy_default_threshold_is_the_references_0_01() -> None:
    """Accumulated speeds set by hand (large, so one step's increment is negligible): a BDR gap of
    0.005 does not re-balance, 0.02 does (BalanceMM's 0.001 re-balanced both)."""
    for gap, expected in ((0.005, None), (0.02, "visual")):
        torch.manual_seed(0)
        method = Greedy(width=4, fusion="concat", epochs=3)
        big = 1e12
        method.speed = {"audio_bypass": big, "audio_main": big, "visual_bypass": big * 10**gap, "visual_main": big}
        assert _greedy_steps(method, epoch=1, n=1) == [expected]


def test_greedy_rebalancing_window_lasts_window_steps() -> None:
    torch.manual_seed(0)
    method = Greedy(width=4, fusion="concat", epochs=1, alpha=-1.0, window=3, warmup_epochs=0)
    cares = _greedy_steps(method, epoch=0, n=9)
    assert cares[0] in ("audio", "visual")
    assert cares[1:4] == [cares[0], cares[0], None]  # three re-balancing steps, then a measuring step
    assert cares[4] is not None


def test_greedy_reports_how_often_its_threshold_binds() -> None:
    """The share of re-balancing steps alone does not say whether alpha ever held re-balancing back: the share of
    measuring steps whose BDR gap exceeded alpha does."""
    torch.manual_seed(0)
    method = Greedy(width=4, fusion="concat", epochs=2, alpha=-1.0, window=3, warmup_epochs=0)
    batch = _batch()
    model = method.build_model(K)
    logs = []
    for _ in range(8):
        out = method.forward(model, batch, _ctx(0))
        loss, _ = method.loss(model, batch, out, _ctx(0))
        model.zero_grad()
        loss.backward()
        logs.append(method.after_backward(model, batch, out, _ctx(0)))
    measured = [entry for entry in logs if "threshold_exceeded" in entry]
    assert measured and all(entry["threshold_exceeded"] == 1.0 for entry in measured)  # alpha -1 always binds
    history = [[{"epoch": 0, "threshold_exceeded": 1.0, "epoch_end_rebalancing_share": 0.75}]]
    (note,) = Greedy.run_notes(history)
    assert "75 % of steps re-balanced" in note and "exceeded alpha at 100 %" in note and "ceiling" in note


def test_gblending_warns_of_a_small_hold_out_and_reports_weights_and_their_noise(
    tmp_path,
    capsys: pytest.CaptureFixture,  # noqa: ANN001
) -> None:
    from mmcurate.reeval import trainer
    from mmcurate.reeval.config import TrainConfig
    from mmcurate.reeval.methods.gblending import GBlending

    data = tensor_data(n_train=20, n_val=8, n_test=8)
    cfg = TrainConfig(epochs=2, batch_size=4, width=2, lr=0.01)
    result = trainer.train_run("gblending", data, cfg, 0, tmp_path, torch.device("cpu"))
    err = capsys.readouterr().err
    held = len(get_method("gblending", width=2, epochs=2).holdout(data)[1])
    assert f"gblending: its hold-out holds {held} training clips" in " ".join(err.split())
    estimates = [h for h in result.history if "epoch_end_dG_fused" in h]
    assert estimates and all("epoch_end_dG_se_fused" in h for h in estimates)
    notes = GBlending.run_notes([result.history])
    assert f"{len(estimates)} weight estimate(s)" in notes[0] and f"hold-out of {held} training clips" in notes[0]
    assert "mean weights fused" in notes[0]


# ----------------------------------------------------------------------------------------- registry


def test_registry_has_every_method_and_rejects_unknown_parameters() -> None:
    assert list(METHODS)[:9] == [
        "audio_only",
        "visual_only",
        "joint",
        "ogm_ge",
        "gblending",
        "greedy",
        "pmr",
        "agm",
        "mmpareto",
    ]
    assert len(METHODS) == 20  # plus the eleven of tests/reeval/test_reeval_methods_more.py
    with pytest.raises(MMCurateError, match="unknown parameter"):
        get_method("ogm_ge", width=4, beta=1.0)
    with pytest.raises(MMCurateError, match="unknown method"):
        get_method("nosuch", width=4)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_takes_a_real_training_step(name: str, tmp_path) -> None:  # noqa: ANN001
    """forward -> loss -> backward -> after_backward -> step changes the weights, loss is finite."""
    from mmcurate.reeval.config import TrainConfig
    from mmcurate.reeval.data import ReevalData, SplitData

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    split = SplitData(
        "train",
        torch.randint(0, 255, (8, 2, 3, 16, 16), dtype=torch.uint8, generator=g),
        torch.randn(8, 1, 32, 24, generator=g),
        torch.arange(8) % K,
        [str(i) for i in range(8)],
        np.zeros(8),
        np.zeros(8, dtype=np.int64),
    )
    data = ReevalData(split, split, split, [str(k) for k in range(K)], "mem", "balanced", "", 1, None, {})
    method = get_method(name, width=4, fusion="concat", epochs=4)
    model = method.build_model(K)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    # MLA steps the optimiser itself; UMT trains its unimodal teachers as runs in out_dir
    from mmcurate.reeval.trainer import runs_of

    train_cfg = TrainConfig(epochs=1, batch_size=4, width=4)
    ctx = TrainContext(
        0,
        4,
        0,
        1,
        torch.device("cpu"),
        data,
        4,
        0,
        cfg=train_cfg,
        lr=0.1,
        optimizer=opt,
        out_dir=tmp_path,
        run_of=runs_of(data, train_cfg, 0, tmp_path, torch.device("cpu")),
    )
    method.on_train_start(model, ctx)
    method.on_epoch_start(model, ctx)
    model.train()
    from mmcurate.reeval.batches import make_batch

    batch = make_batch(split, data, torch.arange(8), ctx.device)
    before = [p.detach().clone() for p in model.parameters()]
    out = method.forward(model, batch, ctx)
    loss, _ = method.loss(model, batch, out, ctx)
    assert torch.isfinite(loss)
    loss.backward()
    method.after_backward(model, batch, out, ctx)
    opt.step()
    method.on_epoch_end(model, ctx)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    pred = method.predict(model.eval(), batch)
    assert pred.logits.shape == (8, K)
