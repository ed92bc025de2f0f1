"""The two encoders of a two-view experiment."""

from __future__ import annotations

import torch
from torch import nn


class EncoderPair(nn.Module):
    """Encoder per view; the same module twice when the encoder is shared.

    ``forward(view, x)`` encodes observations ``x`` of view 1 or 2 to (N, encoding_size);
    ``project(view, z)`` maps encodings through the encoder's projection head (``project``
    method, used only for the loss) when it has one, else returns them unchanged.
    """

    def __init__(self, encoder1: nn.Module, encoder2: nn.Module):
        super().__init__()
        self.encoder1 = encoder1
        self.encoder2 = encoder2

    @property
    def shared(self) -> bool:
        return self.encoder1 is self.encoder2

    def forward(self, view: int, x: torch.Tensor) -> torch.Tensor:
        return (self.encoder1 if view == 1 else self.encoder2)(x)

    def project(self, view: int, z: torch.Tensor) -> torch.Tensor:
        encoder = self.encoder1 if view == 1 else self.encoder2
        return encoder.project(z) if hasattr(encoder, "project") else z
