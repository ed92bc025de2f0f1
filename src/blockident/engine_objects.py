"""The Lightning module of the object-centric model: global and object losses on two views.

Same constructor as :class:`blockident.engine.ContrastiveModule`, so a runner can choose the
class by config: ``encoders`` is an :class:`~blockident.models.objects.ObjectModel` (or its
``pair()``), ``loss`` an :class:`~blockident.object_losses.ObjectLosses`. A batch is a dict
with ``view1``, ``view2`` (B, 3, H, W) float images.

``self.encoders`` is the model's :class:`EncoderPair` of global encoders, so
``encode(view, x)`` gives the global representations the readouts expect; ``self.model`` is
the ObjectModel itself and ``object_outputs`` its slots and attention maps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from blockident.engine import ContrastiveModule
from blockident.errors import ConfigError
from blockident.models.objects import GlobalEncoder, ObjectModel
from blockident.models.pair import EncoderPair


class ObjectsModule(ContrastiveModule):
    """Trains an ObjectModel (and the loss's predictors, if any) with ``loss``; ``optim``,
    ``max_steps``, ``batch_size`` as for ContrastiveModule. Each loss term is logged too."""

    def __init__(self, encoders: ObjectModel | EncoderPair, loss: nn.Module, lr: float = 1e-4,
                 optim: dict | None = None, max_steps: int = 1, batch_size: int | None = None):
        if isinstance(encoders, EncoderPair):
            if not isinstance(encoders.encoder1, GlobalEncoder) or not encoders.shared:
                raise ConfigError("ObjectsModule needs an ObjectModel (model=objects)")
            encoders = encoders.encoder1.model
        if not isinstance(encoders, ObjectModel):
            raise ConfigError(f"ObjectsModule needs an ObjectModel (model=objects), got "
                              f"{type(encoders).__name__}")
        if hasattr(loss, "check"):
            loss.check(encoders)
        # the model once, inside the pair of global encoders
        super().__init__(encoders.pair(), loss, lr, optim, max_steps, batch_size)

    @property
    def model(self) -> ObjectModel:
        return self.encoders.encoder1.model

    def _losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        x1, x2 = batch["view1"], batch["view2"]
        # one pass over both views (there is no batch norm to keep them apart)
        out = self.model(torch.cat([x1, x2]), with_slots=getattr(self.loss, "needs_slots", True))
        out1, out2 = out.split([len(x1), len(x2)])
        return self.loss(out1, out2, self.model)

    @torch.no_grad()
    def object_outputs(self, x: torch.Tensor, transform: Callable | None = None,
                       batch_size: int = 256,
                       num_slots: int | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Slots (N, S, Ds) and attention maps (N, S, h, w) of images ``x`` (N, 3, H, W), as
        numpy, in eval mode; ``transform`` maps each chunk (on the module's device) to model
        inputs, else uint8 images are scaled to [0, 1]. ``num_slots`` asks the queries for
        that many slots (k-means, sampled). (None, None) for the ``global`` architecture."""
        if not self.model.has_slots:
            return None, None
        was_training = self.training
        self.eval()
        slots, attn = [], []
        for chunk in x.split(batch_size):
            chunk = chunk.to(self.device)
            if transform is not None:
                chunk = transform(chunk)
            elif not chunk.is_floating_point():
                chunk = chunk.float() / 255.0
            out = self.model(chunk, num_slots=num_slots)
            h, w = out.grid
            slots.append(out.slots.float().cpu())
            attn.append(out.attn.float().reshape(len(chunk), -1, h, w).cpu())
        self.train(was_training)
        return torch.cat(slots).numpy(), torch.cat(attn).numpy()
