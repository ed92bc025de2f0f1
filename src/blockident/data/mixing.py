"""Invertible MLP mixing functions: latents (N, n) -> observations (N, n).

Each layer is a square weight matrix followed, except after the last, by a leaky ReLU (slope
0.2), so the map is a bijection. Weight matrices are drawn until their condition number is
below a threshold, which keeps the mixing well conditioned (as in von Kügelgen et al. 2021 and
Daunhawer et al. 2023): the threshold is the ``cond_quantile`` quantile of the condition numbers
of ``n_calibration`` random matrices of the same size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def well_conditioned_matrix(
    n: int, rng: np.random.Generator, threshold: float, max_tries: int = 100_000
) -> np.ndarray:
    """An (n, n) uniform(-1, 1) matrix with columns scaled to unit norm and cond < threshold."""
    for _ in range(max_tries):
        w = rng.uniform(-1.0, 1.0, size=(n, n))
        w /= np.linalg.norm(w, axis=0, keepdims=True)
        if np.linalg.cond(w) < threshold:
            return w
    raise RuntimeError(f"no {n}x{n} matrix with condition number below {threshold:.3g} found")


def condition_threshold(
    n: int, rng: np.random.Generator, quantile: float, n_calibration: int
) -> float:
    """The ``quantile`` of condition numbers of ``n_calibration`` random (n, n) matrices."""
    w = rng.uniform(-1.0, 1.0, size=(n_calibration, n, n))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    return float(np.quantile(np.linalg.cond(w), quantile))


class InvertibleMLP(nn.Sequential):
    """Frozen bijection R^n -> R^n: ``n_layers`` linear maps with leaky ReLU(0.2) between."""

    def __init__(
        self,
        n: int,
        n_layers: int = 3,
        seed: int = 0,
        cond_quantile: float = 0.001,
        n_calibration: int = 25000,
    ):
        rng = np.random.default_rng(seed)
        threshold = condition_threshold(n, rng, cond_quantile, n_calibration)
        layers: list[nn.Module] = []
        for i in range(n_layers):
            linear = nn.Linear(n, n, bias=False)
            w = well_conditioned_matrix(n, rng, threshold)
            linear.weight.data = torch.as_tensor(w, dtype=torch.float32)
            layers.append(linear)
            if i < n_layers - 1:
                layers.append(nn.LeakyReLU(0.2))
        super().__init__(*layers)
        self.requires_grad_(False)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Exact inverse (N, n) -> (N, n), used to check invertibility."""
        for layer in reversed(self):
            if isinstance(layer, nn.Linear):
                x = torch.linalg.solve(layer.weight, x.T).T
            else:
                x = torch.where(x >= 0, x, x / 0.2)
        return x
