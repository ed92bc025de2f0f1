"""InfoNCE family of contrastive losses.

Every loss takes encodings of the two views, ``z1`` and ``z2`` of shape (N, D), where row i of
``z1`` and row i of ``z2`` form a positive pair. Under DDP (an initialised process group with
more than one process) the candidates are gathered from all processes with autograd-aware
collectives, so the per-process losses average to the loss of one process on the union batch
and gradients flow to every process's encodings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG2_E = math.log2(math.e)


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
    """L_i = log sum_j exp(-||a_i - b_j||^2 / tau) for a (N, D), b (M, D): (N,).

    The (M, N) exponents are never stored: they are made in blocks of ``BLOCK`` anchors
    (columns), each by one matrix product of augmented inputs, used at once, and made again in
    the backward pass. The blocks stay in cache, and on a CPU these thin products are much
    faster as (M, D + 2) @ (D + 2, BLOCK) than as (BLOCK, D + 2) @ (D + 2, M).
    """

    BLOCK = 256  # anchors per block: 6144 x 256 floats stay within a few MB

    @staticmethod
    def _exp_blocks(a, b, shift, tau):
        """Blocks ``(columns, w)`` of w = exp(2 a_i.b_j / tau - |b_j|^2 / tau + shift_i): (M, k)
        for the anchors ``columns``; ``w`` is one buffer, overwritten by the next block. The
        exponents come out of the product in base 2 (times log2(e)): exp2 is the faster kernel."""
        ones_a, ones_b = a.new_ones(len(a), 1), b.new_ones(len(b), 1)
        left = torch.cat([b, ones_b, -(b * b).sum(1, keepdim=True) / tau], 1)
        right = torch.cat([a * (2.0 / tau), shift[:, None], ones_a], 1) * LOG2_E
        buffer = a.new_empty(len(b), min(len(a), _SquaredDistanceLogSumExp.BLOCK))
        for start in range(0, len(a), buffer.shape[1]):
            columns = slice(start, start + buffer.shape[1])
            block = right[columns]
            w = buffer[:, :len(block)]
            torch.mm(left, block.T, out=w)
            yield columns, w.exp2_()

    @staticmethod
    def forward(ctx, a, b, tau):
        # shifted by -|a_i|^2 / tau, the exponents are -||a_i - b_j||^2 / tau <= 0: no overflow
        sq_a = (a * a).sum(1)
        out = a.new_empty(len(a))
        for columns, w in _SquaredDistanceLogSumExp._exp_blocks(a, b, -sq_a / tau, tau):
            torch.sum(w, 0, out=out[columns])
        out.log_()
        # anchors far from every b_j (all terms below e^-69): the max-shifted log-sum-exp
        far = (out < -69.0).nonzero().squeeze(1)
        if len(far):
            out[far] = torch.logsumexp(-torch.cdist(a[far], b) ** 2 / tau, 1)
        ctx.save_for_backward(a, b, out)
        ctx.tau = tau
        return out

    @staticmethod
    def backward(ctx, grad_out):
        a, b, out = ctx.saved_tensors
        tau = ctx.tau
        # w_ij = grad_i * softmax_j: the incoming gradient goes into the exponent when it can
        shift = -(a * a).sum(1) / tau - out
        folded = bool((grad_out >= 0).all())
        if folded:
            shift = shift + grad_out.log()
        b1t = torch.cat([b, b.new_ones(len(b), 1)], 1).T.contiguous()  # (D + 1, M)
        a1t = torch.cat([a, a.new_ones(len(a), 1)], 1).T.contiguous()  # (D + 1, N)
        wb = a.new_empty(b1t.shape[0], len(a))  # columns i: [sum_j w_ij b_j, sum_j w_ij]
        wa = b.new_zeros(a1t.shape[0], len(b))  # columns j: [sum_i w_ij a_i, sum_i w_ij]
        for columns, w in _SquaredDistanceLogSumExp._exp_blocks(a, b, shift, tau):
            if not folded:
                w.mul_(grad_out[None, columns])
            torch.mm(b1t, w, out=wb[:, columns])
            wa.addmm_(a1t[:, columns], w.T)
        scale = 2.0 / tau
        grad_a = (wb[:-1].T - a * wb[-1][:, None]) * scale
        grad_b = (wa[:-1].T - b * wa[-1][:, None]) * scale
        # row-major: the backward of all_gather (DDP) reads its gradient as contiguous memory
        return grad_a.contiguous(), grad_b.contiguous(), None


def _squared_distance_logsumexp(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """log sum_j exp(-||a_i - b_j||^2 / tau) for a (N, D), b (M, D): (N,), from one (N, M)
    matrix of exponents (one product) through torch's max-shifted log-sum-exp."""
    sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1)  # (N, M): |a_i|^2 + |b_j|^2
    return torch.logsumexp(torch.addmm(sq, a, b.T, beta=-1 / tau, alpha=2 / tau), dim=1)


def _neg_logsumexp(anchor: torch.Tensor, negatives: torch.Tensor, tau: float, p: float):
    """log sum_j exp(-||anchor_i - negatives_j||_p^p / tau) for every anchor: (N,).

    For p = 2 on a CPU, the blocked :class:`_SquaredDistanceLogSumExp` (cache-sized blocks);
    elsewhere (a GPU) the whole (N, M) matrix at once: a few large kernels, and no host read of
    device data (the blocked function's far-anchor and gradient-sign branches) to stall the
    device every step."""
    if p != 2:
        return torch.logsumexp(-torch.cdist(anchor, negatives, p=p) ** p / tau, dim=1)
    if anchor.device.type == "cpu":
        return _SquaredDistanceLogSumExp.apply(anchor, negatives, tau)
    return _squared_distance_logsumexp(anchor, negatives, tau)


def lp_infonce(z1, z2, n1, n2, tau: float = 1.0, p: float = 2.0):
    """Symmetrised Lp-distance InfoNCE with separately drawn negatives (scalar).

    ``z1``, ``z2`` (N, D) are a batch of positive pairs; ``n1``, ``n2`` (M, D) encode an
    independently drawn batch of each view. Direction 1->2 scores anchor ``z1_i`` against its
    positive ``z2_i`` and the negatives ``n1_j`` (all, gathered across processes), with logits
    ``-||.||_p^p / tau``, the positive included in the normaliser; direction 2->1 likewise with
    ``n2``; the result is their mean. Under mixed precision (bfloat16 encodings, autocast) it is
    computed in float32: the distances' expansion |a|^2 - 2 a.b + |b|^2 cancels.
    """

    def one_direction(anchor, positive, negatives):
        pos = -(anchor - positive).abs().pow(p).sum(1) / tau
        normaliser = torch.logaddexp(pos, _neg_logsumexp(anchor, gather(negatives), tau, p))
        return (normaliser - pos).mean()

    with torch.autocast(z1.device.type, enabled=False):
        z1, z2, n1, n2 = (z.float() for z in (z1, z2, n1, n2))
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
