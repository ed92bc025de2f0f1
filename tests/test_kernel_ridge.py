"""The torch kernel ridge readout against scikit-learn's grid search, and its use per input set."""

import numpy as np
import pytest
import torch
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold

from blockident.data.base import ReadoutSplit, ReadoutTask
from blockident.readouts.kernel_ridge import KernelRidgeCV, fold_bounds, r2_columns
from blockident.readouts.regression import regression_rows

GRID = {"alpha": [1.0, 0.1, 0.01, 0.001], "gamma": [0.01, 0.1, 1.0, 10.0]}


def _search(cv=3):
    return GridSearchCV(KernelRidge(kernel="rbf"), GRID, cv=cv)


def _problem(n, seed=0):
    """Features (n, 3) and targets (n, 4): smooth, rough, product of features and noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.column_stack([np.sin(x[:, 0]), np.sign(x[:, 1]) * x[:, 1] ** 2, x[:, 0] * x[:, 2],
                         rng.normal(size=n)])
    return x, y


@pytest.mark.parametrize("n, cv", [(301, 3), (200, 4)])
def test_every_block_gets_what_its_own_grid_search_gets(n, cv):
    x, y = _problem(n)
    x_test, _ = _problem(60, seed=1)
    blocks = [1, 2, 1]
    model = KernelRidgeCV(cv=cv, max_samples=None).fit(x, y, blocks=blocks)
    prediction = model.predict(x_test)
    assert prediction.shape == (60, 4)
    edges = np.cumsum([0, *blocks])
    for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        target = y[:, lo] if hi - lo == 1 else y[:, lo:hi]
        search = _search(cv).fit(x, target)
        assert model.best_params_[b] == search.best_params_
        np.testing.assert_allclose(model.cv_scores_[b].ravel(),
                                   search.cv_results_["mean_test_score"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(prediction[:, lo:hi],
                                   search.predict(x_test).reshape(60, -1), rtol=1e-7, atol=1e-9)
    # the blocks chose differently: the smooth factor and the noise do not share a candidate
    assert model.best_params_[0] != model.best_params_[2]


def test_one_dimensional_target_gives_one_dimensional_predictions():
    x, y = _problem(150)
    model = KernelRidgeCV(max_samples=None).fit(x, y[:, 0])
    np.testing.assert_allclose(model.predict(x[:7]), _search().fit(x, y[:, 0]).predict(x[:7]),
                               rtol=1e-7, atol=1e-9)
    assert model.predict(x[:7]).shape == (7,)


def test_predictions_in_chunks_equal_one_pass(monkeypatch):
    x, y = _problem(120)
    model = KernelRidgeCV(max_samples=None).fit(x, y, blocks=[1, 1, 1, 1])
    whole = model.predict(x)
    monkeypatch.setattr("blockident.readouts.kernel_ridge.PREDICT_CHUNK", 120 * 7)
    np.testing.assert_allclose(model.predict(x), whole, rtol=1e-12, atol=1e-12)


def test_folds_are_scikit_learns_kfold():
    for n, k in [(10, 3), (11, 3), (12, 4), (5, 5)]:
        expected = [(int(test[0]), int(test[-1]) + 1) for _, test in KFold(k).split(range(n))]
        assert fold_bounds(n, k) == expected
    with pytest.raises(ValueError, match="needs at least 3 samples"):
        fold_bounds(2, 3)


def test_r2_columns_follows_scikit_learn_for_constant_columns():
    rng = np.random.default_rng(0)
    y = np.column_stack([rng.normal(size=9), np.full(9, 2.0), np.full(9, 2.0), np.zeros(9)])
    pred = np.column_stack([y[:, 0] + rng.normal(size=9), np.full(9, 2.0), np.full(9, 1.0),
                            rng.normal(size=9)])
    ours = r2_columns(torch.as_tensor(y), torch.as_tensor(pred)).numpy()
    np.testing.assert_allclose(ours, r2_score(y, pred, multioutput="raw_values"))
    assert list(ours[1:3]) == [1.0, 0.0]


def test_singular_kernel_falls_back_to_least_squares_as_scikit_learn():
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(20, 2)), 2, axis=0)  # every sample twice: K is singular
    y = np.sin(x[:, 0]) + 0.1 * rng.normal(size=40)
    with pytest.warns(UserWarning, match="singular"):
        ours = KernelRidgeCV(alphas=(0.0,), gammas=(1.0,), max_samples=None).fit(x, y)
    with pytest.warns(UserWarning, match="Singular"):
        theirs = KernelRidge(alpha=0.0, kernel="rbf", gamma=1.0).fit(x, y)
    np.testing.assert_allclose(ours.predict(x[:10]), theirs.predict(x[:10]), atol=1e-6)


def _split(n, seed):
    """Two input sets; factors: 2-d content, a style scalar on a grid, and pure noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    factors = {"c": np.sin(x[:, :2]), "s": np.round(np.tanh(x[:, 2:]) * 2) / 2,
               "noise": rng.normal(size=(n, 1)), "empty": np.zeros((n, 0))}
    tasks = [ReadoutTask("view1", "view1", "c"), ReadoutTask("view1", "view1", "s"),
             ReadoutTask("shuffled", "view1_shuffled", "c"), ReadoutTask("view1", "view1", "noise"),
             ReadoutTask("view1", "view1", "empty")]
    kinds = {"c": "content", "s": "style", "noise": "style", "empty": "style"}
    shuffled = rng.permutation(x)
    split = ReadoutSplit({"view1": (1, x), "view1_shuffled": (1, shuffled)}, factors, kinds,
                         tasks, grids={"s": np.linspace(-1, 1, 5)})
    return split, {"view1": x, "view1_shuffled": shuffled}


def test_rows_equal_one_grid_search_per_task_in_order():
    (train, x_train), (test, x_test) = _split(240, 0), _split(100, 1)
    encodings = {"train": x_train, "test": x_test}
    joint = regression_rows(train, test, encodings, {
        "linear": LinearRegression(), "kernel_ridge": KernelRidgeCV(max_samples=None)})
    per_task = regression_rows(train, test, encodings, {
        "linear": LinearRegression(), "kernel_ridge": _search()})
    assert [{k: v for k, v in r.items() if k != "value"} for r in joint] == \
        [{k: v for k, v in r.items() if k != "value"} for r in per_task]
    np.testing.assert_allclose([r["value"] for r in joint], [r["value"] for r in per_task],
                               rtol=1e-7, atol=1e-9)
    values = {(r["factor"], r["readout"], r["metric"]): r["value"] for r in joint
              if r["encoding"] == "view1"}
    assert values["c", "kernel_ridge", "r2"] > 0.9 and values["noise", "kernel_ridge", "r2"] < 0.05
    assert values["s", "kernel_ridge", "grid_accuracy"] > 0.8
    shuffled = [r["value"] for r in joint if r["encoding"] == "shuffled" and r["metric"] == "r2"]
    assert max(shuffled) < 0.1
    assert np.isnan(values["empty", "kernel_ridge", "r2"])
