"""Whole-video strata: encoder training, readout training, readout test, held out.

Sequences are put in a canonical order (split, then id), permuted by a generator seeded with
``seed`` and laid end to end by their number of annotated frames; the stratum weights cut that
line into consecutive pieces and each sequence goes to the piece holding its middle frame. So no
video contributes frames to two strata, strata get about ``weight / sum(weights)`` of the frames,
and the assignment depends on the seed and the annotations only (not on file order, nor on the
content/style configuration: the held-out videos stay the same when k or n change).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from blockident.data.burst import SPLITS, BurstAnnotations

STRATA = ("encoder_train", "readout_train", "readout_test", "held_out")
DEFAULT_WEIGHTS = (3.0, 1.0, 1.0, 1.0)


def assign_strata(annotations: BurstAnnotations, weights: Sequence[float] = DEFAULT_WEIGHTS,
                  seed: int = 0) -> np.ndarray:
    """(S,) int64 index into :data:`STRATA` for every sequence of ``annotations``."""
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(STRATA),) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"strata weights must be {len(STRATA)} non-negative numbers with a "
                         f"positive sum, got {weights.tolist()}")
    split_rank = np.array([SPLITS.index(s) for s in annotations.seq_split], dtype=np.int64)
    canonical = np.lexsort((annotations.seq_id, split_rank))
    order = canonical[np.random.default_rng([seed, 0]).permutation(len(canonical))]
    frames = np.bincount(annotations.frame_seq, minlength=annotations.n_sequences)[order]
    middle = (np.cumsum(frames) - frames / 2) / max(frames.sum(), 1)
    bounds = np.cumsum(weights) / weights.sum()
    strata = np.empty(len(order), dtype=np.int64)
    strata[order] = np.minimum(np.searchsorted(bounds, middle, side="right"), len(STRATA) - 1)
    return strata
