"""Training-time augmentation of the scorers' inputs (never applied when predicting).

Why: the CPU scorers train from scratch on a few thousand clips, some of them with the wrong
evidence for their label (that is what the discrepancy is meant to find). Without augmentation a
small ResNet memorises those clips and generalises worse; small random shifts are the cheapest
regulariser (the clips' content does not change with a shift of a few pixels or a few audio
frames), and they cost next to nothing next to the convolutions.

* visual: every clip is shifted by up to ``max(1, S // 8)`` pixels in x and y (zero-padded,
  the same shift for all its frames);
* audio: every spectrogram is rolled along time by a random offset (clips are repeat-padded to
  a fixed length, so a roll keeps the content) and one band of up to ``bins // 8`` frequency
  bins is set to the clip's mean (SpecAugment's frequency mask, Park et al. 2019).

All draws come from the training loop's generator, so a seed gives the same augmentations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def shift_frames(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(B, T, C, S, S) -> the same shape, each clip shifted by its own random (dx, dy)."""
    b, t, c, s, _ = x.shape
    pad = max(1, s // 8)
    shifts = torch.randint(0, 2 * pad + 1, (b, 2), generator=gen)
    padded = F.pad(x.reshape(b, t * c, s, s), (pad, pad, pad, pad))
    # every S x S window of the padded clip as a view (B, TC, 2p+1, 2p+1, S, S); one gather picks each
    # clip's own, instead of a Python loop of B slice copies
    windows = padded.unfold(2, s, 1).unfold(3, s, 1)
    return windows[torch.arange(b), :, shifts[:, 0], shifts[:, 1]].reshape(b, t, c, s, s)


def roll_and_mask_audio(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(B, 1, F, T) -> the same shape: a random roll along time and one frequency band masked."""
    b, _, f, t = x.shape
    rolls = torch.randint(0, t, (b,), generator=gen)
    width = torch.randint(0, max(1, f // 8) + 1, (b,), generator=gen)
    start = (torch.rand(b, generator=gen) * (f - width + 1).float()).long()
    # the roll as one gather (output column j takes input column j - roll, modulo T) and the mask as one
    # ``where``: the same values as rolling and masking clip by clip, at half the time
    source = (torch.arange(t)[None, :] - rolls[:, None]) % t
    out = x.gather(-1, source[:, None, None, :].expand(b, x.shape[1], f, t))
    means = out.mean(dim=(1, 2, 3))
    band = torch.arange(f)[None, :]
    masked = (band >= start[:, None]) & (band < (start + width)[:, None])
    return torch.where(masked[:, None, :, None], means[:, None, None, None].to(out.dtype), out)


def augment(x: torch.Tensor, modality: str, gen: torch.Generator) -> torch.Tensor:
    """Model inputs of one training batch, augmented for ``modality``."""
    return shift_frames(x, gen) if modality == "visual" else roll_and_mask_audio(x, gen)
