"""Each method's core computation on hand-computable cases, and its wiring on a real model."""

from __future__ import annotations

from collections.abc import Iterator

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.models import AVOutput, MMTMClassifier
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods import METHODS, TrainContext, get_method
from mmcurate.reeval.methods.agm import AGM, agm_coefficients, agm_ratios, agm_score, shapley_responses
from mmcurate.reeval.methods.gblending import gblending_weights
from mmcurate.reeval.methods.greedy import Greedy, greedy_bdr, greedy_caring_modality, relative_grad_norms
from mmcurate.reeval.methods.mmpareto import MMPareto, mgda_two, pareto_direction, pareto_weights
from mmcurate.reeval.methods.ogm_ge import OGMGE, ogm_coefficients
from mmcurate.reeval.methods.pmr import class_means, pmr_coefficients, pmr_ratio, prototype_logits, update_prototypes


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models on shared cores: one intra-op thread is far faster; restore the setting after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
    before = np.array([2.0, 2.0, 2.0])
    w = gblending_weights(before, before, np.array([1.0, 1.5, 1.8]), np.array([1.2, 1.6, 1.9]))
    # dG = (0.8, 0.4, 0.1), dO = (0.2, 0.1, 0.1): raw = (20, 40, 10) -> (2/7, 4/7, 1/7)
    np.testing.assert_allclose(w, [2 / 7, 4 / 7, 1 / 7])


def test_gblending_gives_no_weight_to_a_head_that_got_worse_on_validation() -> None:
    before = np.array([2.0, 2.0, 2.0])
    w = gblending_weights(before, before, np.array([1.0, 1.0, 1.0]), np.array([1.5, 2.5, 1.5]))
    assert w[1] == 0.0 and w[0] == pytest.approx(0.5) and w[2] == pytest.approx(0.5)
    assert gblending_weights(before, before, before - 1, before + 1) is None  # nothing generalised


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


def test_shapley_responses_of_known_logits() -> None:
    f_av, f_a0, f_0v, f_00 = (torch.tensor([[x, 0.0]]) for x in (3.0, 2.0, 1.0, 0.0))
    o_a, o_v = shapley_responses(f_av, f_a0, f_0v, f_00)
    torch.testing.assert_close(o_a, torch.tensor([[2.0, 0.0]]))
    torch.testing.assert_close(o_v, torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(o_a + o_v, f_av - f_00)


def test_agm_coefficients_slow_the_modality_ahead_of_its_usual_lead() -> None:
    # audio's log-likelihood -0.1, visual's -1.1; historically they were even
    k_a, k_v = agm_coefficients((-0.1, -1.1), (-0.6, -0.6), alpha=0.1)
    assert k_a == pytest.approx(math.exp(0.1 * (1 - math.e)))
    assert k_v == pytest.approx(math.exp(0.1 * (1 - math.exp(-1))))
    assert k_a < 1 < k_v
    assert agm_ratios((0.0, 0.0, 0.0)) == [1.0, 1.0, 1.0]
    assert agm_score(torch.tensor([[0.0, -1e9]]), torch.tensor([1])) == pytest.approx(math.log(1e-8))


def test_agm_responses_on_a_concat_model_are_the_weight_columns_times_feature_shift() -> None:
    torch.manual_seed(0)
    method = AGM(width=4, fusion="concat", epochs=1)
    model = method.build_model(K).train()
    batch = _batch()
    o_a, o_v = method._responses(model, batch)
    assert model.training  # the eval-mode probes put the model back
    model.eval()
    with torch.no_grad():
        a, v = model.encode(batch.audio, batch.frames)
        a0 = model.audio_encoder(torch.zeros_like(batch.audio[:1]))
        w_a, w_v = model.head.split_weights()
    torch.testing.assert_close(o_a, (a - a0) @ w_a.t(), rtol=1e-4, atol=1e-5)
    v0 = model.visual_encoder(torch.zeros_like(batch.frames[:1]))
    torch.testing.assert_close(o_v, (v - v0) @ w_v.t(), rtol=1e-4, atol=1e-5)


def test_agm_scales_each_encoders_gradients_by_its_coefficient() -> None:
    torch.manual_seed(0)
    method = AGM(width=4, fusion="concat", epochs=1, alpha=0.5)
    model = method.build_model(K)
    batch = _batch()
    out = model(batch.audio, batch.frames)
    loss, logs = method.loss(model, batch, out, _ctx())
    assert method.running != (0.0, 0.0) and method.iterations == 1
    loss.backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    method.after_backward(model, batch, out, _ctx())
    for name, p in model.named_parameters():
        k = logs["kappa_audio"] if name.startswith("audio_encoder") else logs["kappa_visual"] if name.startswith("visual_encoder") else 1.0
        torch.testing.assert_close(p.grad, before[name] * k)


# ----------------------------------------------------------------------------------------- PMR


def test_pmr_ratio_and_which_modality_gets_the_prototype_loss() -> None:
    protos = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([0])
    q_a = prototype_logits(torch.tensor([[0.0, 0.0]]), protos)  # distances 0, 1
    q_v = prototype_logits(torch.tensor([[0.5, 0.0]]), protos)  # distances 0.5, 0.5
    rho = pmr_ratio(q_a, q_v, labels)
    assert rho == pytest.approx((1 / (1 + math.exp(-1))) / 0.5)
    assert pmr_coefficients(rho) == pytest.approx((0.0, rho - 1))  # visual is weaker
    assert pmr_coefficients(0.8) == pytest.approx((0.25, 0.0))  # audio is weaker
    assert pmr_coefficients(3.0) == (0.0, 1.0) and pmr_coefficients(0.25) == (1.0, 0.0)  # clipped at 1


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


def test_greedy_speed_and_caring_modality() -> None:
    assert greedy_bdr(10.0, 1.0) == pytest.approx(1.0)
    assert greedy_bdr(1.0, 100.0) == pytest.approx(-2.0)
    assert greedy_caring_modality(1.0, 0.5, alpha=0.1) == "audio"
    assert greedy_caring_modality(0.5, 1.0, alpha=0.1) == "visual"
    assert greedy_caring_modality(0.5, 0.55, alpha=0.1) is None


def test_greedy_groups_mmtm_and_encoder_parameters_by_modality() -> None:
    torch.manual_seed(0)
    model = MMTMClassifier(K, width=4)
    batch = _batch()
    F.cross_entropy(model(batch.audio, batch.frames).logits, batch.labels).backward()
    got = relative_grad_norms(model)

    def ratio(pred) -> float:  # noqa: ANN001
        ps = [p for n, p in model.named_parameters() if pred(n)]
        return float(sum(p.grad.pow(2).sum() for p in ps) / sum(p.detach().pow(2).sum() for p in ps))

    assert got["audio"][0] == pytest.approx(ratio(lambda n: n.startswith("mmtm.") and ".fc_visual." not in n), rel=1e-5)
    assert got["visual"][0] == pytest.approx(ratio(lambda n: n.startswith("mmtm.") and ".fc_audio." not in n), rel=1e-5)
    assert got["audio"][1] == pytest.approx(ratio(lambda n: n.startswith("audio_encoder.")), rel=1e-5)


def test_greedy_rebalancing_window_lasts_window_steps() -> None:
    torch.manual_seed(0)
    method = Greedy(width=4, fusion="concat", epochs=1, alpha=-1.0, window=3)  # |gap| > -1: always triggers
    model = method.build_model(K)
    batch = _batch()
    out = method.forward(model, batch, _ctx())
    F.cross_entropy(out.logits, batch.labels).backward()
    cares = []
    for _ in range(9):
        method.after_backward(model, batch, out, _ctx())
        cares.append(method.caring)
    assert cares[0] in ("audio", "visual")
    assert cares[1:4] == [cares[0], cares[0], None]  # three re-balancing steps, then a measuring step
    assert cares[4] is not None


# ----------------------------------------------------------------------------------------- registry


def test_registry_has_every_method_and_rejects_unknown_parameters() -> None:
    assert list(METHODS)[:9] == ["audio_only", "visual_only", "joint", "ogm_ge", "gblending", "greedy", "pmr", "agm", "mmpareto"]
    assert len(METHODS) == 20  # plus the eleven of tests/test_reeval_methods_more.py
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
    split = SplitData("train", torch.randint(0, 255, (8, 2, 3, 16, 16), dtype=torch.uint8, generator=g),
                      torch.randn(8, 1, 32, 24, generator=g), torch.arange(8) % K, [str(i) for i in range(8)],
                      np.zeros(8), np.zeros(8, dtype=np.int64))
    data = ReevalData(split, split, split, [str(k) for k in range(K)], "mem", "balanced", "", 1, None, {})
    method = get_method(name, width=4, fusion="concat", epochs=4)
    model = method.build_model(K)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    # MLA steps the optimiser itself; UMT trains its unimodal teachers as runs in out_dir
    ctx = TrainContext(0, 4, 0, 1, torch.device("cpu"), data, 4, 0, opt, TrainConfig(epochs=1, batch_size=4, width=4), tmp_path)
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
