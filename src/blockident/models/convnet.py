"""Small convolutional encoder for CPU-sized images (64x64, 128x128)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from blockident.errors import ConfigError


class ConvNet(nn.Module):
    """Stride-2 3x3 conv -> BatchNorm -> ReLU blocks, then global average pooling:
    (N, 3, H, W) -> (N, channels[-1]) for any H, W >= 16."""

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 256), in_channels: int = 3):
        super().__init__()
        if not channels:
            raise ConfigError("convnet needs at least one channel width")
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = int(channels[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


def convnet(channels: Sequence[int] = (32, 64, 128, 256)) -> nn.Module:
    """``ConvNet`` with a stride-2 block per entry of ``channels``; feature_dim is the last."""
    return ConvNet(channels)
