"""Mid-fusion with MMTM blocks, the model Greedy (Wu et al., ICML 2022) needs.

An MMTM block (multimodal transfer module) squeezes each branch's feature map to a channel
vector, mixes the two vectors in one shared layer, and excites (rescales the channels of) each
branch with a sigmoid gate computed from *both* modalities. That gate is the cross-modal input of
a branch. Greedy's re-balancing step replaces the gate of the branch it is "caring" for by the
running average of that gate, so the branch gets no sample-specific cross-modal information and
must learn from its own input.

Placement follows the Greedy reference: after ResNet stages 2, 3 and 4. The visual branch runs
frames folded into the batch; the squeeze averages over frames *and* space per clip using the
known number of frames (the reference hard-codes a batch of 64 there, which mis-groups frames
for any other batch size).
"""

from __future__ import annotations

import torch
from torch import nn

from mmcurate.models.av_model import AVOutput
from mmcurate.models.encoders import (
    AudioEncoder,
    VisualEncoder,
    check_frames,
    fold_frames,
    pool_audio,
    pool_visual,
)
from mmcurate.models.fusion import FUSIONS, FUSIONS_WITH_MODALITY_LOGITS, build_fusion

#: ResNet stages (0-based) after which an MMTM block sits
MMTM_AFTER_STAGES: tuple[int, ...] = (1, 2, 3)


class MMTM(nn.Module):
    """One multimodal transfer module between an audio and a visual feature map.

    Parameter names say which branch they feed: ``fc_audio`` excites audio (it is audio's
    cross-modal "bypass"), ``fc_visual`` excites visual, ``fc_squeeze`` is shared by both.
    """

    def __init__(self, audio_channels: int, visual_channels: int, ratio: int = 4) -> None:
        super().__init__()
        joint = audio_channels + visual_channels
        hidden = max(1, 2 * joint // ratio)
        self.fc_squeeze = nn.Linear(joint, hidden)
        self.fc_audio = nn.Linear(hidden, audio_channels)
        self.fc_visual = nn.Linear(hidden, visual_channels)
        self.register_buffer("running_audio_gate", torch.zeros(audio_channels))
        self.register_buffer("running_visual_gate", torch.zeros(visual_channels))
        self.register_buffer("running_steps", torch.zeros((), dtype=torch.long))

    def forward(
        self,
        audio_maps: torch.Tensor,
        visual_maps: torch.Tensor,
        batch: int,
        n_frames: int,
        caring_modality: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Excite (B, Ca, f, t) audio maps and (B*T, Cv, h, w) visual maps.

        ``caring_modality`` ("audio"/"visual", only during Greedy's re-balancing window): that
        branch's gate is replaced by its running average, withholding cross-modal input from it.
        """
        sq_a = audio_maps.mean(dim=(2, 3))
        cv, h, w = visual_maps.shape[1:]
        sq_v = visual_maps.reshape(batch, n_frames, cv, h, w).mean(dim=(1, 3, 4))
        z = torch.relu(self.fc_squeeze(torch.cat([sq_a, sq_v], dim=1)))
        gate_a = torch.sigmoid(self.fc_audio(z))
        gate_v = torch.sigmoid(self.fc_visual(z))
        if self.training:
            self._update_running(gate_a, gate_v)
        if caring_modality == "audio":
            gate_a = self.running_audio_gate.expand_as(gate_a)
        elif caring_modality == "visual":
            gate_v = self.running_visual_gate.expand_as(gate_v)
        elif caring_modality is not None:
            raise ValueError(f"caring_modality must be 'audio', 'visual' or None, got {caring_modality!r}")
        audio_out = audio_maps * gate_a[:, :, None, None]
        visual_out = visual_maps.reshape(batch, n_frames, cv, h, w) * gate_v[:, None, :, None, None]
        return audio_out, visual_out.reshape(batch * n_frames, cv, h, w)

    @torch.no_grad()
    def _update_running(self, gate_a: torch.Tensor, gate_v: torch.Tensor) -> None:
        """Cumulative mean over training steps of each branch's batch-mean gate."""
        n = self.running_steps.item()
        self.running_audio_gate.mul_(n / (n + 1)).add_(gate_a.mean(0).detach() / (n + 1))
        self.running_visual_gate.mul_(n / (n + 1)).add_(gate_v.mean(0).detach() / (n + 1))
        self.running_steps.add_(1)


class MMTMClassifier(nn.Module):
    """Two ResNet-18 encoders with MMTM blocks between their later stages, then a fusion head.

    Same encoders and head as :class:`~mmcurate.models.av_model.AVClassifier`, so Greedy is
    compared with the other methods at equal capacity plus only the MMTM layers.
    """

    def __init__(self, num_classes: int, width: int = 16, fusion: str = "concat", ratio: int = 4) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        self.num_classes = num_classes
        self.width = width
        self.fusion = fusion
        self.audio_encoder = AudioEncoder(width)
        self.visual_encoder = VisualEncoder(width)
        chans = self.audio_encoder.net.stage_channels
        self.mmtm = nn.ModuleList([MMTM(chans[i], chans[i], ratio) for i in MMTM_AFTER_STAGES])
        self.head = build_fusion(fusion, self.audio_encoder.out_dim, self.visual_encoder.out_dim, num_classes)

    @property
    def has_modality_logits(self) -> bool:
        return self.fusion in FUSIONS_WITH_MODALITY_LOGITS

    def forward(self, audio: torch.Tensor, frames: torch.Tensor, caring_modality: str | None = None) -> AVOutput:
        batch, n_frames = check_frames(frames)
        net_a, net_v = self.audio_encoder.net, self.visual_encoder.net
        xa, xv = net_a.stem(audio), net_v.stem(fold_frames(frames))
        blocks = iter(self.mmtm)
        for i, (stage_a, stage_v) in enumerate(zip(net_a.stages, net_v.stages)):
            xa, xv = stage_a(xa), stage_v(xv)
            if i in MMTM_AFTER_STAGES:
                xa, xv = next(blocks)(xa, xv, batch, n_frames, caring_modality)
        a, v = pool_audio(xa), pool_visual(xv, batch, n_frames)
        out = self.head(a, v)
        return AVOutput(out.logits, a, v, out.audio_logits, out.visual_logits)
