"""Ground-truth factor datasets: observations with the generative factors that made them.

A :class:`FactorDataset` is what a latent-factor source (dSprites, 3DIdent, ...) gives the pair
samplers of :mod:`blockident.pairs.samplers` and the readouts: ``N`` observations and an
``(N, F)`` table of factor values. A *grid* factor takes one of a few sorted values (dSprites'
scale, orientation, ...); a *categorical* grid factor names classes rather than amounts (shape);
other factors are continuous (3DIdent's latents).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class FactorDataset:
    """``values`` (N, F) float64: factor ``j`` of sample ``i`` (names ``names``, length F).

    ``grids``: factor name -> its sorted grid values (K_j,), for factors on a grid (every value
    in the column is one of them); ``categorical``: names of grid factors whose values are class
    labels (read out by classification, no notion of neighbouring values); ``periodic``: names of
    grid factors that wrap around (orientation), with the period in factor units.
    ``load(indices) -> uint8 array (n, H, W, C)`` returns observations by index.
    """

    names: tuple[str, ...]
    values: np.ndarray
    load: Callable[[np.ndarray], np.ndarray]
    grids: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: frozenset[str] = frozenset()
    periodic: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self.names = tuple(self.names)
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(f"values must be (N, {len(self.names)}) for factors {self.names}, "
                             f"got shape {self.values.shape}")
        unknown = (set(self.grids) | set(self.categorical) | set(self.periodic)) - set(self.names)
        if unknown:
            raise ValueError(f"unknown factors {sorted(unknown)}; factors are {self.names}")
        for name, grid in self.grids.items():
            grid = np.asarray(grid, dtype=np.float64)
            if grid.ndim != 1 or np.any(np.diff(grid) <= 0):
                raise ValueError(f"grid of {name!r} must be strictly increasing values")
            self.grids[name] = grid

    def __len__(self) -> int:
        return len(self.values)

    def subset(self, index: np.ndarray) -> FactorDataset:
        """The samples ``index`` as a factor dataset of their own (observations loaded through
        this one)."""
        return FactorDataset(self.names, self.values[index], lambda i: self.load(index[i]),
                             grids=self.grids, categorical=self.categorical,
                             periodic=self.periodic)

    def column(self, name: str) -> np.ndarray:
        """(N,) values of factor ``name``."""
        return self.values[:, self.names.index(name)]

    def grid_index(self, name: str) -> np.ndarray:
        """(N,) int64 position of each sample's value on the grid of factor ``name``."""
        grid = self.grids[name]
        index = np.searchsorted(grid, self.column(name))
        index = np.clip(index, 0, len(grid) - 1)
        closer_below = (index > 0) & (np.abs(grid[index - 1] - self.column(name))
                                      < np.abs(grid[index] - self.column(name)))
        return index - closer_below
