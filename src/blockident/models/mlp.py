"""MLP encoders for vector observations."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from blockident.models.pair import EncoderPair


def mlp(input_dim: int, output_dim: int, hidden: Sequence[int], slope: float = 0.01) -> nn.Module:
    """Linear layers of widths ``hidden`` with leaky ReLUs between: (N, input) -> (N, output)."""
    widths = [input_dim, *hidden]
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(w_in, w_out), nn.LeakyReLU(slope, inplace=True)]
    layers.append(nn.Linear(widths[-1], output_dim))
    return nn.Sequential(*layers)


def mlp_pair(input_dim: int, encoding_size: int, hidden_multipliers: Sequence[int],
             shared_encoder: bool = False) -> EncoderPair:
    """One MLP per view with hidden widths ``m * input_dim`` for m in ``hidden_multipliers``
    (the paper uses 10, 50, 50, 50, 50, 10); ``shared_encoder`` uses one MLP for both views."""
    hidden = [m * input_dim for m in hidden_multipliers]
    encoder1 = mlp(input_dim, encoding_size, hidden)
    encoder2 = encoder1 if shared_encoder else mlp(input_dim, encoding_size, hidden)
    return EncoderPair(encoder1, encoder2)
