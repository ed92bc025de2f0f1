"""Encoder heads on image backbones, and the image encoder pair."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from blockident.errors import ConfigError
from blockident.models.clip import ClipVision
from blockident.models.convnet import convnet
from blockident.models.pair import EncoderPair
from blockident.models.resnet import resnet


class EncoderHead(nn.Module):
    """backbone -> Linear -> LeakyReLU -> Linear: inputs of the backbone (images (N, 3, H, W),
    token ids (N, L)) -> (N, encoding_size). The backbone states its ``feature_dim``. With
    ``hidden_size=None`` there is no head: the encoding is the backbone's features (e.g. to read
    out a pretrained ResNet as it is).

    ``project(z)`` maps encodings (N, encoding_size) through an optional SimCLR-style head
    (Linear -> ReLU -> Linear to ``projection_dim``), used only for the loss; the identity when
    ``projection_dim`` is None.
    """

    def __init__(self, backbone: nn.Module, hidden_size: int | None, encoding_size: int,
                 projection_dim: int | None = None, slope: float = 0.01):
        super().__init__()
        self.backbone = backbone
        if hidden_size is None:  # the backbone's features are the encoding
            self.head, encoding_size = nn.Identity(), backbone.feature_dim
        else:
            self.head = nn.Sequential(nn.Linear(backbone.feature_dim, hidden_size),
                                      nn.LeakyReLU(slope), nn.Linear(hidden_size, encoding_size))
        self.encoding_size = encoding_size
        self.projection: nn.Module = nn.Identity()
        if projection_dim is not None:
            self.projection = nn.Sequential(nn.Linear(encoding_size, encoding_size),
                                            nn.ReLU(inplace=True),
                                            nn.Linear(encoding_size, projection_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def project(self, z: torch.Tensor) -> torch.Tensor:
        return self.projection(z)


def build_backbone(backbone: str, depth: int = 18, weights: str | Path | None = None,
                   path: str | Path | None = None) -> nn.Module:
    """Image backbone (N, 3, H, W) -> (N, feature_dim) by name: "convnet"; "resnet" of
    ``depth``, optionally from torchvision-format ``weights``; "clip" from directory ``path``."""
    if weights is not None and backbone != "resnet":
        raise ConfigError("pretrained weights are only supported for backbone='resnet'")
    if path is not None and backbone != "clip":
        raise ConfigError("a model path is only supported for backbone='clip'")
    if backbone == "convnet":
        return convnet()
    if backbone == "resnet":
        return resnet(depth, weights)
    if backbone == "clip":
        if path is None:
            raise ConfigError("backbone='clip' needs the path of a local CLIP model directory")
        return ClipVision(path)
    raise ConfigError(f"unknown backbone {backbone!r}; expected 'convnet', 'resnet' or 'clip'")


def image_pair(backbone: str = "convnet", depth: int = 18, weights: str | Path | None = None,
               hidden_size: int = 512, encoding_size: int = 64,
               projection_dim: int | None = None, shared_encoder: bool = True,
               path: str | Path | None = None) -> EncoderPair:
    """``EncoderHead`` per view on a ``backbone`` ("convnet"; "resnet" of ``depth``, optionally
    from ``weights``; or "clip", the CLIP vision tower saved in directory ``path``);
    ``shared_encoder`` uses one encoder for both views."""

    def build() -> EncoderHead:
        return EncoderHead(build_backbone(backbone, depth, weights, path), hidden_size,
                           encoding_size, projection_dim)

    encoder1 = build()
    encoder2 = encoder1 if shared_encoder else build()
    return EncoderPair(encoder1, encoder2)
