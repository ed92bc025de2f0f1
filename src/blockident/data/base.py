"""What every data module gives the engine and the readouts.

Training batches are dicts of tensors with ``view1`` and ``view2`` (row i of each forms a
positive pair) and, for losses with separately drawn negatives, ``neg1`` and ``neg2``.
Readout data is a :class:`ReadoutSplit` per split (``train``: fit the readouts, ``test``:
score them).

A data module (a ``LightningDataModule``) provides ``train_dataloader``, ``val_dataloader``,
``readout_data() -> {"train": ReadoutSplit, "test": ReadoutSplit}``, ``save_state(run_dir)`` /
``load_state(run_dir)`` (what evaluation needs to see the same data later),
``control_data() -> ReadoutSplit`` (labelled samples of the encoder-training data, for the
supervised positive control of :mod:`blockident.readouts.control`), and optionally
``model_kwargs() -> dict`` (extra arguments for the model config, e.g. a vocabulary size) and
``augment`` (an ``nn.Module`` mapping raw view-1 observations to augmented inputs in training
mode; ``readout.augment`` uses it to add augmented copies of the readout-training data).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from blockident.errors import DataError, MissingError
from blockident.io import atomic_savez

# continuous: regression (R2); categorical: one multi-class label per sample (accuracy);
# binary: presence 0/1, read as one multi-label problem per input set (balanced accuracy, ...)
FACTOR_TYPES = ("continuous", "categorical", "binary")


@dataclass
class ReadoutTask:
    """Predict ``factor`` from the encoding of input set ``inputs``; reported as ``encoding``."""

    encoding: str
    inputs: str
    factor: str


@dataclass
class ReadoutSplit:
    """Observations to encode and the ground-truth factors they carry.

    ``inputs``: name -> (view index 1 or 2, observations (N, ...)), encoded by that view's
    encoder after ``transforms[view]`` if given (e.g. uint8 images -> normalised floats;
    applied per chunk, on the encoder's device);
    ``factors``: name -> values (N, d) or (N,); ``kinds``: factor name -> role (``content``,
    ``style`` or ``modality``); ``types``: factor name -> one of :data:`FACTOR_TYPES` (default
    ``continuous``), which decides the readouts; ``tasks``: which factor to read from which input;
    ``oracle``: input name -> (N, D) true latents that input observes (with the observation),
    for ``readout.control=oracle``; ``excluded``: factors left out of the readouts (too few
    positives), name -> why, shown in the summary; ``grids``: continuous factors on a grid ->
    their sorted grid values (adds ``grid_accuracy``), ``periodic``: their periods.
    """

    inputs: dict[str, tuple[int, torch.Tensor]]
    factors: dict[str, np.ndarray]
    kinds: dict[str, str]
    tasks: list[ReadoutTask]
    types: dict[str, str] = field(default_factory=dict)
    transforms: dict[int, Callable[[torch.Tensor], torch.Tensor]] = field(default_factory=dict)
    oracle: dict[str, np.ndarray] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    grids: dict[str, np.ndarray] = field(default_factory=dict)
    periodic: dict[str, float] = field(default_factory=dict)

    def factor_type(self, factor: str) -> str:
        return self.types.get(factor, "continuous")


class StepStream(IterableDataset):
    """Infinite stream of batches where the batch of global step t is ``make(generator_t)``.

    ``generator_t`` is seeded from (seed, rank, t), so a run resumed at step t sees exactly the
    batches an uninterrupted run would, and every DDP process sees different data. Set
    ``start_step`` before iterating (the data module does so from the trainer's global step).
    With DataLoader workers, worker w of W makes steps w, w + W, ...; the loader takes batches
    from the workers in turn, so the order of steps is kept.
    """

    def __init__(self, make: Callable[..., dict], seed: int, rank: int = 0,
                 with_step: bool = False):
        self.make, self.seed, self.rank, self.start_step = make, seed, rank, 0
        self.with_step = with_step  # call make(generator_t, t): batches that depend on the step

    @classmethod
    def of_trainer(cls, make: Callable[..., dict], seed: int, trainer,
                   with_step: bool = False) -> StepStream:
        """The stream of ``trainer``'s process (its rank), starting at its global step; rank 0
        and step 0 without a trainer."""
        stream = cls(make, seed, trainer.global_rank if trainer else 0, with_step)
        stream.start_step = trainer.global_step if trainer else 0
        return stream

    def __iter__(self) -> Iterator[dict]:
        worker = get_worker_info()
        offset, stride = (worker.id, worker.num_workers) if worker else (0, 1)
        step = self.start_step + offset
        while True:
            key = np.random.SeedSequence([self.seed, self.rank, step]).generate_state(1)[0]
            generator = torch.Generator().manual_seed(int(key))
            yield self.make(generator, step) if self.with_step else self.make(generator)
            step += stride


def save_splits(path: Path, splits: dict[str, np.ndarray]) -> None:
    """Record the sample indices of every split (name -> (n,) int array) in ``path`` (npz)."""
    atomic_savez(path, splits)


def check_splits(path: Path, splits: dict[str, np.ndarray], source: Path) -> None:
    """Raise unless ``path`` (written by :func:`save_splits`) records exactly ``splits`` of the
    data in ``source``: a run is evaluated on the samples it was split into."""
    if not path.exists():
        raise MissingError(f"{path}: the run's sample splits are missing")
    saved = np.load(path)
    changed = [k for k in splits if k not in saved or not np.array_equal(saved[k], splits[k])]
    if changed:
        raise DataError(f"{source}: the sample splits differ from those recorded in {path} "
                        f"({', '.join(changed)})")
