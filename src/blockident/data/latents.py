"""Latent spaces of the multimodal numerical simulation (Daunhawer et al., ICLR 2023).

A sample has content ``c`` (shared by both views), style ``s`` (view 1) and its perturbed copy
``s~`` (view 2), and modality-specific ``m1`` (view 1 only) and ``m2`` (view 2 only). Every
group is Gaussian with scale ``m_param``; with ``statistical_dependence`` each group has a
covariance drawn from a Wishart distribution, and with ``content_dependent_style`` the style is
shifted by an affine function of the content, ``s = a + B c + noise``.

The Wishart draws of the groups (c, s, the style change, m1, m2) use random state
``seed + i`` for the i-th group with ``wishart="independent"``, and ``seed`` for every group
with ``wishart="original"``, as the original code does: groups of equal dimension then share
one covariance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import nn

from blockident.errors import ConfigError

GROUPS = ("c", "s", "s~", "m1", "m2")
WISHART = ("independent", "original")


@dataclass(frozen=True)
class LatentSizes:
    content: int
    style: int
    modality: int


class MultimodalLatents(nn.Module):
    """Sampler of latent groups; its random parameters (covariances, a, B) are buffers.

    ``sample(n, generator)`` returns a dict of float32 tensors: ``c`` (n, content),
    ``s`` and ``s~`` (n, style), ``m1`` and ``m2`` (n, modality).
    """

    def __init__(
        self,
        sizes: LatentSizes,
        style_change_prob: float = 1.0,
        c_param: float = 1.0,
        m_param: float = 1.0,
        statistical_dependence: bool = False,
        content_dependent_style: bool = False,
        seed: int = 0,
        wishart: str = "independent",
    ):
        super().__init__()
        if not 0.0 <= style_change_prob <= 1.0:
            raise ConfigError(f"style_change_prob must be in [0, 1], got {style_change_prob}")
        if wishart not in WISHART:
            raise ConfigError(f"wishart must be one of {WISHART}, got {wishart!r}")
        self.sizes = sizes
        self.style_change_prob, self.c_param, self.m_param = style_change_prob, c_param, m_param
        dims = {"c": sizes.content, "s": sizes.style, "a": sizes.style,
                "m1": sizes.modality, "m2": sizes.modality}
        for i, (name, d) in enumerate(dims.items()):
            chol = torch.eye(d)
            if statistical_dependence and d > 0:
                state = seed if wishart == "original" else seed + i
                cov = np.atleast_2d(stats.wishart.rvs(d, np.eye(d), random_state=state))
                chol = torch.linalg.cholesky(torch.as_tensor(cov, dtype=torch.float32))
            self.register_buffer(f"chol_{name}", chol)
        rng = torch.Generator().manual_seed(seed)
        shift = content_dependent_style
        self.register_buffer("a", torch.randn(sizes.style, generator=rng) if shift else None)
        self.register_buffer(
            "B", torch.randn(sizes.style, sizes.content, generator=rng) if shift else None
        )

    def _normal(self, n: int, chol: torch.Tensor, scale: float, generator) -> torch.Tensor:
        eps = torch.randn(n, chol.shape[0], generator=generator)
        return scale * eps @ chol.T

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        c = self._normal(n, self.chol_c, self.m_param, generator)
        s = self._normal(n, self.chol_s, self.m_param, generator)
        if self.B is not None:
            s = s + self.a + c @ self.B.T
        change = torch.rand(s.shape, generator=generator) < self.style_change_prob
        s_tilde = torch.where(change, s + self._normal(n, self.chol_a, self.c_param, generator), s)
        m1 = self._normal(n, self.chol_m1, self.m_param, generator)
        m2 = self._normal(n, self.chol_m2, self.m_param, generator)
        return {"c": c, "s": s, "s~": s_tilde, "m1": m1, "m2": m2}
