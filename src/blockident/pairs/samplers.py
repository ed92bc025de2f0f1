"""Pair samplers for any ground-truth factor dataset (a ``FactorDataset``).

A sampler takes a dataset, anchor indices and a generator and returns one partner index per
anchor (-1 where it found none): the positive pairs of a latent-factor experiment. *Content*
factors are the ones the two views share; every other factor is *style*.

- :class:`GridSteps` (the dSprites rule of the seed study): content fixed, each style factor
  moved by U{-1, 0, 1} steps on its grid (periodic factors wrap around, others stay on the
  grid), drawn again until the partner differs from the anchor.
- :class:`ResampleStyle` (block identifiability): content fixed, style drawn anew: a uniformly
  random other sample with the same content.
- :class:`NearestRendered` (cl-ica, 3DIdent): ``z~ = z + noise`` with a Gaussian scale per style
  factor (content gets none), snapped to the nearest other sample (exact, KD-tree).

Each works on whole anchor arrays at once (indexing, no scan per anchor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from blockident.data.factors import FactorDataset
from blockident.errors import ConfigError


def _check(data: FactorDataset, content: Sequence[str]) -> list[str]:
    unknown = set(content) - set(data.names)
    if unknown:
        raise ConfigError(f"pairs.content names unknown factors {sorted(unknown)}; the factors "
                          f"are {list(data.names)}")
    return [n for n in data.names if n not in content]


def _grid_table(data: FactorDataset) -> tuple[np.ndarray, np.ndarray]:
    """(N, F) grid indices of every sample and a dense (K_1, ..., K_F) table of row indices
    (-1 where the grid point has no sample); every factor must be on a grid."""
    missing = [n for n in data.names if n not in data.grids]
    if missing:
        raise ConfigError(f"grid steps need every factor on a grid; {missing} are not")
    index = np.stack([data.grid_index(n) for n in data.names], 1)
    sizes = tuple(len(data.grids[n]) for n in data.names)
    table = np.full(sizes, -1, dtype=np.int64)
    table[tuple(index.T)] = np.arange(len(data))
    return index, table


@dataclass
class GridSteps:
    """Content factors fixed, each style factor moved by -1, 0 or +1 grid steps (kept on the
    grid at its ends; periodic factors wrap); ``tries`` draws per anchor until the partner
    exists and differs from the anchor."""

    content: Sequence[str]
    tries: int = 100
    _cache: dict = field(default_factory=dict, repr=False)

    def __call__(self, data: FactorDataset, anchors: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
        style = _check(data, self.content)
        if self._cache.get("data") is not data:
            self._cache.update(data=data, grid=_grid_table(data))
        index, table = self._cache["grid"]
        sizes = np.asarray(table.shape)
        movable = np.isin(data.names, style)
        wraps = np.isin(data.names, list(data.periodic))
        partner = np.full(len(anchors), -1, dtype=np.int64)
        todo = np.arange(len(anchors))
        for _ in range(self.tries):
            if len(todo) == 0:
                break
            moved = index[anchors[todo]] + rng.integers(-1, 2, (len(todo), len(sizes))) * movable
            moved = np.where(wraps, moved % sizes, np.clip(moved, 0, sizes - 1))
            found = table[tuple(moved.T)]
            ok = (found >= 0) & (found != anchors[todo])
            partner[todo[ok]] = found[ok]
            todo = todo[~ok]
        return partner


@dataclass
class ResampleStyle:
    """Content factors fixed, style drawn anew: a uniformly random other sample with the same
    content values."""

    content: Sequence[str]
    _cache: dict = field(default_factory=dict, repr=False)

    def _groups(self, data: FactorDataset) -> tuple[np.ndarray, ...]:
        """(N,) content group of every sample, the samples ordered by group, (G + 1,) group
        starts in that order, (N,) each sample's position in it."""
        columns = [data.names.index(n) for n in self.content]
        _, key = np.unique(data.values[:, columns], axis=0, return_inverse=True)
        key = key.reshape(-1)
        order = np.argsort(key, kind="stable")
        starts = np.searchsorted(key[order], np.arange(key.max() + 2))
        rank = np.empty(len(data), dtype=np.int64)
        rank[order] = np.arange(len(data))
        return key, order, starts, rank

    def __call__(self, data: FactorDataset, anchors: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
        _check(data, self.content)
        if self._cache.get("data") is not data:
            self._cache.update(data=data, groups=self._groups(data))
        key, order, starts, rank = self._cache["groups"]
        first, count = starts[key[anchors]], np.diff(starts)[key[anchors]]
        # a random other member: draw among count - 1 and skip the anchor's own position
        own = rank[anchors] - first
        draw = (rng.random(len(anchors)) * np.maximum(count - 1, 1)).astype(np.int64)
        draw += draw >= own
        partner = order[np.minimum(first + draw, len(data) - 1)]
        return np.where(count > 1, partner, -1)


@dataclass
class NearestRendered:
    """``z~ = z + noise`` (Gaussian, standard deviation ``scale[f]`` for style factor ``f``,
    ``default_scale`` for unlisted style factors, none for content), snapped to the nearest
    other sample in factor space (exact Euclidean KD-tree search).

    With ``tolerance`` (one width, or per factor) the seed study's variant: per-factor intervals
    ``z~ +- tolerance`` that grow by 10 % until they hold a sample. The first growth step that
    holds one is set by the nearest sample in the maximum norm of the tolerance-scaled factors,
    which is the sample returned.
    """

    content: Sequence[str]
    default_scale: float = 0.1
    scale: dict[str, float] | None = None
    tolerance: float | dict[str, float] | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def _units(self, data: FactorDataset) -> np.ndarray:
        """(F,) divisor of each factor before the search: its tolerance, or 1."""
        if self.tolerance is None:
            return np.ones(len(data.names))
        if isinstance(self.tolerance, int | float):
            return np.full(len(data.names), float(self.tolerance))
        return np.array([self.tolerance.get(n, 1.0) for n in data.names], dtype=float)

    def __call__(self, data: FactorDataset, anchors: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
        style = _check(data, self.content)
        scale = np.array([0.0 if n not in style else (self.scale or {}).get(n, self.default_scale)
                          for n in data.names])
        units = self._units(data)
        if self._cache.get("data") is not data:
            self._cache.update(data=data, tree=cKDTree(data.values / units))
        tree = self._cache["tree"]
        target = data.values[anchors] + rng.normal(size=(len(anchors), len(scale))) * scale
        norm = np.inf if self.tolerance is not None else 2
        _, nearest = tree.query(target / units, k=2, p=norm, workers=-1)
        return np.where(nearest[:, 0] != anchors, nearest[:, 0], nearest[:, 1])
