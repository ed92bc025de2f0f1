"""Image/text encoder pair for the multimodal image/text experiment."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from blockident.models.heads import EncoderHead, build_backbone
from blockident.models.pair import EncoderPair
from blockident.models.text import TextConvNet


def imgtxt_pair(vocab_size: int, image_backbone: str = "convnet", depth: int = 18,
                weights: str | Path | None = None, path: str | Path | None = None,
                hidden_size: int = 256, encoding_size: int = 32,
                projection_dim: int | None = None, text_embedding_dim: int = 64,
                text_channels: Sequence[int] = (128, 128), text_kernel_size: int = 3,
                text_features: int = 256, shared_projection: bool = False) -> EncoderPair:
    """``EncoderPair``: view 1 images (N, 3, H, W), view 2 token ids (N, L) -> (N, encoding_size).

    Image encoder: an ``EncoderHead`` (Linear -> LeakyReLU -> Linear via ``hidden_size``) on the
    image backbone (``image_backbone`` "convnet", "resnet" of ``depth`` optionally from
    ``weights``, or "clip" from directory ``path``). Text encoder: the same head on a
    :class:`TextConvNet` over a ``vocab_size`` vocabulary (``text_features`` features).
    ``shared_projection``: both heads' last Linear (hidden -> encoding) is one module.
    ``projection_dim``: SimCLR-style projection heads for the loss (see ``EncoderHead``).
    """
    image = EncoderHead(build_backbone(image_backbone, depth, weights, path), hidden_size,
                        encoding_size, projection_dim)
    text = EncoderHead(TextConvNet(vocab_size, text_embedding_dim, text_channels,
                                   text_kernel_size, text_features),
                       hidden_size, encoding_size, projection_dim)
    if shared_projection:
        text.head[-1] = image.head[-1]
    return EncoderPair(image, text)
