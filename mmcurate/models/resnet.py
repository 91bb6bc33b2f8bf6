"""ResNet-18 layout with a configurable stem and width, trained from scratch.

The field's reference code (OGM-GE and everything that copies it) uses two ResNet-18s: a
1-channel one for spectrograms and a 3-channel one for frames. No pretrained weights can be
downloaded here, and a CPU cannot train 11 M parameters in minutes, so the base channel count
(``width``) is a parameter: ``width=64`` is the standard ResNet-18, ``width=8`` or ``16`` keeps
the exact layout (BasicBlock, [2, 2, 2, 2], strides 1-2-2-2, 7x7 stride-2 stem + max-pool) at a
size a CPU trains in minutes. The four stages are exposed separately because Greedy's MMTM
blocks need the feature maps between them.
"""

from __future__ import annotations

import torch
from torch import nn

#: blocks per stage of ResNet-18
RESNET18_LAYERS: tuple[int, int, int, int] = (2, 2, 2, 2)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 projection when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 trunk without the classifier: image-like input -> (N, 8*width, h, w) feature map.

    Args:
        in_channels: 1 for spectrograms, 3 for RGB frames.
        width: channels of the first stage; the stages have width, 2w, 4w, 8w channels.
    """

    def __init__(self, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        if in_channels < 1 or width < 1:
            raise ValueError(f"in_channels and width must be positive, got {in_channels}, {width}")
        self.in_channels = in_channels
        self.width = width
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = [width, 2 * width, 4 * width, 8 * width]
        strides = [1, 2, 2, 2]
        stages = []
        prev = width
        for ch, stride, n_blocks in zip(channels, strides, RESNET18_LAYERS):
            blocks = [BasicBlock(prev, ch, stride)] + [BasicBlock(ch, ch, 1) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            prev = ch
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        #: channels of the final feature map
        self.out_channels = 8 * width
        #: channels after each stage (MMTM blocks are sized from these)
        self.stage_channels = tuple(channels)
        init_resnet_weights(self)

    @property
    def stages(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        """The four residual stages, in order."""
        return (self.layer1, self.layer2, self.layer3, self.layer4)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv 7x7/2 -> BN -> ReLU -> max-pool 3x3/2."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x


def init_resnet_weights(module: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convolutions and unit/zero BatchNorm, as OGM-GE initialises."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
