"""Ranking metrics of many binary labels at once: ROC-AUC and average precision per column.

:func:`ranking_metrics` gives scikit-learn's ``roc_auc_score`` and ``average_precision_score``
of every column (tied scores are one threshold) from one sort of all columns, instead of two
calls per column.
"""

from __future__ import annotations

import numpy as np


def ranking_metrics(y_true, y_score) -> dict[str, np.ndarray]:
    """``roc_auc`` and ``average_precision`` (C,) of (N, C) 0/1 labels and finite scores (an
    (N,) vector is one column).

    ROC-AUC is the Mann-Whitney statistic with ties counted half (average ranks), NaN without
    both classes; average precision the mean over the positives of the precision at their
    score's threshold (all samples scoring at least as high), NaN without positives.
    """
    y_true = np.asarray(y_true).astype(bool)
    y_true = y_true if y_true.ndim == 2 else y_true.reshape(-1, 1)
    y_score = np.asarray(y_score, dtype=np.float64).reshape(y_true.shape)
    n = len(y_true)
    order = np.argsort(-y_score.T, axis=1)  # (C, N); the order within ties does not matter
    score = np.take_along_axis(y_score.T, order, 1)
    label = np.take_along_axis(y_true.T, order, 1)
    index = np.arange(n)
    tied_left = np.zeros(score.shape, dtype=bool)  # the same score as the sample before
    tied_left[:, 1:] = score[:, 1:] == score[:, :-1]
    tied_right = np.zeros(score.shape, dtype=bool)
    tied_right[:, :-1] = tied_left[:, 1:]
    # first and last position of each sample's run of tied scores
    first = np.maximum.accumulate(np.where(tied_left, 0, index), axis=1)
    last = np.minimum.accumulate(np.where(tied_right, n, index)[:, ::-1], axis=1)[:, ::-1]

    pos = label.sum(1)
    neg = n - pos
    precision = label.cumsum(1) / (index + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # ascending average rank of a sample: n - (first + last) / 2 (1-based)
        rank_sum = np.where(label, n - (first + last) / 2, 0).sum(1)
        auc = (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
        ap = np.where(label, np.take_along_axis(precision, last, 1), 0).sum(1) / pos
    return {"roc_auc": np.where((pos > 0) & (neg > 0), auc, np.nan),
            "average_precision": np.where(pos > 0, ap, np.nan)}
