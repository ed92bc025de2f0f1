"""InfoNCE family of contrastive losses.

Every loss takes encodings of the two views, ``z1`` and ``z2`` of shape (N, D), where row i of
``z1`` and row i of ``z2`` form a positive pair. Under DDP (an initialised process group with
more than one process) the candidates are gathered from all processes with autograd-aware
collectives, so the per-process losses average to the loss of one process on the union batch
and gradients flow to every process's encodings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def gather(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` (N, D) from all processes to (world*N, D), keeping gradients."""
    _, world = _world()
    if world == 1:
        return z
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(z), dim=0)


def pairwise_similarity(a: torch.Tensor, b: torch.Tensor, sim: str) -> torch.Tensor:
    """Similarity of every row of ``a`` (N, D) with every row of ``b`` (M, D): (N, M).

    ``cosine``: cosine similarity; ``neg_l2sq``: minus the squared Euclidean distance, computed
    from inner products (no (N, M, D) intermediate); ``neg_l1``: minus the L1 distance (the
    Laplace conditional under which InfoNCE identifies latents up to permutation and sign,
    Zimmermann et al. 2021).
    """
    if sim == "cosine":
        return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
    if sim == "neg_l2sq":
        sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        return -sq.clamp_min(0.0)
    if sim == "neg_l1":
        return -torch.cdist(a, b, p=1)
    raise ValueError(f"unknown similarity {sim!r}; expected 'cosine', 'neg_l2sq' or 'neg_l1'")


def infonce(z1: torch.Tensor, z2: torch.Tensor, tau: float = 1.0, sim: str = "cosine",
            within_view: bool = False):
    """Symmetrised InfoNCE with in-batch negatives (scalar).

    For each local row i of ``z1`` the candidates are all rows of the (gathered) ``z2``, the
    positive being its own partner; and symmetrically from ``z2`` to ``z1``. With
    ``within_view`` the other rows of the anchor's own view are candidates too (the 2N-way
    softmax of SimCLR's NT-Xent). The result is the mean of the two cross-entropies over this
    process's rows.
    """
    rank, _ = _world()
    all1, all2 = gather(z1), gather(z2)
    targets = torch.arange(len(z1), device=z1.device) + rank * len(z1)

    def direction(anchor, others, own):
        logits = pairwise_similarity(anchor, others, sim) / tau
        if within_view:
            same = pairwise_similarity(anchor, own, sim) / tau
            itself = F.one_hot(targets, len(own)).bool()
            logits = torch.cat([logits, same.masked_fill(itself, float("-inf"))], dim=1)
        return F.cross_entropy(logits, targets)

    return 0.5 * (direction(z1, all2, all1) + direction(z2, all1, all2))


class _SquaredDistanceLogSumExp(torch.autograd.Function):
    """L_i = log sum_j exp((2 a_i.b_j - |b_j|^2) / tau) for a (N, D), b (M, D): (N,).

    Adding -|a_i|^2 / tau gives log sum_j exp(-||a_i - b_j||^2 / tau). The (N, M) logits are
    made and used in blocks of rows and never stored: the backward pass recomputes them. This
    keeps the element-wise work in cache, which is what limits a CPU step at large batches.
    """

    ROWS = 256  # rows per block: 256 x 6144 floats stay within a few MB

    @staticmethod
    def _logits(a, b, sq_b, tau):
        return torch.addmm(sq_b, a, b.T, beta=-1.0 / tau, alpha=2.0 / tau)

    @staticmethod
    def forward(ctx, a, b, tau):
        sq_b = (b * b).sum(1)
        out = torch.cat([
            torch.logsumexp(_SquaredDistanceLogSumExp._logits(block, b, sq_b, tau), dim=1)
            for block in a.split(_SquaredDistanceLogSumExp.ROWS)])
        ctx.save_for_backward(a, b, sq_b, out)
        ctx.tau = tau
        return out

    @staticmethod
    def backward(ctx, grad_out):
        a, b, sq_b, out = ctx.saved_tensors
        tau, rows = ctx.tau, _SquaredDistanceLogSumExp.ROWS
        grad_a, grad_b, weight_b = torch.empty_like(a), torch.zeros_like(b), torch.zeros_like(sq_b)
        for start in range(0, len(a), rows):
            block = slice(start, start + rows)
            # softmax weights times the incoming gradient: dL/dlogits, (rows, M)
            w = _SquaredDistanceLogSumExp._logits(a[block], b, sq_b, tau)
            w.sub_(out[block, None]).exp_().mul_(grad_out[block, None])
            grad_a[block] = w @ b
            grad_b.addmm_(w.T, a[block])
            weight_b += w.sum(0)
        scale = 2.0 / tau
        return grad_a * scale, (grad_b - b * weight_b[:, None]) * scale, None


def _neg_logsumexp(anchor: torch.Tensor, negatives: torch.Tensor, tau: float, p: float):
    """log sum_j exp(-||anchor_i - negatives_j||_p^p / tau) for every anchor: (N,)."""
    if p == 2:
        lse = _SquaredDistanceLogSumExp.apply(anchor, negatives, tau)
        return lse - (anchor * anchor).sum(1) / tau
    return torch.logsumexp(-torch.cdist(anchor, negatives, p=p) ** p / tau, dim=1)


def lp_infonce(z1, z2, n1, n2, tau: float = 1.0, p: float = 2.0):
    """Symmetrised Lp-distance InfoNCE with separately drawn negatives (scalar).

    ``z1``, ``z2`` (N, D) are a batch of positive pairs; ``n1``, ``n2`` (M, D) encode an
    independently drawn batch of each view. Direction 1->2 scores anchor ``z1_i`` against its
    positive ``z2_i`` and the negatives ``n1_j`` (all, gathered across processes), with logits
    ``-||.||_p^p / tau``, the positive included in the normaliser; direction 2->1 likewise with
    ``n2``; the result is their mean.
    """

    def one_direction(anchor, positive, negatives):
        pos = -(anchor - positive).abs().pow(p).sum(1) / tau
        normaliser = torch.logaddexp(pos, _neg_logsumexp(anchor, gather(negatives), tau, p))
        return (normaliser - pos).mean()

    return 0.5 * (one_direction(z1, z2, n1) + one_direction(z2, z1, n2))


class InfoNCE(nn.Module):
    """Config wrapper of :func:`infonce`; ``forward(z1, z2)``."""

    needs_negatives = False

    def __init__(self, tau: float = 1.0, sim: str = "cosine", within_view: bool = False):
        super().__init__()
        self.tau, self.sim, self.within_view = tau, sim, within_view

    def forward(self, z1, z2):
        return infonce(z1, z2, self.tau, self.sim, self.within_view)


class LpInfoNCE(nn.Module):
    """Config wrapper of :func:`lp_infonce`; ``forward(z1, z2, n1, n2)``."""

    needs_negatives = True

    def __init__(self, tau: float = 1.0, p: float = 2.0):
        super().__init__()
        self.tau, self.p = tau, p

    def forward(self, z1, z2, n1, n2):
        return lp_infonce(z1, z2, n1, n2, self.tau, self.p)


class SimSiam(nn.Module):
    """SimSiam (Chen & He, 2021): a predictor MLP on each view's projection, the negative cosine
    between prediction and the *other* view's projection under stop-gradient, symmetrised;
    ``forward(z1, z2)`` with ``z1``, ``z2`` (N, dim): scalar in [-1, 1]. The predictor
    (Linear(dim, hidden) -> BatchNorm -> ReLU -> Linear(hidden, dim)) is trained with the
    encoders; it needs no negatives, so nothing is gathered under DDP."""

    needs_negatives = False

    def __init__(self, dim: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(1, dim // 4)
        self.predictor = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden),
                                       nn.ReLU(inplace=True), nn.Linear(hidden, dim))

    def forward(self, z1, z2):
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return -0.5 * (F.cosine_similarity(p1, z2.detach(), dim=1).mean()
                       + F.cosine_similarity(p2, z1.detach(), dim=1).mean())
