"""Regression readouts: predict continuous factors from frozen encodings, scored by R2.

Readouts are scikit-learn style regressors chosen by config (``readout.regressors``), fitted on
the readout-training split and scored on the test split. A regressor with ``multi_factor``
(:class:`~blockident.readouts.kernel_ridge.KernelRidgeCV`) is fitted once per input set on all
its factors, each factor choosing its own hyperparameters; any other is cloned per
(encoding, factor).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

from blockident.data.base import ReadoutSplit
from blockident.logs import progress
from blockident.readouts.disentanglement import grid_accuracy
from blockident.readouts.kernel_ridge import KernelRidgeCV  # noqa: F401 (saved configs name it here)


def _target(y: np.ndarray) -> np.ndarray:
    """Factor values as scikit-learn expects them: (N,) for one dimension, else (N, d)."""
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y


def fit_predict(regressor: BaseEstimator, x_train: np.ndarray, ys: list[np.ndarray],
                x_test: np.ndarray) -> list[np.ndarray]:
    """Test predictions of each target of ``ys`` ((N,) or (N, d) each) from ``x_train`` (N, D):
    one fit of all targets for a ``multi_factor`` regressor, else one clone per target."""
    if not getattr(regressor, "multi_factor", False):
        return [clone(regressor).fit(x_train, y).predict(x_test) for y in ys]
    widths = [y.reshape(len(y), -1).shape[1] for y in ys]
    model = clone(regressor).fit(x_train, np.column_stack(ys), blocks=widths)
    predictions = model.predict(x_test).reshape(len(x_test), -1)
    return [_target(p) for p in np.split(predictions, np.cumsum(widths)[:-1], axis=1)]


def regression_rows(train: ReadoutSplit, test: ReadoutSplit,
                    encodings: dict[str, dict[str, np.ndarray]],
                    regressors: dict[str, BaseEstimator], standardize: bool = True) -> list[dict]:
    """One ``results.csv`` row (metric ``r2``) per readout task and regressor, and one of
    metric ``grid_accuracy`` for factors on a grid (``train.grids``); tasks in order, each
    with its regressors in order.

    ``encodings[split][inputs]`` holds the (N, D) encodings of each input set of each split.
    Encodings are standardised with statistics of the training split.
    """
    by_inputs = defaultdict(list)  # input set -> indices of its tasks with data on both sides
    for i, task in enumerate(train.tasks):
        if train.factors[task.factor].size and test.factors[task.factor].size:
            by_inputs[task.inputs].append(i)
    predictions = {}  # (task index, regressor) -> test prediction
    for inputs, tasks in progress(list(by_inputs.items()), f"{', '.join(regressors)} readouts "
                                  "of continuous factors, per input set"):
        x_train, x_test = encodings["train"][inputs], encodings["test"][inputs]
        if standardize:
            scaler = StandardScaler().fit(x_train)
            x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
        ys = [_target(train.factors[train.tasks[i].factor]) for i in tasks]
        for name, regressor in regressors.items():
            for i, prediction in zip(tasks, fit_predict(regressor, x_train, ys, x_test),
                                     strict=True):
                predictions[i, name] = prediction

    rows = []
    for i, task in enumerate(train.tasks):
        y_test = _target(test.factors[task.factor])
        for name in regressors:
            value, on_grid = float("nan"), float("nan")
            if (i, name) in predictions:
                value = r2_score(y_test, predictions[i, name])
                if task.factor in train.grids:
                    on_grid = grid_accuracy(predictions[i, name], y_test,
                                            train.grids[task.factor],
                                            train.periodic.get(task.factor))
            row = {"encoding": task.encoding, "factor": task.factor,
                   "kind": train.kinds[task.factor], "readout": name}
            rows.append({**row, "metric": "r2", "value": value})
            if task.factor in train.grids:
                rows.append({**row, "metric": "grid_accuracy", "value": on_grid})
    return rows
