"""Per-modality encoders: a spectrogram or a clip of frames -> one feature vector per sample.

Both follow OGM-GE's backbone: the audio ResNet takes a 1-channel spectrogram and is average
pooled over (F, T); the visual ResNet is applied to every frame (frames folded into the batch)
and average pooled over (T, H, W) jointly, so a clip of T frames costs T images but gives a
single D-dimensional vector. ``D = 8 * width``.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcurate.models.resnet import ResNet18


class AudioEncoder(nn.Module):
    """(B, 1, F, T) spectrogram -> (B, 8*width) features."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.net = ResNet18(in_channels=1, width=width)
        self.out_dim = self.net.out_channels

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if spec.dim() != 4 or spec.shape[1] != 1:
            raise ValueError(f"AudioEncoder expects (B, 1, F, T) spectrograms, got shape {tuple(spec.shape)}")
        return pool_audio(self.net(spec))


class VisualEncoder(nn.Module):
    """(B, T, 3, H, W) normalised frames -> (B, 8*width) features."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.net = ResNet18(in_channels=3, width=width)
        self.out_dim = self.net.out_channels

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch, n_frames = check_frames(frames)
        maps = self.net(fold_frames(frames))
        return pool_visual(maps, batch, n_frames)


def check_frames(frames: torch.Tensor) -> tuple[int, int]:
    """Validate a (B, T, 3, H, W) clip tensor; return (B, T)."""
    if frames.dim() != 5 or frames.shape[2] != 3:
        raise ValueError(f"VisualEncoder expects (B, T, 3, H, W) frames, got shape {tuple(frames.shape)}")
    return int(frames.shape[0]), int(frames.shape[1])


def fold_frames(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) -> (B*T, 3, H, W): every frame goes through the 2-D network as an image."""
    b, t, c, h, w = frames.shape
    return frames.reshape(b * t, c, h, w)


def pool_audio(maps: torch.Tensor) -> torch.Tensor:
    """(B, D, f, t) -> (B, D): global average over the spectrogram plane."""
    return maps.mean(dim=(2, 3))


def pool_visual(maps: torch.Tensor, batch: int, n_frames: int) -> torch.Tensor:
    """(B*T, D, h, w) -> (B, D): average over frames and space together (OGM-GE's 3-D pooling)."""
    d, h, w = maps.shape[1:]
    return maps.reshape(batch, n_frames, d, h, w).mean(dim=(1, 3, 4))
