"""Column-wise ROC-AUC and average precision against scikit-learn's per-column functions."""

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from blockident.readouts.classification import METRICS, category_metrics, category_table
from blockident.readouts.metrics import ranking_metrics


@st.composite
def labelled_scores(draw):
    """(N, C) 0/1 labels (some columns all one class) and scores with many ties."""
    n, c = draw(st.integers(0, 30)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    share = rng.choice([0.0, 1.0, 0.1, 0.5, 0.9], size=c)
    y = (rng.random((n, c)) < share).astype(np.int64)
    levels = draw(st.integers(1, 8))  # few distinct scores: ties everywhere
    scores = rng.integers(0, levels, size=(n, c)) * draw(st.sampled_from([0.25, -1.0, 1e-3]))
    return y, scores


@settings(max_examples=200, deadline=None)
@given(labelled_scores())
def test_column_metrics_equal_scikit_learns_per_column(data):
    y, scores = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = ranking_metrics(y, scores)
    auc, ap = metrics["roc_auc"], metrics["average_precision"]
    assert auc.shape == ap.shape == (y.shape[1],)
    for k in range(y.shape[1]):
        pos = y[:, k].sum()
        expected_auc = roc_auc_score(y[:, k], scores[:, k]) if 0 < pos < len(y) else np.nan
        expected_ap = average_precision_score(y[:, k], scores[:, k]) if pos else np.nan
        np.testing.assert_allclose(auc[k], expected_auc, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ap[k], expected_ap, rtol=1e-12, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(labelled_scores())
def test_category_table_is_category_metrics_of_every_column(data):
    y, scores = data
    predictions = (scores > 0).astype(np.int64)
    table = category_table(y, scores, predictions)
    for k in range(y.shape[1]):
        one = category_metrics(y[:, k], scores[:, k], predictions[:, k])
        for metric in METRICS:
            np.testing.assert_allclose(table[metric][k], one[metric], rtol=1e-12)


def test_a_one_dimensional_column():
    # positives 0.9, 0.8, 0.3; negatives 0.7, 0.4, 0.2, 0.1, 0.0
    y, s = [1, 1, 1, 0, 0, 0, 0, 0], [0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.4, 0.0]
    metrics = ranking_metrics(y, s)
    np.testing.assert_allclose(metrics["roc_auc"], [13 / 15])
    np.testing.assert_allclose(metrics["average_precision"], [(1 + 1 + 3 / 5) / 3])
