"""The scorers' training inputs: augmentation, frame standardisation and windowed batches.

These were rewritten for speed (one gather instead of a loop per clip); each test states the
definition the fast code must keep, written out the plain way, so a wrong index fails here."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcurate.data import AVTensors, TensorConfig, standardize_frames
from mmcurate.data.frames import FRAME_STD_FLOOR
from mmcurate.score.augment import roll_and_mask_audio, shift_frames
from mmcurate.score.train import InMemorySource


def _shift_reference(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Clip by clip: zero-pad by p, cut the S x S window at (dy, dx) of the clip's own draw."""
    b, t, c, s, _ = x.shape
    pad = max(1, s // 8)
    shifts = torch.randint(0, 2 * pad + 1, (b, 2), generator=gen)
    padded = F.pad(x.reshape(b, t * c, s, s), (pad, pad, pad, pad))
    out = torch.empty_like(x.reshape(b, t * c, s, s))
    for i in range(b):
        dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
        out[i] = padded[i, :, dy : dy + s, dx : dx + s]
    return out.reshape(b, t, c, s, s)


def _audio_reference(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Clip by clip: roll along time, then set one frequency band to the rolled clip's mean."""
    b, _, f, t = x.shape
    rolls = torch.randint(0, t, (b,), generator=gen)
    width = torch.randint(0, max(1, f // 8) + 1, (b,), generator=gen)
    start = (torch.rand(b, generator=gen) * (f - width + 1).float()).long()
    out = torch.empty_like(x)
    for i in range(b):
        out[i] = torch.roll(x[i], int(rolls[i]), dims=-1)
        w = int(width[i])
        if w:
            out[i, :, int(start[i]) : int(start[i]) + w, :] = out[i].mean()
    return out


def test_shift_frames_cuts_each_clips_own_window() -> None:
    x = torch.randint(0, 256, (17, 2, 3, 24, 24), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    fast = shift_frames(x, torch.Generator().manual_seed(5))
    assert torch.equal(fast, _shift_reference(x, torch.Generator().manual_seed(5)))
    # a lone bright pixel moves by the clip's own shift, the same for all its frames and channels
    dot = torch.zeros(4, 2, 3, 16, 16, dtype=torch.uint8)
    dot[:, :, :, 8, 5] = 255
    moved = shift_frames(dot, torch.Generator().manual_seed(3))
    shifts = torch.randint(0, 5, (4, 2), generator=torch.Generator().manual_seed(3))  # pad = 16 // 8 = 2
    for i in range(4):
        ys, xs = torch.nonzero(moved[i, 0, 0] == 255, as_tuple=True)
        assert (int(ys[0]), int(xs[0])) == (8 + 2 - int(shifts[i, 0]), 5 + 2 - int(shifts[i, 1]))
        assert torch.equal(moved[i], moved[i, :1, :1].expand_as(moved[i]))


def test_roll_and_mask_audio_matches_clip_by_clip() -> None:
    x = torch.randn(33, 1, 40, 29, generator=torch.Generator().manual_seed(2))
    fast = roll_and_mask_audio(x, torch.Generator().manual_seed(9))
    assert torch.equal(fast, _audio_reference(x, torch.Generator().manual_seed(9)))
    # some clips are masked (a band set to one value) and the roll keeps every clip's values otherwise
    assert not torch.equal(fast, x)


def test_standardize_frames_is_each_planes_own_standard_score() -> None:
    g = torch.Generator().manual_seed(4)
    frames = torch.randint(0, 256, (5, 2, 3, 12, 12), generator=g, dtype=torch.uint8)
    frames[0, 0, 1] = 77  # a flat plane: the floor keeps it at zero instead of dividing by zero
    x = frames.double() / 255.0
    std, mean = torch.std_mean(x, dim=(-2, -1), keepdim=True)
    expected = (x - mean) / std.clamp(min=FRAME_STD_FLOOR)
    got = standardize_frames(frames)
    assert got.dtype == torch.float32 and got.shape == frames.shape
    assert torch.allclose(got.double(), expected, atol=1e-5)
    assert float(got[0, 0, 1].abs().max()) < 1e-4
    # a non-contiguous input (a window of frames) gives the same as its copy
    assert torch.equal(standardize_frames(frames[:, 1:]), standardize_frames(frames[:, 1:].contiguous()))


def test_windowed_batches_are_the_windows_of_the_full_batches() -> None:
    n = 12
    tensors = AVTensors(
        frames=torch.randint(0, 256, (n, 3, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8),
        audio=torch.randn(n, 1, 8, 8),
        labels=torch.arange(n) % 3,
        sample_ids=[f"s{i}" for i in range(n)],
        classes=["a", "b", "c"],
        config=TensorConfig(image_size=8, num_frames=3),
        has_audio=torch.ones(n, dtype=torch.bool),
        has_frames=torch.ones(n, dtype=torch.bool),
    )
    source = InMemorySource(tensors, "visual")
    chunks = [torch.tensor([3, 1, 7]), torch.tensor([0, 11]), torch.tensor([5])]
    windows = [slice(1, 2), None, slice(2, 3)]
    full = list(source.batches(chunks))
    cut = list(source.batches(chunks, windows))
    for whole, part, window in zip(full, cut, windows):
        assert torch.equal(part, whole if window is None else whole[:, window])
