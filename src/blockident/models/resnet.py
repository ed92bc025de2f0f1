"""ResNet-18/34 backbones whose state dicts use torchvision's key names.

Plain torch, no torchvision: a file of torchvision ImageNet weights (``resnet18-*.pth``) loads
directly through ``resnet(depth, weights=path)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from blockident.errors import ConfigError, DataError

LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection: (N, c_in, H, W) -> (N, c_out, H/s, W/s)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet of BasicBlocks: (N, 3, H, W) -> (N, num_classes), or (N, 512) features when
    ``num_classes`` is None (``fc`` is then the identity and holds no parameters)."""

    feature_dim = 512

    def __init__(self, layers: Sequence[int], num_classes: int | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        c_in = 64
        for i, (width, n_blocks) in enumerate(zip(widths, layers, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(c_in, width, stride)]
            blocks += [BasicBlock(width, width) for _ in range(n_blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c_in = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc: nn.Module = (nn.Identity() if num_classes is None
                              else nn.Linear(self.feature_dim, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def load_backbone_weights(model: nn.Module, state: Mapping[str, torch.Tensor],
                          source: str = "<state dict>") -> None:
    """Load ``state`` into ``model`` strictly, ignoring ``fc.*`` entries absent from the model;
    raise ValueError naming ``source`` and every missing, unexpected or misshapen key."""
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith("fc.")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
                    for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        raise DataError(f"weights in {source} do not fit {type(model).__name__}: "
                        f"missing keys {missing}; unexpected keys {unexpected}; "
                        f"shape mismatches {shapes}")
    model.load_state_dict(state)


def resnet(depth: int = 18, weights: str | Path | None = None) -> nn.Module:
    """ResNet-``depth`` (18 or 34) backbone, (N, 3, H, W) -> (N, 512); ``weights`` is an optional
    path to a torchvision-format state dict (its ``fc`` entries are ignored)."""
    if depth not in LAYERS:
        raise ConfigError(f"resnet depth must be one of {sorted(LAYERS)}, got {depth}")
    model = ResNet(LAYERS[depth])
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping):
            raise DataError(f"weights in {weights} are not a state dict: {type(state).__name__}")
        load_backbone_weights(model, state, str(weights))
    return model
