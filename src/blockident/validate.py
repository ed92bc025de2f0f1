"""Checks of a composed config that run before anything is trained or written.

Keys are dotted paths with ``fnmatch`` wildcards; a key absent from the config, or set to
``null``, is not checked.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from omegaconf import DictConfig, OmegaConf

from blockident.errors import ConfigError

POSITIVE = (
    "trainer.max_steps", "trainer.val_check_interval", "trainer.log_every_n_steps",
    "checkpoint_every", "optim.lr", "data.size", "data.content_dim", "data.val_batches",
    "data.readout_train", "data.readout_test", "data.readout_max*", "*batch_size",
    "model.*_size", "model.*_dim", "readout.every", "readout.control_steps", "readout.*max_epochs",
    "readout.*max_iter", "readout.*max_samples",
)
NON_NEGATIVE = ("seed", "data.style_dim", "data.modality_dim", "data.num_workers")


def _leaves(node, prefix: str = ""):
    """(dotted key, value) of every leaf of a resolved container."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    elif not isinstance(node, list):
        yield prefix[:-1], node


def _problem(key: str, value, positive: bool) -> str | None:
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{key} must be a number {bound}, got {value!r}"
    if value < 0 or (positive and value == 0):
        return f"{key} must be {bound}, got {value}"
    return None


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming every out-of-range step count, size, dim or rate."""
    leaves = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    problems = []
    for key, value in _leaves(leaves):
        if value is None or value == "???":
            continue
        for patterns, positive in ((POSITIVE, True), (NON_NEGATIVE, False)):
            if any(fnmatchcase(key, pattern) for pattern in patterns):
                problems.append(_problem(key, value, positive))
                break
    problems = [p for p in problems if p]
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))
