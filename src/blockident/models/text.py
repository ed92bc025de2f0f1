"""Convolutional text encoder over token embeddings, for sequences of any length."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from blockident.errors import ConfigError

PAD_ID = 0  # :class:`blockident.data.text.Vocabulary` pads with id 0


class TextConvNet(nn.Module):
    """Token ids (N, L) -> features (N, output_dim), for any L.

    Embedding (``embedding_dim``, the pad id embeds to zeros) -> one Conv1d (``kernel_size``,
    stride 1, zero padding) -> ReLU block per width in ``channels`` and a last one of width
    ``output_dim`` -> max over the sequence. Activations at pad positions are zeroed after every
    block, so the features do not depend on how much padding follows a caption (the activations
    are >= 0, so the zeros never win the max over a caption's tokens). The paper's text
    encoder is a 2D ConvNet over a fixed sequence length; this keeps its convolutional nature
    but pools globally.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64,
                 channels: Sequence[int] = (128, 128), kernel_size: int = 3,
                 output_dim: int = 256):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ConfigError(f"kernel_size must be odd (same-length convolutions), "
                              f"got {kernel_size}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        widths = [embedding_dim, *channels, output_dim]
        self.convs = nn.ModuleList(nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2)
                                   for c_in, c_out in zip(widths[:-1], widths[1:], strict=True))
        self.feature_dim = int(output_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2:
            raise ValueError(f"expected token ids (N, L), got shape {tuple(tokens.shape)}")
        mask = (tokens != PAD_ID).unsqueeze(1)         # (N, 1, L)
        x = self.embedding(tokens).transpose(1, 2)     # (N, embedding_dim, L)
        for conv in self.convs:
            x = torch.relu(conv(x)) * mask
        return x.amax(dim=2)
