"""Global and object-centric representations of one image (Baldassarre & Azizpour, 2022).

``ObjectModel`` = a token backbone (e.g. :class:`blockident.models.vit.ViT`), an object function
(:mod:`blockident.models.slots`) started from queries, and a global head, wired by
``architecture``:

- ``global``: backbone -> pooled -> global head; no slots.
- ``two_branch``: backbone -> tokens -> slots, and pooled -> global head.
- ``slots_global``: backbone -> tokens -> slots -> global head on the mean of the slots.

Projection heads (``project_global``, ``project_slots``) are used only by the losses
(:mod:`blockident.object_losses`). The readouts see the global representation through
``GlobalEncoder`` / ``ObjectModel.pair()``, an :class:`EncoderPair` like every other model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from blockident.errors import ConfigError
from blockident.models.pair import EncoderPair

ARCHITECTURES = ("global", "two_branch", "slots_global")


@dataclass
class ObjectOutput:
    """What ``ObjectModel.forward`` returns for a batch of B images.

    ``global_`` (B, Dg): the global representation (before projection); ``slots`` (B, S, Ds)
    and ``attn`` (B, S, N) of each slot over the N = h * w patches (row-major), None for the
    ``global`` architecture; ``grid`` the (h, w) patch grid.
    """

    global_: torch.Tensor
    slots: torch.Tensor | None
    attn: torch.Tensor | None
    grid: tuple[int, int]

    def split(self, sizes: list[int]) -> list[ObjectOutput]:
        """One output per chunk of ``sizes`` images (the inverse of a concatenated batch)."""
        parts = [t.split(sizes) if t is not None else [None] * len(sizes)
                 for t in (self.global_, self.slots, self.attn)]
        return [ObjectOutput(g, s, a, self.grid) for g, s, a in zip(*parts, strict=True)]


def _mlp(dim: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


def _build(part: nn.Module | Callable | None, dim: int) -> nn.Module | None:
    """A module as it is; a factory (a Hydra ``_partial_``) called with the backbone's width."""
    if part is None or isinstance(part, nn.Module):
        return part
    return part(dim=dim)


class ObjectModel(nn.Module):
    """See the module docstring. ``backbone``: images (B, 3, H, W) -> (tokens (B, N, D),
    pooled (B, D)), with ``feature_dim`` D and a ``grid(H, W)`` method; ``object_fn`` and
    ``queries``: modules or factories taking ``dim=D`` (ignored, and may be None, for the
    ``global`` architecture). ``num_slots``: the number of queries asked for (None: the
    queries' own ``num``). Global head: MLP D -> ``global_hidden`` -> ``global_dim``;
    projections: MLP -> ``proj_hidden`` -> ``proj_dim`` for the global representation and,
    separately, for the slots (width D).
    """

    def __init__(self, backbone: nn.Module, object_fn: nn.Module | Callable | None = None,
                 queries: nn.Module | Callable | None = None, architecture: str = "two_branch",
                 global_dim: int = 64, global_hidden: int | None = None, proj_dim: int = 64,
                 proj_hidden: int | None = None, num_slots: int | None = None):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ConfigError(f"model.architecture must be one of {ARCHITECTURES}, "
                              f"got {architecture!r}")
        dim = backbone.feature_dim
        self.architecture, self.num_slots = architecture, num_slots
        self.backbone = backbone
        self.slot_dim = None if architecture == "global" else dim
        if architecture != "global":
            if object_fn is None or queries is None:
                raise ConfigError(f"architecture {architecture!r} needs an object function and "
                                  "queries (model/object_fn, model/queries)")
            self.object_fn, self.queries = _build(object_fn, dim), _build(queries, dim)
        self.global_head = _mlp(dim, global_hidden or 2 * dim, global_dim)
        self.global_projection = _mlp(global_dim, proj_hidden or 2 * global_dim, proj_dim)
        if architecture != "global":
            self.slot_projection = _mlp(dim, proj_hidden or 2 * dim, proj_dim)
        self.encoding_size = global_dim

    @property
    def has_slots(self) -> bool:
        return self.architecture != "global"

    def forward(self, x: torch.Tensor, num_slots: int | None = None,
                with_slots: bool = True) -> ObjectOutput:
        """``with_slots=False`` skips the object function where the global representation
        does not need it (``two_branch``): slots and attn are then None."""
        tokens, pooled = self.backbone(x)
        grid = self.backbone.grid(x.shape[-2], x.shape[-1])
        slots = attn = None
        if self.has_slots and (with_slots or self.architecture == "slots_global"):
            queries = self.queries(tokens, num_slots or self.num_slots)
            slots, attn = self.object_fn(tokens, queries)
        features = slots.mean(dim=1) if self.architecture == "slots_global" else pooled
        return ObjectOutput(self.global_head(features), slots, attn, grid)

    def project_global(self, g: torch.Tensor) -> torch.Tensor:
        """(B, Dg) -> (B, proj_dim)."""
        return self.global_projection(g)

    def project_slots(self, s: torch.Tensor) -> torch.Tensor:
        """(B, S, Ds) -> (B, S, proj_dim)."""
        if not self.has_slots:
            raise ConfigError("the 'global' architecture has no slots to project")
        return self.slot_projection(s)

    def pair(self) -> EncoderPair:
        """The global encoder for both views (shared weights), for the readout machinery."""
        encoder = GlobalEncoder(self)
        return EncoderPair(encoder, encoder)


class GlobalEncoder(nn.Module):
    """An :class:`ObjectModel` seen as an ordinary encoder: images -> global representation
    (B, Dg); ``project`` is the global projection head."""

    def __init__(self, model: ObjectModel):
        super().__init__()
        self.model = model
        self.encoding_size = model.encoding_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, with_slots=False).global_

    def project(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.project_global(z)
