"""A plain Vision Transformer (Dosovitskiy et al., 2021) that returns its patch tokens.

Object-centric models need the tokens of every patch, not only a pooled vector, so
``ViT.forward`` returns both: ``(tokens (B, N, dim), pooled (B, dim))``, with ``N = h * w``
the patches of the ``h x w`` grid in row-major order (``grid(H, W)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from blockident.errors import ConfigError


class Block(nn.Module):
    """Pre-norm transformer block: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2))  # (B, heads, N, d / heads)
        x = x + self.out(a.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patch embedding (a convolution of stride ``patch_size``), a learned positional embedding
    (added once, or before every block with ``pos_every_block``), ``depth`` pre-norm blocks of
    ``heads`` heads and a final LayerNorm.

    ``forward(x (B, 3, H, W)) -> (tokens (B, N, dim), pooled (B, dim))``: the normalised patch
    tokens, and the class token (``pooling="cls"``) or the mean of the patch tokens
    (``pooling="avg"``). Images of another size than ``image_size`` work too: the positional
    embedding is interpolated (bicubic) to their grid.
    """

    def __init__(self, image_size: int = 64, patch_size: int = 8, dim: int = 64, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 4, pos_every_block: bool = False,
                 pooling: str = "cls"):
        super().__init__()
        if image_size % patch_size:
            raise ConfigError(f"ViT image_size {image_size} is not a multiple of patch_size "
                              f"{patch_size}")
        if dim % heads:
            raise ConfigError(f"ViT dim {dim} is not a multiple of heads {heads}")
        if pooling not in ("cls", "avg"):
            raise ConfigError(f"ViT pooling must be 'cls' or 'avg', got {pooling!r}")
        self.patch_size, self.dim, self.pooling = patch_size, dim, pooling
        self.feature_dim = dim
        self.pos_every_block = pos_every_block
        self.side = image_size // patch_size
        self.embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.pos = nn.Parameter(torch.zeros(1, self.side * self.side, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        if pooling == "cls":
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.trunc_normal_(self.cls, std=0.02)
            nn.init.trunc_normal_(self.cls_pos, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) patch grid of images of ``height`` x ``width``."""
        return height // self.patch_size, width // self.patch_size

    def _positions(self, h: int, w: int) -> torch.Tensor:
        if (h, w) == (self.side, self.side):
            pos = self.pos
        else:
            grid = self.pos.reshape(1, self.side, self.side, self.dim).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
            pos = grid.permute(0, 2, 3, 1).reshape(1, h * w, self.dim)
        if self.pooling == "cls":
            pos = torch.cat([self.cls_pos, pos], dim=1)
        return pos

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embed(x)  # (B, dim, h, w)
        b, _, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, N, dim), row-major
        if self.pooling == "cls":
            x = torch.cat([self.cls.expand(b, -1, -1), x], dim=1)
        pos = self._positions(h, w)
        x = x + pos
        for i, block in enumerate(self.blocks):
            if self.pos_every_block and i > 0:
                x = x + pos
            x = block(x)
        x = self.norm(x)
        if self.pooling == "cls":
            return x[:, 1:], x[:, 0]
        return x, x.mean(dim=1)
