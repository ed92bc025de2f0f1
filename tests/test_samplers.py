"""Pair samplers on ground-truth factor datasets (property tests on random grids)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockident.data.factors import FactorDataset
from blockident.pairs.samplers import GridSteps, NearestRendered, ResampleStyle

NAMES = ("shape", "scale", "angle", "x")


def _grid(sizes, keep=1.0, seed=0) -> FactorDataset:
    """Every point (or a seeded share ``keep``) of a grid of ``sizes`` (shape, scale, angle, x)."""
    points = np.stack(np.meshgrid(*[np.arange(k) for k in sizes], indexing="ij"), -1)
    points = points.reshape(-1, len(sizes)).astype(float)
    rng = np.random.default_rng(seed)
    points = points[np.sort(rng.permutation(len(points))[:max(2, int(keep * len(points)))])]
    grids = {n: np.arange(k, dtype=float) for n, k in zip(NAMES, sizes, strict=True)}
    return FactorDataset(NAMES, points, lambda idx: np.zeros((len(idx), 2, 2, 1), np.uint8),
                         grids=grids, categorical=frozenset({"shape"}),
                         periodic={"angle": float(sizes[2])})


sizes = st.tuples(*[st.integers(1, 4)] * 4)


@settings(max_examples=40, deadline=None)
@given(sizes=sizes, keep=st.sampled_from([1.0, 0.6]), seed=st.integers(0, 100),
       content=st.sets(st.sampled_from(NAMES)))
def test_grid_steps_keep_content_and_move_style_by_at_most_one_step(sizes, keep, seed, content):
    data = _grid(sizes, keep, seed)
    anchors = np.arange(len(data))
    partner = GridSteps(sorted(content))(data, anchors, np.random.default_rng(seed))
    found = partner >= 0
    assert (partner[found] != anchors[found]).all()
    a, b = data.values[anchors[found]], data.values[partner[found]]
    for j, name in enumerate(NAMES):
        step = np.abs(a[:, j] - b[:, j])
        if name in content:
            assert (step == 0).all()
        elif name == "angle":
            assert (np.minimum(step, sizes[2] - step) <= 1).all()  # wraps around
        else:
            assert (step <= 1).all()
    if keep == 1.0 and len(set(NAMES) - content) and max(
            sizes[NAMES.index(n)] for n in set(NAMES) - content) > 1:
        assert found.all()  # on a full grid a different neighbour always exists


@settings(max_examples=40, deadline=None)
@given(sizes=sizes, keep=st.sampled_from([1.0, 0.5]), seed=st.integers(0, 100),
       content=st.sets(st.sampled_from(NAMES), min_size=1))
def test_resample_style_keeps_content_and_never_returns_the_anchor(sizes, keep, seed, content):
    data = _grid(sizes, keep, seed)
    anchors = np.random.default_rng(seed).integers(0, len(data), 200)
    partner = ResampleStyle(sorted(content))(data, anchors, np.random.default_rng(seed))
    columns = [NAMES.index(n) for n in content]
    key = [tuple(r) for r in data.values[:, columns]]
    group_size = {k: key.count(k) for k in set(key)}
    for a, p in zip(anchors, partner, strict=True):
        if group_size[key[a]] == 1:
            assert p == -1
        else:
            assert p != a and key[p] == key[a]


def test_resample_style_draws_every_other_member_uniformly():
    data = _grid((2, 1, 1, 5))  # content shape: groups of 5
    anchors = np.zeros(20000, dtype=np.int64)
    partner = ResampleStyle(["shape"])(data, anchors, np.random.default_rng(0))
    counts = np.bincount(partner, minlength=len(data))
    assert counts[0] == 0 and counts[5:].sum() == 0
    assert np.allclose(counts[1:5] / len(anchors), 0.25, atol=0.02)


def test_nearest_rendered_snaps_to_another_sample_and_keeps_content_close():
    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, (3000, 3))
    data = FactorDataset(("c", "s1", "s2"), values, lambda idx: None)
    anchors = np.arange(500)
    partner = NearestRendered(["c"], default_scale=0.3)(data, anchors, rng)
    assert (partner != anchors).all() and (partner >= 0).all()
    moved = np.abs(values[partner] - values[anchors]).mean(0)
    assert moved[0] < moved[1] / 2 and moved[0] < moved[2] / 2
    still = NearestRendered(["c", "s1", "s2"])(data, anchors, rng)
    distance = np.linalg.norm(values[still] - values[anchors], axis=1)
    others = np.linalg.norm(values[None, :] - values[anchors, None], axis=2)
    others[np.arange(500), anchors] = np.inf
    assert np.allclose(distance, others.min(1))  # no noise: the nearest other sample


def test_unknown_content_factors_are_named():
    with pytest.raises(ValueError, match=r"unknown factors \['colour'\]"):
        ResampleStyle(["colour"])(_grid((2, 2, 2, 2)), np.arange(3), np.random.default_rng(0))


def test_growing_tolerance_intervals_find_the_first_sample_inside_them():
    rng = np.random.default_rng(1)
    values = rng.uniform(-1, 1, (400, 2))
    data = FactorDataset(("c", "s"), values, lambda idx: None)
    tolerance = {"c": 0.01, "s": 1.0}  # content must stay far closer than style
    anchors = np.arange(100)
    partner = NearestRendered(["c"], default_scale=0.0, tolerance=tolerance)(data, anchors, rng)
    assert (partner != anchors).all()
    # brute force: grow both intervals by 10 % until one holds another sample
    for a, p in zip(anchors, partner, strict=True):
        scaled = np.abs(values - values[a]) / [0.01, 1.0]
        scaled[a] = np.inf
        steps = np.maximum(np.ceil(np.log(np.maximum(scaled.max(1), 1e-12)) / np.log(1.1)), 0)
        assert steps[p] == steps.min()
