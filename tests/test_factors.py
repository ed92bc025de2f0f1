"""The ground-truth factor dataset."""

import numpy as np
import pytest

from blockident.data.factors import FactorDataset


def _load(idx):
    return np.zeros((len(idx), 4, 4, 1), np.uint8)


def test_grid_index_finds_the_nearest_grid_value():
    values = np.array([[0.0, 0.5], [1.0, 0.74], [2.0, 0.76], [1.0, 1.0]])
    data = FactorDataset(("shape", "scale"), values, _load,
                         grids={"shape": [0, 1, 2], "scale": [0.5, 0.75, 1.0]},
                         categorical=frozenset({"shape"}))
    assert data.grid_index("scale").tolist() == [0, 1, 1, 2]
    assert data.grid_index("shape").tolist() == [0, 1, 2, 1]
    assert len(data) == 4 and data.column("scale")[1] == 0.74


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match=r"values must be \(N, 2\)"):
        FactorDataset(("a", "b"), np.zeros((3, 3)), _load)
    with pytest.raises(ValueError, match="unknown factors"):
        FactorDataset(("a",), np.zeros((3, 1)), _load, grids={"b": [0, 1]})
    with pytest.raises(ValueError, match="strictly increasing"):
        FactorDataset(("a",), np.zeros((3, 1)), _load, grids={"a": [1, 0]})


def test_a_subset_keeps_the_factor_metadata_and_loads_through_the_parent():
    values = np.arange(12, dtype=float).reshape(6, 2)
    data = FactorDataset(("a", "b"), values, lambda idx: np.asarray(idx)[:, None, None, None],
                         grids={"a": values[:, 0]}, periodic={"b": 12.0})
    part = data.subset(np.array([4, 1]))
    assert part.values.tolist() == [[8.0, 9.0], [2.0, 3.0]]
    assert part.load(np.array([0, 1])).reshape(-1).tolist() == [4, 1]
    assert part.periodic == {"b": 12.0} and "a" in part.grids
