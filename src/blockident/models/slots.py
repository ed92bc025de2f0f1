"""Object functions (tokens + queries -> slots) and the queries that start them.

An *object function* maps patch tokens (B, N, D) and initial queries (B, S, D) to slots
(B, S, D) and an attention (B, S, N) of every slot over the tokens: ``SlotAttention``
(Locatello et al., 2020) or ``CrossAttentionDecoder`` (a transformer decoder without
self-attention). *Queries* give the initial slots: ``forward(tokens, num=None) -> (B, S, D)``,
``num`` the number of slots where the kind allows choosing it at run time.

Every class takes the width ``dim`` as a keyword, so a config can leave it out and
:class:`blockident.models.objects.ObjectModel` fills in the backbone's width (``_partial_``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from blockident.errors import ConfigError


def _mlp(dim: int, hidden: int, out: int | None = None) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out or dim))


# -- object functions -----------------------------------------------------------------------------
class SlotAttention(nn.Module):
    """Slot attention (Locatello et al., 2020), ``iters`` rounds of: attention logits
    q(slots) . k(tokens) / sqrt(D), softmax over the SLOTS (slots compete for tokens), ``+ eps``
    and renormalised over the tokens, so each slot's update is a weighted mean of v(tokens);
    a GRU cell updates each slot, then a residual MLP (width ``hidden``) on LN(slot).

    ``forward(tokens (B, N, D), queries (B, S, D)) -> (slots (B, S, D), attn (B, S, N))``,
    ``attn`` the softmax over slots of the last round (each token's column sums to one).
    """

    def __init__(self, dim: int, iters: int = 3, hidden: int | None = None, eps: float = 1e-8):
        super().__init__()
        if iters < 1:
            raise ConfigError(f"slot attention needs iters >= 1, got {iters}")
        self.iters, self.eps, self.scale = iters, eps, 1.0 / math.sqrt(dim)
        self.norm_inputs, self.norm_slots, self.norm_mlp = (nn.LayerNorm(dim) for _ in range(3))
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.mlp = _mlp(dim, hidden or 2 * dim)

    def forward(self, tokens: torch.Tensor, queries: torch.Tensor):
        b, s, d = queries.shape
        inputs = self.norm_inputs(tokens)
        k, v = self.to_k(inputs), self.to_v(inputs)  # (B, N, D)
        slots = queries
        for _ in range(self.iters):
            previous = slots
            q = self.to_q(self.norm_slots(slots))  # (B, S, D)
            logits = torch.einsum("bsd,bnd->bsn", q, k) * self.scale
            attn = logits.softmax(dim=1)  # over slots
            weights = attn + self.eps
            weights = weights / weights.sum(dim=2, keepdim=True)  # weighted mean over tokens
            updates = torch.einsum("bsn,bnd->bsd", weights, v)
            slots = self.gru(updates.reshape(b * s, d), previous.reshape(b * s, d)).view(b, s, d)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn


class _CrossBlock(nn.Module):
    """q + MHA(LN(q), LN(tokens)), then q + MLP(LN(q))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_mlp = (nn.LayerNorm(dim) for _ in range(3))
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(),
                                 nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, q: torch.Tensor, tokens: torch.Tensor, need_weights: bool):
        kv = self.norm_kv(tokens)
        a, weights = self.attn(self.norm_q(q), kv, kv, need_weights=need_weights,
                               average_attn_weights=True)
        q = q + a
        return q + self.mlp(self.norm_mlp(q)), weights


class CrossAttentionDecoder(nn.Module):
    """``depth`` pre-norm blocks in which the queries attend to the tokens (cross-attention of
    ``heads`` heads, then an MLP), and a final LayerNorm.

    ``forward(tokens (B, N, D), queries (B, S, D)) -> (slots (B, S, D), attn (B, S, N))``,
    ``attn`` the last block's attention averaged over heads: a softmax over the TOKENS (each
    slot's row sums to one), unlike slot attention's softmax over slots.
    """

    def __init__(self, dim: int, depth: int = 2, heads: int = 4, mlp_ratio: float = 4):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"cross-attention dim {dim} is not a multiple of heads {heads}")
        if depth < 1:
            raise ConfigError(f"cross-attention needs depth >= 1, got {depth}")
        self.blocks = nn.ModuleList(_CrossBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, queries: torch.Tensor):
        q, attn = queries, None
        for i, block in enumerate(self.blocks):
            q, attn = block(q, tokens, need_weights=i == len(self.blocks) - 1)
        return self.norm(q), attn


# -- queries --------------------------------------------------------------------------------------
def _fixed_num(name: str, own: int, num: int | None) -> int:
    if num is not None and num != own:
        raise ConfigError(f"{name} has {own} learned queries; it cannot make {num}")
    return own


class LearnedQueries(nn.Module):
    """A fixed number ``num`` of learned query vectors, the same for every image."""

    def __init__(self, num: int, dim: int):
        super().__init__()
        self.num = num
        self.queries = nn.Parameter(torch.randn(num, dim) * dim ** -0.5)

    def forward(self, tokens: torch.Tensor, num: int | None = None) -> torch.Tensor:
        _fixed_num("LearnedQueries", self.num, num)
        return self.queries.unsqueeze(0).expand(len(tokens), -1, -1)


class SampledQueries(nn.Module):
    """``num`` queries (or ``num`` given at run time) drawn per image: from one Gaussian with a
    learned mean and log-sigma per dimension (``kind="gaussian"``, Locatello et al.), or from a
    uniform mixture of ``components`` such Gaussians (``kind="mixture"``), the component of every
    query drawn uniformly. Sampling is reparameterised (mean + sigma * noise), so the means and
    sigmas get gradients.

    In eval mode the queries are ONE draw from a generator of fixed ``eval_seed``, the same for
    every image and every call: an image's encoding depends neither on the call nor on its batch.
    The means alone would give identical slots under a single Gaussian, which is why a fixed
    sample is used instead.
    """

    def __init__(self, num: int, dim: int, kind: str = "gaussian", components: int = 1,
                 eval_seed: int = 0):
        super().__init__()
        if kind not in ("gaussian", "mixture"):
            raise ConfigError("sampled queries: kind must be 'gaussian' or 'mixture', "
                              f"got {kind!r}")
        components = 1 if kind == "gaussian" else components
        if components < 1:
            raise ConfigError(f"sampled queries need components >= 1, got {components}")
        self.num, self.kind, self.eval_seed = num, kind, eval_seed
        self.mu = nn.Parameter(torch.randn(components, dim) * dim ** -0.5)
        self.log_sigma = nn.Parameter(torch.full((components, dim), math.log(dim ** -0.5)))

    def forward(self, tokens: torch.Tensor, num: int | None = None) -> torch.Tensor:
        b, s = len(tokens), num or self.num
        components, dim = self.mu.shape
        if self.training:
            noise = torch.randn(b, s, dim, device=self.mu.device, dtype=self.mu.dtype)
            which = torch.randint(components, (b, s), device=self.mu.device)
        else:  # one fixed-seed draw on the CPU, the same for every image and device
            generator = torch.Generator().manual_seed(self.eval_seed)
            noise = torch.randn(1, s, dim, generator=generator).to(self.mu).expand(b, -1, -1)
            which = torch.randint(components, (1, s), generator=generator)
            which = which.to(self.mu.device).expand(b, -1)
        return self.mu[which] + self.log_sigma[which].exp() * noise


class KMeansQueries(nn.Module):
    """The ``num`` (or ``num`` given at run time) centres of ``iters`` rounds of Lloyd's k-means
    on each image's patch tokens, without gradient. Initial centres: distinct random tokens in
    training, evenly spaced tokens (deterministic) in eval mode; a cluster that empties keeps
    its centre. ``dim`` is accepted for a uniform interface and unused."""

    def __init__(self, num: int = 4, iters: int = 10, dim: int | None = None):
        super().__init__()
        self.num, self.iters = num, iters

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, num: int | None = None) -> torch.Tensor:
        b, n, d = tokens.shape
        k = num or self.num
        if k > n:
            raise ConfigError(f"k-means queries: {k} clusters but only {n} tokens per image")
        x = tokens.detach().float()
        if self.training:
            idx = torch.rand(b, n, device=x.device).argsort(dim=1)[:, :k]
        else:
            idx = torch.linspace(0, n - 1, k, device=x.device).round().long().expand(b, k)
        centres = x.gather(1, idx.unsqueeze(-1).expand(b, k, d))
        for _ in range(self.iters):
            assign = torch.cdist(x, centres).argmin(dim=2)  # (B, N)
            onehot = F.one_hot(assign, k).to(x.dtype)  # (B, N, k)
            counts = onehot.sum(dim=1)  # (B, k)
            sums = torch.einsum("bnk,bnd->bkd", onehot, x)
            centres = torch.where(counts[..., None] > 0,
                                  sums / counts.clamp_min(1)[..., None], centres)
        return centres.to(tokens.dtype)
