"""Positive controls: representations known to keep the factors, read out like the trained one.

"Not identified" means nothing unless the same readout, on the same split, reads the factor out
of a representation that keeps it (``readout.control``):

- ``supervised``: the experiment's encoder architecture, from the same initial weights, trained
  *supervised* on the ground-truth factors of the encoder-training data (the data module's
  ``control_data()``): a linear head per factor on the encoding, class-balanced BCE for binary
  factors, cross-entropy for categorical ones, MSE for standardised continuous ones; view-1
  inputs pass the data module's training augmentation. With ``readout.control_groups=kind``
  one encoder is trained per kind (content, style, modality), for encodings too small to hold
  every factor at once; each factor is then read from its own kind's encoder.
- ``oracle``: the true latents each input observes, with the observation itself (the split's
  ``oracle`` arrays; numerical experiments): the readout's ceiling.

Rows of a control are named ``supervised:<encoding>`` / ``oracle:<encoding>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from blockident.data.base import ReadoutSplit, StepStream
from blockident.engine import EncoderModule
from blockident.errors import ConfigError
from blockident.io import atomic_torch_save
from blockident.logs import log, progress_bars
from blockident.models.pair import EncoderPair

CONTROLS = ("supervised", "oracle")
GROUPINGS = ("all", "kind")


def control_names(cfg) -> list[str]:
    """The controls ``readout.control`` asks for: a name, a list of names, or ``none``."""
    value = cfg.get("control") or "none"
    names = [value] if isinstance(value, str) else list(value)
    names = [n for n in names if n != "none"]
    unknown = set(names) - set(CONTROLS)
    if unknown:
        raise ConfigError(f"readout.control: unknown {sorted(unknown)}; expected any of "
                          f"{', '.join(CONTROLS)} or none")
    return names


def control_groups(split: ReadoutSplit, grouping: str) -> dict[str, ReadoutSplit]:
    """``split`` with its tasks cut into the groups of one control encoder each: ``all`` (one
    group) or ``kind`` (one per factor kind, in order of appearance)."""
    if grouping not in GROUPINGS:
        raise ConfigError(f"readout.control_groups must be one of {GROUPINGS}, got {grouping!r}")
    if grouping == "all":
        return {"all": split}
    kinds = dict.fromkeys(split.kinds[t.factor] for t in split.tasks)
    return {k: replace(split, tasks=[t for t in split.tasks if split.kinds[t.factor] == k])
            for k in kinds}


class _Target:
    """One factor's head and loss: values (N, ...) -> training targets, prediction loss."""

    def __init__(self, values: np.ndarray, kind: str):
        values = np.asarray(values)
        self.kind = kind
        if kind == "binary":
            y = values.reshape(len(values), -1).astype(np.float32)
            positives = y.mean(0).clip(1e-3, 1 - 1e-3)
            self.pos_weight = torch.as_tensor((1 - positives) / positives)
            self.width = y.shape[1]
        elif kind == "categorical":
            self.classes, y = np.unique(values.reshape(len(values)), return_inverse=True)
            self.width = len(self.classes)
        else:
            y = values.reshape(len(values), -1).astype(np.float32)
            y = (y - y.mean(0)) / (y.std(0) + 1e-8)
            self.width = y.shape[1]
        self.y = torch.as_tensor(y)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(
                logits, y, pos_weight=self.pos_weight.to(logits.device))
        if self.kind == "categorical":
            return F.cross_entropy(logits, y)
        return F.mse_loss(logits, y)


class SupervisedControl(EncoderModule):
    """Trains ``encoders`` on the factors of ``split``'s tasks (a linear head each) with
    Adam(lr); training batches are ``batch_size`` samples drawn with replacement."""

    def __init__(self, encoders: EncoderPair, split: ReadoutSplit, lr: float, batch_size: int,
                 augment: nn.Module | None = None, seed: int = 0):
        super().__init__()
        self.encoders, self.split, self.lr, self.batch_size = encoders, split, lr, batch_size
        self.augment, self.seed = augment, seed
        self.factors = list(dict.fromkeys(t.factor for t in split.tasks))
        self.targets = {f: _Target(split.factors[f], split.factor_type(f)) for f in self.factors}
        size = _encoding_size(encoders, split)
        self.heads = nn.ModuleDict({
            _key(t.inputs, t.factor): nn.Linear(size, self.targets[t.factor].width)
            for t in split.tasks})
        self.inputs = list(dict.fromkeys(t.inputs for t in split.tasks))

    def _batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        n = len(next(iter(self.targets.values())).y)
        idx = torch.randint(n, (self.batch_size,), generator=generator)
        batch = {f"x/{name}": self.split.inputs[name][1][idx] for name in self.inputs}
        return batch | {f"y/{f}": self.targets[f].y[idx] for f in self.factors}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(StepStream(self._batch, self.seed), batch_size=None)

    def _transform(self, view: int) -> Callable | None:
        if view == 1 and self.augment is not None:
            return self.augment.to(self.device).train()
        return self.split.transforms.get(view)

    def training_step(self, batch, batch_idx):
        encoded = {}
        for name in self.inputs:
            view = self.split.inputs[name][0]
            transform = self._transform(view)
            x = batch[f"x/{name}"]
            encoded[name] = self.encoders(view, transform(x) if transform else x)
        losses = [self.targets[t.factor].loss(self.heads[_key(t.inputs, t.factor)](
            encoded[t.inputs]), batch[f"y/{t.factor}"]) for t in self.split.tasks]
        loss = torch.stack(losses).mean()
        self.log("control/loss", loss, prog_bar=True, batch_size=self.batch_size)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def _key(inputs: str, factor: str) -> str:
    return f"{inputs}->{factor}".replace(".", "_")


@torch.no_grad()
def _encoding_size(encoders: EncoderPair, split: ReadoutSplit) -> int:
    """Width of the encoding, from one sample of the first input set."""
    view, x = next(iter(split.inputs.values()))
    transform = split.transforms.get(view)
    was_training = encoders.training
    encoders.eval()
    z = encoders(view, transform(x[:2]) if transform else x[:2])
    encoders.train(was_training)
    return z.shape[1]


def train_supervised(encoders: EncoderPair, split: ReadoutSplit, path: Path, *, steps: int,
                     lr: float, batch_size: int, trainer: dict, augment: nn.Module | None = None,
                     seed: int = 0) -> SupervisedControl:
    """``SupervisedControl`` trained for ``steps`` (Lightning ``trainer`` options), its encoder
    weights saved to ``path``; loaded from ``path`` instead when it holds a control trained on
    the same factors for as many steps."""
    control = SupervisedControl(encoders, split, lr, batch_size, augment, seed)
    record = {"steps": steps, "factors": control.factors}
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if {k: saved.get(k) for k in record} == record:
            control.encoders.load_state_dict(saved["encoders"])
            return control
    log.info("supervised control: training %s on %d factors of %d encoder-training samples "
             "for %d steps -> %s", type(encoders).__name__, len(control.factors),
             len(control.targets[control.factors[0]].y), steps, path)
    options = {k: v for k, v in trainer.items()
               if k in ("accelerator", "precision", "gradient_clip_val", "enable_progress_bar")}
    bars = progress_bars(options.get("enable_progress_bar", True), steps, steps)
    L.seed_everything(seed, verbose=False)
    L.Trainer(**options, max_steps=steps, devices=1, logger=False, enable_checkpointing=False,
              enable_model_summary=False, limit_val_batches=0, log_every_n_steps=max(1, steps),
              callbacks=bars).fit(control)
    atomic_torch_save({**record, "encoders": control.encoders.state_dict()}, path)
    return control


def oracle_encodings(splits: dict[str, ReadoutSplit]) -> dict[str, dict[str, np.ndarray]]:
    """split -> input set -> (N, D): the split's ``oracle`` arrays (true latents an input
    observes, and the observation)."""
    missing = [s for s, split in splits.items() if not split.oracle]
    if missing:
        raise ConfigError("readout.control=oracle needs the true latents of every input, which "
                          "this experiment's data does not provide; use readout.control="
                          "supervised")
    return {s: {name: np.asarray(a, dtype=np.float32) for name, a in split.oracle.items()}
            for s, split in splits.items()}
