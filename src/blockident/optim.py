"""Optimiser and learning-rate schedule of every experiment (config group ``optim``).

``name``: ``adam`` or ``adamw``; ``lr``, ``weight_decay``; ``scale_batch``: when set, the
learning rate is ``lr * batch_size / scale_batch`` (the linear scaling rule, e.g. 256);
``schedule``: ``constant`` or ``cosine`` (decay to ``lr * min_lr_ratio`` at the last step);
``warmup_steps``: linear warm-up from ``lr / warmup_steps`` to ``lr`` first. Returned in
Lightning's ``configure_optimizers`` form, the scheduler stepped every step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from blockident.errors import ConfigError

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, max_steps: int, warmup_steps: int = 0, schedule: str = "constant",
              min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def configure(params: Iterable[torch.nn.Parameter], cfg: dict, max_steps: int,
              batch_size: int | None = None) -> dict:
    """``{"optimizer": ..., "lr_scheduler": {...}}`` for ``cfg`` (see the module docstring)."""
    cfg = {"name": "adam", "lr": 1e-4, "weight_decay": 0.0, "scale_batch": None,
           "schedule": "constant", "warmup_steps": 0, "min_lr_ratio": 0.0, **dict(cfg)}
    if cfg["name"] not in OPTIMIZERS:
        raise ConfigError(f"optim.name must be one of {sorted(OPTIMIZERS)}, got {cfg['name']!r}")
    if cfg["schedule"] not in SCHEDULES:
        raise ConfigError(f"optim.schedule must be one of {SCHEDULES}, got {cfg['schedule']!r}")
    lr = float(cfg["lr"])
    if cfg["scale_batch"]:
        if batch_size is None:
            raise ConfigError("optim.scale_batch needs the data's batch_size")
        lr *= batch_size / cfg["scale_batch"]
    optimizer = OPTIMIZERS[cfg["name"]](params, lr=lr, weight_decay=float(cfg["weight_decay"]))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(
        step, max_steps, int(cfg["warmup_steps"]), cfg["schedule"], float(cfg["min_lr_ratio"])))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
