"""The Lightning module that wires encoders and a contrastive loss.

It knows nothing of any data set: a batch is a dict with ``view1``, ``view2`` (positive pairs)
and, for losses that need them, separately drawn negatives ``neg1``, ``neg2``.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import numpy as np
import torch
from torch import nn

from blockident.errors import ConfigError
from blockident.models.pair import EncoderPair
from blockident.optim import configure


class EncoderModule(L.LightningModule):
    """A Lightning module around an :class:`EncoderPair` whose frozen encodings can be read."""

    encoders: EncoderPair

    @torch.no_grad()
    def encode(self, view: int, x: torch.Tensor, transform: Callable | None = None,
               batch_size: int = 1024) -> np.ndarray:
        """Frozen encodings (N, encoding_size) of observations ``x`` of ``view``, as numpy;
        ``transform`` maps each chunk (on the module's device) to encoder inputs first."""
        was_training = self.training
        self.eval()
        chunks = []
        for chunk in x.split(batch_size):
            chunk = chunk.to(self.device)
            chunks.append(self.encoders(view, transform(chunk) if transform else chunk).cpu())
        self.train(was_training)
        return torch.cat(chunks).numpy()


class ContrastiveModule(EncoderModule):
    """Trains ``encoders`` (and the loss's own parameters, e.g. SimSiam's predictor) with
    ``loss``; ``optim``: the optimiser and schedule of :func:`blockident.optim.configure`
    (default Adam(lr), constant), over ``max_steps`` of ``batch_size``."""

    def __init__(self, encoders: EncoderPair, loss: nn.Module, lr: float = 1e-4,
                 optim: dict | None = None, max_steps: int = 1, batch_size: int | None = None):
        super().__init__()
        self.encoders, self.loss = encoders, loss
        self.optim = {"lr": lr, **dict(optim or {})}
        self.max_steps, self.batch_size = max_steps, batch_size

    def _encode_views(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Loss inputs [z1, z2] or [z1, z2, n1, n2]: encodings through the projection heads;
        each view's inputs pass its encoder once."""
        needs_neg = getattr(self.loss, "needs_negatives", False)
        if needs_neg and "neg1" not in batch:
            raise ConfigError(f"loss {type(self.loss).__name__} needs separately drawn negatives, "
                              "but the batches have none (set data.negatives=true)")
        encodings, negatives = [], []
        for view in (1, 2):
            x = batch[f"view{view}"]
            if needs_neg:
                neg = batch[f"neg{view}"]
                both = self.encoders.project(view, self.encoders(view, torch.cat([x, neg])))
                z, n = both.split([len(x), len(neg)])
                negatives.append(n)
            else:
                z = self.encoders.project(view, self.encoders(view, x))
            encodings.append(z)
        return encodings + negatives

    def _losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """The loss of ``batch`` and its named terms, logged beside it (none here)."""
        return self.loss(*self._encode_views(batch)), {}

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        loss, terms = self._losses(batch)
        n = len(batch["view1"])  # logged values are means over processes
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True, batch_size=n)
        for term, value in terms.items():
            self.log(f"{stage}/{term}", value, sync_dist=True, batch_size=n)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        return configure(self.parameters(), self.optim, self.max_steps, self.batch_size)
