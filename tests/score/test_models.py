"""Models: layout, shapes, gradient flow, the per-modality logit identities, determinism."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmcurate.models import (
    FUSIONS,
    AudioEncoder,
    AVClassifier,
    MMTMClassifier,
    ResNet18,
    UnimodalClassifier,
    VisualEncoder,
    build_unimodal,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


SPEC = (1, 64, 40)  # (1, F, T)
CLIP = (3, 3, 32, 32)  # (T, 3, H, W)


def _inputs(batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *SPEC, generator=g), torch.randn(batch, *CLIP, generator=g)


def test_resnet18_width64_has_the_standard_parameter_count() -> None:
    # torchvision's resnet18 has 11,689,512 parameters, 513,000 of them in its 1000-way fc.
    n = sum(p.numel() for p in ResNet18(in_channels=3, width=64).parameters())
    assert n == 11_689_512 - 513_000


def test_resnet18_blocks_strides_and_channels() -> None:
    net = ResNet18(in_channels=1, width=8)
    assert [len(s) for s in net.stages] == [2, 2, 2, 2]
    assert net.stage_channels == (8, 16, 32, 64)
    out = net(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 64, 2, 2)  # stride 32 overall


def test_convolutions_use_kaiming_fan_out_init() -> None:
    torch.manual_seed(0)
    net = ResNet18(in_channels=3, width=64)
    w = net.layer4[0].conv1.weight  # 512 x 256 x 3 x 3, many samples: std is tight
    expected = math.sqrt(2.0 / (w.shape[0] * 9))
    assert abs(w.std().item() - expected) / expected < 0.02
    assert torch.all(net.bn1.weight == 1) and torch.all(net.bn1.bias == 0)


def test_encoder_shapes_on_small_inputs() -> None:
    audio, frames = _inputs()
    assert AudioEncoder(8)(audio).shape == (4, 64)
    assert VisualEncoder(8)(frames).shape == (4, 64)
    assert VisualEncoder(4)(torch.randn(2, 1, 3, 16, 16)).shape == (2, 32)  # one frame, tiny image


def test_encoders_reject_wrong_layouts() -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, F, T\)"):
        AudioEncoder(4)(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        VisualEncoder(4)(torch.randn(2, 3, 16, 16))


def test_visual_encoder_keeps_samples_apart_and_pools_over_frames() -> None:
    torch.manual_seed(0)
    enc = VisualEncoder(8).eval()
    _, frames = _inputs(batch=5)
    with torch.no_grad():
        together = enc(frames)
        alone = torch.cat([enc(frames[i : i + 1]) for i in range(5)])
        shuffled_frames = enc(frames[:, [2, 0, 1]])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
    # pooling over (T, H, W) makes the feature independent of frame order
    torch.testing.assert_close(together, shuffled_frames, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_av_classifier_shapes_and_gradient_flow(fusion: str) -> None:
    torch.manual_seed(0)
    model = AVClassifier(num_classes=10, width=4, fusion=fusion, unimodal_heads=True)
    audio, frames = _inputs()
    out = model(audio, frames)
    assert out.logits.shape == (4, 10)
    assert out.audio_features.shape == out.visual_features.shape == (4, 32)
    assert out.audio_head_logits.shape == out.visual_head_logits.shape == (4, 10)
    labels = torch.arange(4)
    loss = sum(
        nn.functional.cross_entropy(x, labels) for x in (out.logits, out.audio_head_logits, out.visual_head_logits)
    )
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_concat_split_logits_sum_to_the_fused_logits() -> None:
    torch.manual_seed(0)
    model = AVClassifier(num_classes=7, width=4, fusion="concat")
    with torch.no_grad():
        model.head.fc.bias.normal_()  # a non-zero bias, so the b/2 split is exercised
    out = model(*_inputs())
    torch.testing.assert_close(out.audio_logits + out.visual_logits, out.logits)
    w_a, w_v = model.head.split_weights()
    b = model.head.fc.bias
    torch.testing.assert_close(out.audio_logits, out.audio_features @ w_a.t() + b / 2)
    torch.testing.assert_close(out.visual_logits, out.visual_features @ w_v.t() + b / 2)


def test_sum_fusion_branch_logits_sum_to_the_fused_logits() -> None:
    torch.manual_seed(0)
    model = AVClassifier(num_classes=5, width=4, fusion="sum")
    out = model(*_inputs())
    torch.testing.assert_close(out.audio_logits + out.visual_logits, out.logits)
    torch.testing.assert_close(out.audio_logits, model.head.fc_audio(out.audio_features))


@pytest.mark.parametrize("fusion", ["film", "gated"])
def test_multiplicative_fusions_have_no_modality_logits(fusion: str) -> None:
    model = AVClassifier(num_classes=5, width=4, fusion=fusion)
    out = model(*_inputs())
    assert out.audio_logits is None and out.visual_logits is None
    assert not model.has_modality_logits


def test_same_seed_same_model_and_outputs_different_seed_differs() -> None:
    def build(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        model = AVClassifier(num_classes=10, width=4).eval()
        with torch.no_grad():
            return model(*_inputs()).logits

    torch.testing.assert_close(build(3), build(3), rtol=0, atol=0)
    assert not torch.allclose(build(3), build(4))


def test_unimodal_classifiers() -> None:
    torch.manual_seed(0)
    audio, frames = _inputs()
    a = build_unimodal("audio", num_classes=10, width=4)
    v = build_unimodal("visual", num_classes=10, width=4)
    assert isinstance(a, UnimodalClassifier) and a.modality == "audio"
    assert a(audio).shape == v(frames).shape == (4, 10)
    assert a.features(audio).shape == (4, 32)
    with pytest.raises(ValueError, match="modality"):
        build_unimodal("text", 10, 4)


def test_bad_model_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fusion"):
        AVClassifier(10, 4, fusion="attention")
    with pytest.raises(ValueError, match="num_classes"):
        AVClassifier(1, 4)


def test_mmtm_classifier_keeps_samples_apart_for_any_batch_size() -> None:
    torch.manual_seed(0)
    model = MMTMClassifier(num_classes=10, width=4).train()
    audio, frames = _inputs(batch=6)
    model(audio, frames)  # one training step's worth of running gate statistics
    model.eval()
    with torch.no_grad():
        together = model(audio, frames).logits
        alone = torch.cat([model(audio[i : i + 1], frames[i : i + 1]).logits for i in range(6)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_mmtm_caring_modality_withholds_cross_modal_input() -> None:
    torch.manual_seed(0)
    model = MMTMClassifier(num_classes=10, width=4).train()
    audio, frames = _inputs(batch=4)
    model(audio, frames)
    model.eval()
    other_frames = torch.randn_like(frames)
    with torch.no_grad():
        normal = model(audio, frames).audio_features
        normal_other = model(audio, other_frames).audio_features
        caring = model(audio, frames, caring_modality="audio").audio_features
        caring_other = model(audio, other_frames, caring_modality="audio").audio_features
    assert not torch.allclose(normal, normal_other)  # the visual input reaches the audio branch
    torch.testing.assert_close(caring, caring_other)  # ... except in the re-balancing window


def test_mmtm_running_gate_is_the_mean_of_training_batches() -> None:
    torch.manual_seed(0)
    model = MMTMClassifier(num_classes=3, width=4).train()
    block = model.mmtm[0]
    gates = []
    hook = block.fc_audio.register_forward_hook(lambda m, i, o: gates.append(torch.sigmoid(o).mean(0).detach()))
    for seed in range(3):
        model(*_inputs(batch=2, seed=seed))
    hook.remove()
    torch.testing.assert_close(block.running_audio_gate, torch.stack(gates).mean(0))
    assert block.running_steps.item() == 3
