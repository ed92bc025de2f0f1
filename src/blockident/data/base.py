"""What every data module gives the engine and the readouts.

Training batches are dicts of tensors with ``view1`` and ``view2`` (row i of each forms a
positive pair) and, for losses with separately drawn negatives, ``neg1`` and ``neg2``.
Readout data is a :class:`ReadoutSplit` per split (``train``: fit the readouts, ``test``:
score them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset


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
    encoder; ``factors``: name -> values (N, d) or (N,); ``kinds``: factor name -> role
    (``content``, ``style`` or ``modality``); ``tasks``: which factor to read from which input.
    """

    inputs: dict[str, tuple[int, torch.Tensor]]
    factors: dict[str, np.ndarray]
    kinds: dict[str, str]
    tasks: list[ReadoutTask]


class StepStream(IterableDataset):
    """Infinite stream of batches where the batch of global step t is ``make(generator_t)``.

    ``generator_t`` is seeded from (seed, rank, t), so a run resumed at step t sees exactly the
    batches an uninterrupted run would, and every DDP process sees different data. Set
    ``start_step`` before iterating (the data module does so from the trainer's global step).
    """

    def __init__(self, make: Callable[[torch.Generator], dict], seed: int, rank: int = 0):
        self.make, self.seed, self.rank, self.start_step = make, seed, rank, 0

    def __iter__(self) -> Iterator[dict]:
        step = self.start_step
        while True:
            key = np.random.SeedSequence([self.seed, self.rank, step]).generate_state(1)[0]
            yield self.make(torch.Generator().manual_seed(int(key)))
            step += 1
