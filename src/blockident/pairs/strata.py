"""Whole-video strata: encoder training, readout training, readout test, held out.

Videos are assigned whole by iterative stratification (Sechidis et al., 2011), adapted so that
both readout strata see the rare categories. A video listed twice (``seq_group`` of
:class:`~blockident.data.burst.BurstAnnotations`) is one item: its copies share a stratum.

- Labels: the observed categories each video shows, all of them, whatever the content/style
  choice (so the held-out videos stay the same when k or n change).
- Desired amounts: stratum ``j`` should receive ``weight_j / sum(weights)`` of the annotated
  frames, and of the frames showing each category.
- Labels are taken from the rarest (fewest unassigned videos; ties to the smaller id) to the
  most common. The unassigned videos showing the label go, one by one in the seeded order, to
  (a) readout_train or readout_test if it has no video with this label yet, else
  (b) encoder_train if it has none yet, else (c) any stratum; only strata of positive weight
  are candidates. Among the candidates, the one still desiring most frames of this label wins,
  ties to the one desiring most frames overall, then to the first in :data:`STRATA`.
- Videos without any category go to the stratum desiring most frames overall.

Strata of zero weight get nothing. The seeded order is the canonical order (split, id) permuted
by a generator seeded with ``seed``: the assignment depends on the annotations and the seed only,
not on file order. A category reaches both readout strata (when both have positive weight)
whenever, at its turn, it has at least as many unassigned videos as readout strata lacking it;
videos placed earlier for rarer categories can prevent that (three categories shared pairwise by
three videos cannot all be split); it is certain when no video shows two categories. A video
showing a category seen in no other video goes to a readout stratum by (a).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from blockident.data.burst import SPLITS, BurstAnnotations
from blockident.errors import ConfigError

STRATA = ("encoder_train", "readout_train", "readout_test", "held_out")
DEFAULT_WEIGHTS = (3.0, 1.0, 1.0, 1.0)
ENCODER = STRATA.index("encoder_train")
READOUTS = (STRATA.index("readout_train"), STRATA.index("readout_test"))


def assign_strata(annotations: BurstAnnotations, weights: Sequence[float] = DEFAULT_WEIGHTS,
                  seed: int = 0) -> np.ndarray:
    """(S,) int64 index into :data:`STRATA` for every sequence of ``annotations``."""
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(STRATA),) or (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"strata weights must be {len(STRATA)} non-negative numbers with a "
                          f"positive sum, got {weights.tolist()}")
    a = annotations
    split_rank = np.array([SPLITS.index(s) for s in a.seq_split], dtype=np.int64)
    canonical = np.lexsort((a.seq_id, split_rank))
    order = canonical[np.random.default_rng([seed, 0]).permutation(len(canonical))]
    rank = np.empty(a.n_sequences, dtype=np.int64)
    rank[order] = np.arange(a.n_sequences)
    # items: duplicate groups, numbered in the seeded order of their first copy
    group_rank = np.full(a.n_sequences, a.n_sequences, dtype=np.int64)
    np.minimum.at(group_rank, a.seq_group, rank)
    _, item = np.unique(group_rank[a.seq_group], return_inverse=True)
    n_items = int(item.max(initial=-1)) + 1
    frames = np.bincount(item[a.frame_seq], minlength=n_items)
    seen = np.bincount(a.category) > 0
    n_labels = int(seen.sum())  # labels: the observed categories, by id
    entry_label = (np.cumsum(seen) - 1)[a.category]
    # one entry per (frame, category): entries per (item, label) count the positive frames
    positive = np.bincount(item[a.frame_seq[a.entry_frame]] * n_labels + entry_label,
                           minlength=n_items * n_labels)
    pairs = np.flatnonzero(positive)
    return _stratify(frames, *np.divmod(pairs, n_labels), positive[pairs], n_labels,
                     weights)[item]


def _stratify(frames: np.ndarray, pair_item: np.ndarray, pair_label: np.ndarray,
             positive: np.ndarray, n_labels: int, weights: np.ndarray) -> np.ndarray:
    """(I,) stratum of every item by the rule of the module docstring.

    ``frames`` (I,): frames per item, items in the seeded order; ``pair_item``, ``pair_label``,
    ``positive`` (P,): the (item, label) pairs sorted by item then label, with the item's
    number of frames showing the label; ``weights`` (K,) non-negative, positive sum.
    """
    share = weights / weights.sum()
    open_strata = np.flatnonzero(weights > 0).tolist()
    readouts = [j for j in READOUTS if weights[j] > 0]
    need = share * frames.sum()  # (K,) frames still desired
    need_label = np.outer(share, np.bincount(pair_label, positive, minlength=n_labels))
    has_label = np.zeros((len(weights), n_labels), dtype=bool)  # a video of the label yet
    remaining = np.bincount(pair_label, minlength=n_labels)  # unassigned items per label
    item_start = np.searchsorted(pair_item, np.arange(len(frames) + 1))
    by_label = np.argsort(pair_label, kind="stable")  # items stay in seeded order per label
    label_start = np.searchsorted(pair_label[by_label], np.arange(n_labels + 1))
    stratum = np.full(len(frames), -1, dtype=np.int64)
    unset = np.iinfo(np.int64).max
    while remaining.any():
        label = int(np.argmin(np.where(remaining > 0, remaining, unset)))
        items = pair_item[by_label[label_start[label]:label_start[label + 1]]]
        for i in items[stratum[items] < 0].tolist():
            candidates = [j for j in readouts if not has_label[j, label]]
            if not candidates and weights[ENCODER] > 0 and not has_label[ENCODER, label]:
                candidates = [ENCODER]
            j = _most_wanted(candidates or open_strata, need_label[:, label], need)
            own = slice(item_start[i], item_start[i + 1])
            stratum[i] = j
            need[j] -= frames[i]
            need_label[j, pair_label[own]] -= positive[own]
            has_label[j, pair_label[own]] = True
            remaining[pair_label[own]] -= 1
    for i in np.flatnonzero(stratum < 0).tolist():
        j = _most_wanted(open_strata, need, need)
        stratum[i] = j
        need[j] -= frames[i]
    return stratum


def _most_wanted(candidates: list[int], wanted: np.ndarray, wanted_overall: np.ndarray) -> int:
    """The candidate stratum with the largest ``wanted`` (K,), ties to the largest
    ``wanted_overall`` (K,), then to the first."""
    return max(candidates, key=lambda j: (wanted[j], wanted_overall[j], -j))
