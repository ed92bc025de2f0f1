"""Global and object losses of the object-centric model (Baldassarre & Azizpour, 2022).

Every term compares two :class:`~blockident.models.objects.ObjectOutput` of the two views of the
same B images, through the model's projection heads:

Global terms, on the projected global representations g1, g2 (B, P):

- ``ctr``: NT-Xent (SimCLR): each of the 2B projections against the other 2B - 1, the other
  view of its image the positive, cosine / ``tau`` (:func:`blockident.losses.infonce` with
  ``within_view=True``, gathered across processes under DDP).
- ``sim``: negative cosine between g1 (through the optional predictor) and stop-gradient g2,
  symmetrised; no negatives.

Object terms, on the projected slots s1 (B, S1, P), s2 (B, S2, P): the slots of the two views of
an image are first matched one-to-one by the Hungarian algorithm on their cosine similarity
(detached: the matching passes no gradient); K = min(S1, S2) pairs per image. Then

- ``ctr_all``: each matched slot of view 1 against all slots of all images of view 2
  (gathered across processes), its match the positive; cross-entropy of cosine / ``tau``,
  symmetrised.
- ``ctr_img``: the same against only the S2 slots of its own image in view 2, symmetrised.
- ``sim_img``: negative cosine between matched slots (optional predictor on the anchor side,
  stop-gradient on the other), symmetrised; no negatives.

``ObjectLosses(weights, tau)``: the weighted sum of the terms of nonzero weight.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from blockident.errors import ConfigError
from blockident.losses import _world, gather, infonce

GLOBAL_TERMS = ("ctr", "sim")
OBJECT_TERMS = ("ctr_all", "ctr_img", "sim_img")
TERMS = GLOBAL_TERMS + OBJECT_TERMS


# -- pieces ---------------------------------------------------------------------------------------
def ntxent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2B rows of ``z1``, ``z2`` (B, P) (cosine / tau)."""
    return infonce(z1, z2, tau, "cosine", within_view=True)


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean of -cos(p, stopgrad(z)) over the rows (last axis the features)."""
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


@torch.no_grad()
def hungarian_match(s1: torch.Tensor, s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the one-to-one matching of the slots ``s1`` (B, S1, P) and ``s2`` (B, S2, P)
    of largest total cosine similarity: (rows, cols), each (B, K) with K = min(S1, S2), slot
    ``rows[b, k]`` of view 1 matched to slot ``cols[b, k]`` of view 2 (rows sorted)."""
    sim = (F.normalize(s1.detach().float(), dim=-1)
           @ F.normalize(s2.detach().float(), dim=-1).transpose(1, 2)).cpu().numpy()
    matches = [linear_sum_assignment(m, maximize=True) for m in sim]
    rows = torch.as_tensor(np.stack([r for r, _ in matches]), device=s1.device)
    cols = torch.as_tensor(np.stack([c for _, c in matches]), device=s1.device)
    return rows, cols


def _take(s: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` (B, K) of every image of ``s`` (B, S, P): (B, K, P)."""
    return s.gather(1, idx.unsqueeze(-1).expand(-1, -1, s.shape[-1]))


def slot_ctr_all(a: torch.Tensor, others: torch.Tensor, idx: torch.Tensor,
                 tau: float) -> torch.Tensor:
    """Anchors ``a`` (B, K, P) against every slot of every image of ``others`` (B, S, P)
    (gathered across processes), the positive of a[b, k] being others[b, idx[b, k]]."""
    rank, _ = _world()
    b, s, p = others.shape
    candidates = gather(others.reshape(b * s, p))
    logits = (F.normalize(a.reshape(-1, p), dim=-1)
              @ F.normalize(candidates, dim=-1).T) / tau
    offset = (torch.arange(b, device=a.device) + rank * b) * s
    return F.cross_entropy(logits, (idx + offset[:, None]).reshape(-1))


def slot_ctr_img(a: torch.Tensor, others: torch.Tensor, idx: torch.Tensor,
                 tau: float) -> torch.Tensor:
    """Anchors ``a`` (B, K, P) against the slots of their own image in ``others`` (B, S, P),
    the positive of a[b, k] being others[b, idx[b, k]]."""
    logits = (F.normalize(a, dim=-1) @ F.normalize(others, dim=-1).transpose(1, 2)) / tau
    return F.cross_entropy(logits.flatten(0, 1), idx.reshape(-1))


def _predictor(dim: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, dim))


# -- the loss module ------------------------------------------------------------------------------
class ObjectLosses(nn.Module):
    """Weighted sum of the terms of the module docstring; ``weights`` maps term names (``ctr``,
    ``sim``, ``ctr_all``, ``ctr_img``, ``sim_img``) to weights (missing: 0), ``tau`` the
    temperature of the contrastive terms. ``predictor_dim``: when set (the projection width),
    the ``sim``/``sim_img`` anchors pass a SimSiam-style predictor (Linear -> BN -> ReLU ->
    Linear, hidden ``predictor_hidden``, default dim / 4), one for global and one for slot
    projections; without one, ``sim`` alone can collapse.

    ``forward(out1, out2, model) -> (total, {term: weighted value})``, only terms of nonzero
    weight computed and listed; ``model`` gives the projection heads.
    """

    needs_negatives = False

    def __init__(self, weights: Mapping[str, float], tau: float = 0.1,
                 predictor_dim: int | None = None, predictor_hidden: int | None = None):
        super().__init__()
        weights = {str(k): float(v) for k, v in dict(weights or {}).items()}
        unknown = sorted(set(weights) - set(TERMS))
        if unknown:
            raise ConfigError(f"unknown loss terms {unknown}; expected some of {list(TERMS)}")
        if any(w < 0 for w in weights.values()):
            raise ConfigError(f"loss weights must be >= 0, got {weights}")
        self.weights = {t: weights[t] for t in TERMS if weights.get(t, 0.0) > 0}
        if not self.weights:
            raise ConfigError(f"every loss weight is 0; give one of {list(TERMS)} a weight")
        self.tau = tau
        self.global_predictor = self.slot_predictor = None
        if predictor_dim is not None:
            hidden = predictor_hidden or max(1, predictor_dim // 4)
            if "sim" in self.weights:
                self.global_predictor = _predictor(predictor_dim, hidden)
            if "sim_img" in self.weights:
                self.slot_predictor = _predictor(predictor_dim, hidden)

    @property
    def needs_slots(self) -> bool:
        return any(t in self.weights for t in OBJECT_TERMS)

    def check(self, model) -> None:
        """ConfigError when an object term has weight but ``model`` makes no slots."""
        if self.needs_slots and not getattr(model, "has_slots", False):
            terms = [t for t in OBJECT_TERMS if t in self.weights]
            raise ConfigError(f"loss terms {terms} need slots, but model.architecture="
                              f"{getattr(model, 'architecture', '?')!r} has none (set their "
                              "weights to 0, e.g. losses=global, or use two_branch/slots_global)")

    def _predict(self, predictor: nn.Module | None, z: torch.Tensor) -> torch.Tensor:
        if predictor is None:
            return z
        return predictor(z.reshape(-1, z.shape[-1])).view(z.shape)

    def forward(self, out1, out2, model) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms: dict[str, torch.Tensor] = {}
        if any(t in self.weights for t in GLOBAL_TERMS):
            g1, g2 = model.project_global(out1.global_), model.project_global(out2.global_)
            if "ctr" in self.weights:
                terms["ctr"] = ntxent(g1, g2, self.tau)
            if "sim" in self.weights:
                p1 = self._predict(self.global_predictor, g1)
                p2 = self._predict(self.global_predictor, g2)
                terms["sim"] = 0.5 * (negative_cosine(p1, g2) + negative_cosine(p2, g1))
        if self.needs_slots:
            if out1.slots is None or out2.slots is None:
                self.check(model)
                raise ConfigError("object loss terms need slots, but the outputs have none")
            s1, s2 = model.project_slots(out1.slots), model.project_slots(out2.slots)
            rows, cols = hungarian_match(s1, s2)
            m1, m2 = _take(s1, rows), _take(s2, cols)  # matched pairs (B, K, P)
            if "ctr_all" in self.weights:
                terms["ctr_all"] = 0.5 * (slot_ctr_all(m1, s2, cols, self.tau)
                                          + slot_ctr_all(m2, s1, rows, self.tau))
            if "ctr_img" in self.weights:
                terms["ctr_img"] = 0.5 * (slot_ctr_img(m1, s2, cols, self.tau)
                                          + slot_ctr_img(m2, s1, rows, self.tau))
            if "sim_img" in self.weights:
                p1 = self._predict(self.slot_predictor, m1)
                p2 = self._predict(self.slot_predictor, m2)
                terms["sim_img"] = 0.5 * (negative_cosine(p1, m2) + negative_cosine(p2, m1))
        weighted = {t: self.weights[t] * v for t, v in terms.items()}
        return torch.stack(list(weighted.values())).sum(), weighted
