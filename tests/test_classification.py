"""Classification readouts: metrics, the multi-label MLP, the scikit-learn readouts, the rows."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from blockident.readouts.classification import (
    METRICS,
    MultiLabelMLP,
    category_metrics,
    classification_rows,
)


def _separable(n=1200, d=8, c=3, seed=0, prevalence=(0.5, 0.3, 0.05)):
    """Features (n, d) and labels (n, c): category k is a threshold on a random direction."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    proj = x @ rng.normal(size=(d, c))
    thresholds = [np.quantile(proj[:, k], 1 - prevalence[k]) for k in range(c)]
    y = (proj > np.asarray(thresholds)).astype(int)
    return x, y


def test_metrics_hand_computed():
    y_true = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    y_pred = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    y_score = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.4, 0.0])
    m = category_metrics(y_true, y_score, y_pred)
    # tp=2, fn=1, fp=1, tn=4
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["balanced_accuracy"] == pytest.approx(0.5 * (2 / 3 + 4 / 5))
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # positives' scores 0.9, 0.8, 0.3 beat 5, 5 and 3 (0.2, 0.1, 0.0) of the 5 negatives
    assert m["roc_auc"] == pytest.approx(13 / 15)
    # ranked: 0.9(+) 0.8(+) 0.7(-) 0.4(-) 0.3(+): AP = (1 + 1 + 3/5) / 3
    assert m["pr_auc"] == pytest.approx((1 + 1 + 3 / 5) / 3)
    assert m["positives"] == 3
    assert set(m) == set(METRICS)


def test_metrics_undefined_are_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        no_pos = category_metrics(np.zeros(4), np.arange(4.0), np.array([0, 1, 0, 0]))
        no_pred = category_metrics(np.array([1, 0, 1, 0]), np.arange(4.0), np.zeros(4))
        all_neg = category_metrics(np.zeros(3), np.zeros(3), np.zeros(3))
        empty = category_metrics(np.zeros(0), np.zeros(0), np.zeros(0))
    for key in ("balanced_accuracy", "recall", "roc_auc", "pr_auc"):
        assert math.isnan(no_pos[key])
    assert no_pos["accuracy"] == 0.75 and no_pos["precision"] == 0.0 and no_pos["f1"] == 0.0
    assert no_pos["positives"] == 0
    assert math.isnan(no_pred["precision"])
    assert no_pred["recall"] == 0.0 and no_pred["f1"] == 0.0
    assert no_pred["balanced_accuracy"] == 0.5
    assert math.isnan(all_neg["f1"]) and math.isnan(all_neg["precision"])
    assert all(math.isnan(v) for k, v in empty.items() if k != "positives")


def test_mlp_learns_separable_labels_including_rare():
    x, y = _separable()
    model = MultiLabelMLP(max_epochs=100, seed=0).fit(x[:800], y[:800])
    pred = model.predict(x[800:])
    proba = model.predict_proba(x[800:])
    assert pred.shape == proba.shape == (400, 3)
    for c in range(3):
        m = category_metrics(y[800:, c], proba[:, c], pred[:, c])
        assert m["balanced_accuracy"] > 0.9, (c, m)
        assert m["recall"] > 0.5, (c, m)  # the 5% category too: class balance matters


def test_mlp_at_chance_on_random_labels():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(1200, 8)), rng.integers(0, 2, size=(1200, 4))
    model = MultiLabelMLP(max_epochs=50, seed=0).fit(x[:800], y[:800])
    pred = model.predict(x[800:])
    bal = [category_metrics(y[800:, c], pred[:, c], pred[:, c])["balanced_accuracy"]
           for c in range(4)]
    assert abs(np.mean(bal) - 0.5) < 0.06


def test_mlp_deterministic_for_seed():
    x, y = _separable(n=400)
    a = MultiLabelMLP(max_epochs=10, seed=3).fit(x, y).predict_proba(x)
    b = MultiLabelMLP(max_epochs=10, seed=3).fit(x, y).predict_proba(x)
    c = MultiLabelMLP(max_epochs=10, seed=4).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("readout", ["logreg", "logreg_cv", "svc", "gp", "mlp", "knn"])
def test_readouts_on_small_problem(readout):
    x, y = _separable(n=600, c=2, prevalence=(0.5, 0.2))
    rows, scores = classification_rows(
        x[:300], y[:300], x[300:], y[300:], ["a", "b"], ["content", "style"], "enc", readout,
        max_gp_samples=200, mlp_kwargs={"max_epochs": 100})
    assert scores.shape == (300, 2) and np.isfinite(scores).all()
    values = {(r["factor"], r["metric"]): r["value"] for r in rows}
    for cat in ("a", "b"):
        assert values[(cat, "roc_auc")] > 0.9
        assert values[(cat, "balanced_accuracy")] > 0.7  # gp has no class weights


@pytest.mark.parametrize("readout", ["knn", "logreg_cv"])
def test_neighbour_and_swept_readouts_at_chance_on_noise(readout):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(600, 8)), (rng.random((600, 2)) < [0.5, 0.2]).astype(int)
    rows, _ = classification_rows(x[:300], y[:300], x[300:], y[300:], ["a", "b"],
                                  ["content", "style"], "enc", readout)
    for r in rows:
        if r["metric"] in ("balanced_accuracy", "roc_auc"):
            assert abs(r["value"] - 0.5) < 0.12, r


def test_rows_schema_and_skipped_categories():
    x, y = _separable(n=400, c=3)
    y_train, y_test = y[:200].copy(), y[200:].copy()
    y_train[:, 1] = 0  # no positive training example: skipped
    y_train[:, 2] = 1  # no negative training example: skipped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows, scores = classification_rows(
            x[:200], y_train, x[200:], y_test, ["a", "b", "c"], ["content", "style", "style"],
            "content_enc", "logreg")
    assert len(rows) == 3 * len(METRICS)
    for r in rows:
        assert list(r) == ["encoding", "factor", "kind", "readout", "metric", "value"]
        assert r["encoding"] == "content_enc" and r["readout"] == "logreg"
    assert [r["metric"] for r in rows[: len(METRICS)]] == list(METRICS)
    kinds = {r["factor"]: r["kind"] for r in rows}
    assert kinds == {"a": "content", "b": "style", "c": "style"}
    for r in rows:
        if r["factor"] in ("b", "c") and r["metric"] != "positives":
            assert math.isnan(r["value"])
        if r["metric"] == "positives":
            assert r["value"] == int(y_test[:, "abc".index(r["factor"])].sum())
    assert np.isfinite(scores[:, 0]).all() and np.isnan(scores[:, 1:]).all()


def test_unknown_readout():
    x, y = _separable(n=50, c=1)
    with pytest.raises(ValueError, match="unknown"):
        classification_rows(x, y, x, y, ["a"], ["content"], "e", "forest")
