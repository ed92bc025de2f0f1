"""Category-overlap pairs: two frames whose content categories are exactly the same.

Semantics (those of the original study, made explicit):

- *Content* is the ``k`` most frequent categories, frequency being the number of (frame,
  instance) occurrences over all splits, ties broken by the smaller category id; *style* is
  every other observed category. Or explicit ``content_categories`` and ``style_categories``
  (disjoint; observed categories in neither list are ignored).
- A frame's *number* is its count of distinct content categories, or with ``count_instances``
  its count of content instances. Frames whose number is in ``n`` (``leq_n``: in
  ``1..max(n)``) are eligible; a frame without content is never paired.
- The pairing key is the frame's content set; with ``count_instances`` it is the content
  multiset (category and instance count), so both frames also show the same number of objects.
- Sequences are split into strata (:mod:`blockident.pairs.strata`). Within a stratum, the
  eligible frames of each key are shuffled (seeded) and paired without replacement, an odd one
  out dropped. With ``same_sequence="forbid"`` the shuffled frames are paired greedily: each
  frame joins the oldest waiting frame of another video, or waits; what waits at the end is
  dropped (greedy, so occasionally one or two pairs fewer than the maximum).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from blockident.data.burst import BurstAnnotations
from blockident.errors import ConfigError
from blockident.pairs.strata import DEFAULT_WEIGHTS, STRATA, assign_strata

SAME_SEQUENCE = ("allow", "forbid")
CSV_COLUMNS = ("stratum", "image1", "image2", "sequence1", "sequence2", "content", "style1",
               "style2")


@dataclass(frozen=True)
class PairConfig:
    """Content/style choice, eligibility, strata and sampling options (see module docstring)."""

    k: int = 20
    n: tuple[int, ...] = (1,)
    leq_n: bool = False
    count_instances: bool = False
    content_categories: tuple[int, ...] | None = None
    style_categories: tuple[int, ...] | None = None
    seed: int = 0
    same_sequence: str = "allow"
    strata_weights: tuple[float, ...] = DEFAULT_WEIGHTS

    def __post_init__(self):
        for name in ("n", "content_categories", "style_categories", "strata_weights"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if not self.n or min(self.n) < 1:
            raise ConfigError(f"n must list positive numbers of content categories, got {self.n}")
        if (self.content_categories is None) != (self.style_categories is None):
            raise ConfigError("give both content_categories and style_categories, or neither")
        if self.content_categories is None and self.k < 1:
            raise ConfigError(f"k must be at least 1, got {self.k}")
        if self.content_categories is not None:
            both = set(self.content_categories) & set(self.style_categories)
            if both:
                raise ConfigError(f"categories both content and style: {sorted(both)}")
        if self.same_sequence not in SAME_SEQUENCE:
            raise ConfigError(f"same_sequence must be one of {SAME_SEQUENCE}, "
                              f"got {self.same_sequence!r}")
        if len(self.strata_weights) != len(STRATA):
            raise ConfigError(f"strata_weights needs {len(STRATA)} numbers ({', '.join(STRATA)})")

    @property
    def allowed(self) -> np.ndarray:
        """Sorted content numbers a frame may have to be paired."""
        return np.arange(1, max(self.n) + 1) if self.leq_n else np.unique(self.n)


def select_content(annotations: BurstAnnotations,
                   config: PairConfig) -> tuple[np.ndarray, np.ndarray]:
    """(content ids, style ids), each sorted ascending."""
    if config.content_categories is not None:
        return (np.unique(np.asarray(config.content_categories, dtype=np.int64)),
                np.unique(np.asarray(config.style_categories, dtype=np.int64)))
    frequency = annotations.category_frequencies()
    ids, counts = frequency.index.to_numpy(), frequency.to_numpy()
    ranked = ids[np.lexsort((ids, -counts))]
    return np.sort(ranked[:config.k]), np.sort(ranked[config.k:])


@dataclass(eq=False)
class PairSet:
    """Pairs of frames (indices into ``annotations``) for every stratum.

    ``sequence_stratum`` (S,): stratum index per sequence; ``number`` (F,): content categories
    (or instances) per frame; ``frame_group`` (F,): content key index, -1 when not eligible;
    ``groups`` (G,): content key per index, a tuple of category ids, or of (id, instances)
    with ``count_instances``; ``pairs`` (P, 2) frame indices, ``pair_stratum`` (P,),
    ``pair_group`` (P,), ordered by stratum.
    """

    annotations: BurstAnnotations
    config: PairConfig
    content: np.ndarray
    style: np.ndarray
    sequence_stratum: np.ndarray
    number: np.ndarray
    frame_group: np.ndarray
    groups: list[tuple]
    pairs: np.ndarray
    pair_stratum: np.ndarray
    pair_group: np.ndarray

    @property
    def images_root(self) -> Path | None:
        return self.annotations.images_root

    @property
    def frame_stratum(self) -> np.ndarray:
        """(F,) stratum index of every frame."""
        return self.sequence_stratum[self.annotations.frame_seq]

    def stratum_pairs(self, stratum: str) -> np.ndarray:
        """(P_s, 2) frame indices of the pairs of ``stratum`` (one of :data:`STRATA`)."""
        return self.pairs[self.pair_stratum == STRATA.index(stratum)]

    def multi_hot(self, frames: np.ndarray, role: str = "content") -> np.ndarray:
        """(N, C) uint8: which ``role`` ("content" or "style") categories each frame shows;
        columns follow ``self.content`` / ``self.style``."""
        if role not in ("content", "style"):
            raise ValueError(f"role must be 'content' or 'style', got {role!r}")
        columns = self.content if role == "content" else self.style
        rows, entries = self.annotations.entries_of(frames)
        cats = self.annotations.category[entries]
        found = np.isin(cats, columns)
        out = np.zeros((len(frames), len(columns)), dtype=np.uint8)
        out[rows[found], np.searchsorted(columns, cats[found])] = 1
        return out

    def table(self, stratum: str | None = None, absolute: bool = False) -> pd.DataFrame:
        """The pairs as the CSV table (:data:`CSV_COLUMNS`); set columns hold sorted category
        ids joined by ``;``. Image paths are relative to the images root unless ``absolute``."""
        keep = slice(None) if stratum is None else self.pair_stratum == STRATA.index(stratum)
        pairs, a = self.pairs[keep], self.annotations
        style = _joined_sets(a, self.style, pairs.reshape(-1)).reshape(-1, 2)
        content = np.asarray([";".join(map(str, key_categories(key))) for key in self.groups],
                             dtype=object)
        seq_ids = a.seq_id[a.frame_seq[pairs]]
        return pd.DataFrame({
            "stratum": np.asarray(STRATA, dtype=object)[self.pair_stratum[keep]],
            "image1": a.image_paths(pairs[:, 0], absolute),
            "image2": a.image_paths(pairs[:, 1], absolute),
            "sequence1": seq_ids[:, 0], "sequence2": seq_ids[:, 1],
            "content": content[self.pair_group[keep]],
            "style1": style[:, 0], "style2": style[:, 1],
        }, columns=list(CSV_COLUMNS))


def build_pairs(annotations: BurstAnnotations, config: PairConfig) -> PairSet:
    """Choose content and style, assign strata and sample the pairs of every stratum."""
    a = annotations
    content, style = select_content(a, config)
    is_content = np.isin(a.category, content)
    entry_frame = a.entry_frame
    values = a.count if config.count_instances else np.ones_like(a.count)
    number = np.bincount(entry_frame[is_content], weights=values[is_content],
                         minlength=a.n_frames).astype(np.int64)
    eligible = np.flatnonzero(np.isin(number, config.allowed))
    frame_group, groups = _content_groups(a, is_content, eligible, config.count_instances)
    sequence_stratum = assign_strata(a, config.strata_weights, config.seed)
    stratum = sequence_stratum[a.frame_seq[eligible]]
    shuffle = np.random.default_rng([config.seed, 1]).random(len(eligible))
    order = np.lexsort((shuffle, frame_group[eligible], stratum))
    frames, run = eligible[order], stratum[order] * len(groups) + frame_group[eligible][order]
    pair_up = _pair_forbidding_same_sequence if config.same_sequence == "forbid" else _pair_runs
    pairs = pair_up(frames, run, a.frame_seq)
    return PairSet(
        annotations=a, config=config, content=content, style=style,
        sequence_stratum=sequence_stratum, number=number, frame_group=frame_group,
        groups=groups, pairs=pairs, pair_stratum=sequence_stratum[a.frame_seq[pairs[:, 0]]],
        pair_group=frame_group[pairs[:, 0]])


def key_categories(key: tuple) -> list[int]:
    """Category ids of a content key (a set key, or a multiset key of (id, instances))."""
    return [item[0] if isinstance(item, tuple) else item for item in key]


def key_label(key: tuple) -> str:
    """``"3;7"`` for a set key, ``"3x2;7x1"`` (id x instances) for a multiset key."""
    return ";".join(f"{c[0]}x{c[1]}" if isinstance(c, tuple) else str(c) for c in key)


def _content_groups(a: BurstAnnotations, is_content: np.ndarray, eligible: np.ndarray,
                    with_counts: bool) -> tuple[np.ndarray, list[tuple]]:
    """(F,) key index of every eligible frame (-1 elsewhere) and the keys, sorted."""
    frame_group = np.full(a.n_frames, -1, dtype=np.int64)
    if len(eligible) == 0:
        return frame_group, []
    row_of = np.full(a.n_frames, -1, dtype=np.int64)
    row_of[eligible] = np.arange(len(eligible))
    rows = row_of[a.entry_frame]
    keep = is_content & (rows >= 0)
    rows, cats, counts = rows[keep], a.category[keep], a.count[keep]
    per_row = np.bincount(rows, minlength=len(eligible))
    columns = np.arange(len(rows)) - (np.cumsum(per_row) - per_row)[rows]
    width = int(per_row.max())
    keys = np.full((len(eligible), 2 * width if with_counts else width), -1, dtype=np.int64)
    keys[rows, columns] = cats
    if with_counts:
        keys[rows, width + columns] = counts
    unique, frame_group[eligible] = _unique_rows(keys)
    groups = []
    for key in unique.tolist():
        ids = [c for c in key[:width] if c >= 0]
        groups.append(tuple(zip(ids, key[width:], strict=False)) if with_counts else tuple(ids))
    return frame_group, groups


def _unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U, W) distinct rows of ``keys`` (N, W), in lexicographic order, and (N,) the index of
    each row among them: ``np.unique(keys, axis=0, return_inverse=True)``, with a lexsort of the
    columns instead of a sort of the rows as opaque records (ten times faster)."""
    order = np.lexsort(keys.T[::-1])
    ordered = keys[order]
    new = np.ones(len(keys), dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def _pair_runs(frames: np.ndarray, run: np.ndarray, frame_seq: np.ndarray) -> np.ndarray:
    """Pair consecutive frames within runs of equal ``run``: (0, 1), (2, 3), ... -> (P, 2).
    (``frame_seq`` is unused: same signature as :func:`_pair_forbidding_same_sequence`.)"""
    if len(frames) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    lengths = np.diff(np.r_[starts, len(frames)])
    position = np.arange(len(frames)) - np.repeat(starts, lengths)
    first = np.flatnonzero((position % 2 == 0) & (position + 1 < np.repeat(lengths, lengths)))
    return np.stack([frames[first], frames[first + 1]], axis=1)


def _pair_forbidding_same_sequence(frames: np.ndarray, run: np.ndarray,
                                   frame_seq: np.ndarray) -> np.ndarray:
    """Greedy pairing within runs with the two frames of every pair from different sequences.

    The waiting frames always come from one sequence: a frame of another sequence pairs with
    the oldest of them, a frame of the same sequence joins them.
    """
    pairs: list[tuple[int, int]] = []
    waiting: deque[int] = deque()
    waiting_seq, current = -1, None
    for frame, key, seq in zip(frames.tolist(), run.tolist(), frame_seq[frames].tolist(),
                               strict=True):
        if key != current:
            waiting.clear()
            current = key
        if waiting and seq != waiting_seq:
            pairs.append((waiting.popleft(), frame))
        else:
            waiting.append(frame)
            waiting_seq = seq
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _joined_sets(a: BurstAnnotations, categories: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(N,) object array: the categories of each of ``frames`` (N) among ``categories``, sorted
    ids joined by ``;``."""
    rows, entries = a.entries_of(frames)
    cats = a.category[entries]
    found = np.isin(cats, categories)
    names = list(map(str, cats[found].tolist()))
    bounds = np.searchsorted(rows[found], np.arange(len(frames) + 1)).tolist()
    spans = zip(bounds[:-1], bounds[1:], strict=True)
    return np.asarray([";".join(names[lo:hi]) for lo, hi in spans], dtype=object)
