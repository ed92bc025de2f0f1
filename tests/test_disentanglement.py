import warnings

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from blockident.readouts.disentanglement import dci, dci_scores, grid_accuracy, mcc


def uniform_factors(n, f, seed):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, f))


def test_mcc_of_permuted_scaled_identity_is_one():
    factors = uniform_factors(500, 4, 0)
    z = factors[:, [2, 0, 3, 1]] * np.array([3.0, -0.5, 10.0, -2.0]) + 7.0
    score, matching = mcc(z, factors)
    assert score == pytest.approx(1.0)
    np.testing.assert_array_equal(matching, [[1, 0], [3, 1], [0, 2], [2, 3]])


def test_mcc_of_a_known_mixing():
    # s1, s2 have mean 0, equal norms and are orthogonal, so for z = a s1 + b s2
    # corr(z, s1) = a / sqrt(a² + b²) and corr(z, s2) = b / sqrt(a² + b²).
    s = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    z = np.stack([s[:, 0] + s[:, 1], -(2 * s[:, 0] + s[:, 1])], axis=1)
    # |r| = [[1/√2, 1/√2], [2/√5, 1/√5]]: matching dim 1 -> s1 and dim 0 -> s2 gives
    # 2/√5 + 1/√2 = 1.6015 > 1/√2 + 1/√5 = 1.1543, so MCC = (2/√5 + 1/√2) / 2 = 0.8008.
    score, matching = mcc(z, s)
    assert score == pytest.approx((2 / np.sqrt(5) + 1 / np.sqrt(2)) / 2)
    np.testing.assert_array_equal(matching, [[1, 0], [0, 1]])


def test_spearman_mcc_is_invariant_to_monotone_transforms():
    factors = uniform_factors(400, 3, 1)
    z = np.stack([np.exp(3 * factors[:, 1]), factors[:, 2] ** 3, -np.tanh(factors[:, 0])], 1)
    pearson, _ = mcc(z, factors)
    spearman, matching = mcc(z, factors, method="spearman")
    assert pearson < 0.98
    assert spearman == pytest.approx(1.0)
    np.testing.assert_array_equal(matching, [[2, 0], [0, 1], [1, 2]])
    mixed = factors @ special_ortho_group.rvs(3, random_state=0)
    assert mcc(np.exp(mixed), factors, "spearman")[0] == pytest.approx(
        mcc(mixed, factors, "spearman")[0])


def test_mcc_matches_min_of_dimensions_and_factors():
    factors = uniform_factors(300, 3, 2)
    noise = np.random.default_rng(3).normal(size=(300, 2))
    z = np.stack([factors[:, 1], noise[:, 0], factors[:, 2], noise[:, 1], factors[:, 0]], 1)
    score, matching = mcc(z, factors)
    assert score == pytest.approx(1.0)
    np.testing.assert_array_equal(matching, [[4, 0], [0, 1], [2, 2]])
    score, matching = mcc(factors[:, 2], factors)
    assert score == pytest.approx(1.0)
    np.testing.assert_array_equal(matching, [[0, 2]])


def test_mcc_constant_columns_correlate_zero_without_nan():
    factors = uniform_factors(200, 2, 4)
    z = np.stack([np.full(200, 3.0), factors[:, 0]], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("pearson", "spearman"):
            score, _ = mcc(z, factors, method)
            assert score == pytest.approx(0.5)
            assert mcc(z, np.ones((200, 2)), method)[0] == 0.0
    with pytest.raises(ValueError, match="method"):
        mcc(z, factors, "kendall")


def test_dci_scores_of_identity_and_uniform_rows():
    assert dci_scores(np.eye(4)) == pytest.approx((1.0, 1.0))
    assert dci_scores(3 * np.eye(4)[[2, 0, 3, 1]]) == pytest.approx((1.0, 1.0))
    # one dimension encodes all three factors equally: H_3 = 1 so D = 0, but each factor is
    # captured by that single dimension, so C = 1.
    assert dci_scores(np.ones((1, 3))) == pytest.approx((0.0, 1.0))
    assert dci_scores(np.ones((3, 3))) == pytest.approx((0.0, 0.0))
    # an unused dimension (weight 0) does not lower D; the uniform one still scores 0.
    assert dci_scores(np.array([[1.0, 1.0], [0.0, 0.0]])) == pytest.approx((0.0, 1.0))


def test_dci_scores_by_hand():
    # R = [[1, 0], [1, 1]]. Rows: P_0 = (1, 0) -> D_0 = 1; P_1 = (1/2, 1/2) -> D_1 = 0;
    # rho = (1/3, 2/3), so D = 1/3. Columns: (1, 1)/2 -> C_0 = 0; (0, 1) -> C_1 = 1; C = 1/2.
    assert dci_scores(np.array([[1.0, 0.0], [1.0, 1.0]])) == pytest.approx((1 / 3, 1 / 2))
    # R = [[3, 1], [0, 0]]: P_0 = (3/4, 1/4), H_2 = 3/4 log2(4/3) + 1/4 log2(4) = 0.8113,
    # rho = (1, 0) -> D = 0.1887; each column has its mass on dimension 0 -> C = 1.
    h = 0.75 * np.log2(4 / 3) + 0.25 * 2
    assert dci_scores(np.array([[3.0, 1.0], [0.0, 0.0]])) == pytest.approx((1 - h, 1.0))
    # one factor: D_i = 1 (base 1); C = 1 - H_2(1/4, 3/4) = 0.1887.
    assert dci_scores(np.array([[1.0], [3.0]])) == pytest.approx((1.0, 1 - h))


def test_dci_scores_zero_rows_and_columns_give_no_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # factor 1 is explained by nothing: C_1 = 0, C = (1 + 0) / 2.
        assert dci_scores(np.array([[1.0, 0.0], [0.0, 0.0]])) == pytest.approx((1.0, 0.5))
        assert dci_scores(np.zeros((3, 2))) == (0.0, 0.0)
    with pytest.raises(ValueError, match="nonnegative"):
        dci_scores(-np.eye(2))


@pytest.mark.parametrize("importance", ["gbt", "lasso"])
def test_dci_identity_beats_rotation(importance):
    train, test = uniform_factors(1000, 3, 5), uniform_factors(400, 3, 6)
    rotation = special_ortho_group.rvs(3, random_state=1)
    kwargs = {"importance": importance, "n_estimators": 20, "max_samples": 600}
    same = dci(train, train, test, test, **kwargs)
    rotated = dci(train @ rotation, train, test @ rotation, test, **kwargs)
    assert same["importances"].shape == (3, 3)
    assert same["disentanglement"] > 0.9 and same["completeness"] > 0.9
    assert same["informativeness"] > 0.9
    assert rotated["disentanglement"] < same["disentanglement"] - 0.3
    assert rotated["completeness"] < same["completeness"] - 0.3
    with pytest.raises(ValueError, match="importance"):
        dci(train, train, test, test, importance="forest")


def test_grid_accuracy_boundaries_and_open_ends():
    grid = np.array([0.0, 1.0, 3.0])
    # truth 1 accepts (0.5, 2); truth 0 accepts (-inf, 0.5); truth 3 accepts (2, inf).
    truth = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 3.0, 3.0])
    prediction = np.array([0.5, 0.51, 1.99, 2.0, -100.0, 0.5, 2.0, 100.0])
    accurate = [0, 1, 1, 0, 1, 0, 0, 1]
    assert grid_accuracy(prediction, truth, grid) == pytest.approx(np.mean(accurate))
    for p, t, a in zip(prediction, truth, accurate, strict=True):
        assert grid_accuracy([p], [t], grid) == a
    assert grid_accuracy(prediction.reshape(2, 4), truth.reshape(2, 4), grid) == 0.5
    with pytest.raises(ValueError, match="on the grid"):
        grid_accuracy([1.0], [0.7], grid)
    with pytest.raises(ValueError, match="increasing"):
        grid_accuracy([1.0], [1.0], grid[::-1])


def test_grid_accuracy_periodic_wraps():
    grid = np.array([0.0, 90.0, 180.0, 270.0])
    cases = [(0.0, 350.0, 1), (0.0, -40.0, 1), (0.0, 315.0, 0), (0.0, 316.0, 1),
             (270.0, 5.0, 0), (270.0, 314.0, 1), (270.0, 315.0, 0), (90.0, 135.0, 0),
             (180.0, 180.0 + 720.0, 1)]
    for t, p, a in cases:
        assert grid_accuracy([p], [t], grid, periodic=360.0) == a, (t, p)
    assert grid_accuracy([5.0], [270.0], grid) == 0
    assert grid_accuracy([350.0], [0.0], grid) == 0
    # dSprites-like grid listing both ends of the period: 0 and 2 pi are one value.
    grid = np.linspace(0, 2 * np.pi, 5)
    assert grid_accuracy([0.1, 2 * np.pi - 0.1], [2 * np.pi, 0.0], grid, periodic=2 * np.pi) == 1
    assert grid_accuracy([np.pi / 4], [0.0], grid, periodic=2 * np.pi) == 0


def test_whole_rows_score_a_representation_against_all_continuous_factors():
    from blockident.data.base import ReadoutSplit, ReadoutTask
    from blockident.readouts.evaluate import whole_rows

    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 400), ("test", 300)):
        f = rng.normal(size=(n, 3))
        splits[name] = ReadoutSplit(
            inputs={}, factors={"a": f[:, 0], "b": f[:, 1], "c": f[:, 2]},
            kinds=dict.fromkeys("abc", "content"), tasks=[ReadoutTask("z", "z", k) for k in "abc"])
    identity = {s: {"z": np.column_stack([splits[s].factors[k] for k in "cab"])} for s in splits}
    rows = whole_rows(splits["train"], splits["test"], identity, splits["train"].tasks,
                      ["mcc", "dci"])
    values = {(r["readout"], r["metric"]): r["value"] for r in rows}
    assert values[("mcc", "pearson")] == pytest.approx(1.0)
    assert values[("dci", "disentanglement")] > 0.9 and values[("dci", "informativeness")] > 0.9
    assert all(r["factor"] == "*" and r["kind"] == "all" for r in rows)
    with pytest.raises(ValueError, match="readout.whole: unknown"):
        whole_rows(splits["train"], splits["test"], identity, splits["train"].tasks, ["sap"])
