"""Small in-memory training tensors for the scorer tests: random frames, audio whose mean carries the label."""

from __future__ import annotations

import torch

from mmcurate.data import AVTensors, TensorConfig


def random_av_tensors(n: int = 48, classes: int = 3, separation: float = 1.0) -> AVTensors:
    """``n`` clips of ``classes`` labels (round-robin): 2 random 16 px frames each (nothing to learn there) and
    16 x 16 audio features of unit noise shifted by ``separation`` x the label (learnable)."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % classes
    return AVTensors(
        frames=torch.randint(0, 256, (n, 2, 3, 16, 16), generator=g, dtype=torch.uint8),
        audio=torch.randn(n, 1, 16, 16, generator=g) + separation * labels[:, None, None, None].float(),
        labels=labels,
        sample_ids=[f"s{i}" for i in range(n)],
        classes=[str(c) for c in range(classes)],
        config=TensorConfig(image_size=16, num_frames=2),
        has_audio=torch.ones(n, dtype=torch.bool),
        has_frames=torch.ones(n, dtype=torch.bool),
    )
