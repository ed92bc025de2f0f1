"""Regression readouts: predict continuous factors from frozen encodings, scored by R2.

Readouts are scikit-learn regressors chosen by config (``readout.regressors``); each is cloned
per (encoding, factor), fitted on the readout-training split and scored on the test split.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from blockident.data.base import ReadoutSplit
from blockident.logs import log, progress
from blockident.readouts.disentanglement import grid_accuracy


class KernelRidgeCV(RegressorMixin, BaseEstimator):
    """RBF kernel ridge with (alpha, gamma) chosen by ``cv``-fold grid search.

    Fitting is cubic in the sample count, so by default at most ``max_samples`` training samples
    (a seeded random subset) are used; ``max_samples=None`` fits on all of them, as the original
    code does (``readout=regression_original`` also sets its gamma grid, ``logspace(-2, 2, 4)``).
    """

    def __init__(self, alphas=(1.0, 0.1, 0.01, 0.001), gammas=(0.01, 0.1, 1.0, 10.0),
                 cv: int = 3, max_samples: int | None = 1000, seed: int = 0,
                 n_jobs: int | None = None):
        self.alphas, self.gammas, self.cv = alphas, gammas, cv
        self.max_samples, self.seed, self.n_jobs = max_samples, seed, n_jobs

    def fit(self, X, y):
        if self.max_samples is not None and len(X) > self.max_samples:
            idx = np.random.default_rng(self.seed).choice(len(X), self.max_samples, replace=False)
            X, y = X[idx], y[idx]
        grid = {"alpha": list(self.alphas), "gamma": list(self.gammas)}
        self.search_ = GridSearchCV(KernelRidge(kernel="rbf"), grid, cv=self.cv, n_jobs=self.n_jobs)
        fits = len(self.alphas) * len(self.gammas) * self.cv
        started = time.monotonic()  # one fit can take minutes: say what runs, and how long it took
        log.info("kernel ridge: %d fits on %d samples (readout.regressors.kernel_ridge."
                 "max_samples caps them)", fits, len(X))
        self.search_.fit(X, y)
        log.info("kernel ridge: done in %.1f s", time.monotonic() - started)
        return self

    def predict(self, X):
        return self.search_.predict(X)


def _target(y: np.ndarray) -> np.ndarray:
    """Factor values as scikit-learn expects them: (N,) for one dimension, else (N, d)."""
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y


def regression_rows(train: ReadoutSplit, test: ReadoutSplit,
                    encodings: dict[str, dict[str, np.ndarray]],
                    regressors: dict[str, BaseEstimator], standardize: bool = True) -> list[dict]:
    """One ``results.csv`` row (metric ``r2``) per readout task and regressor, and one of
    metric ``grid_accuracy`` for factors on a grid (``train.grids``).

    ``encodings[split][inputs]`` holds the (N, D) encodings of each input set of each split.
    Encodings are standardised with statistics of the training split.
    """
    rows = []
    tasks = [(t, name) for t in train.tasks for name in regressors]
    for task, name in progress(tasks, f"{', '.join(regressors)} readouts of continuous factors"):
        x_train, x_test = encodings["train"][task.inputs], encodings["test"][task.inputs]
        if standardize:
            scaler = StandardScaler().fit(x_train)
            x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
        y_train, y_test = _target(train.factors[task.factor]), _target(test.factors[task.factor])
        value, on_grid = float("nan"), float("nan")
        if y_train.size and y_test.size:
            model = clone(regressors[name]).fit(x_train, y_train)
            prediction = model.predict(x_test)
            value = r2_score(y_test, prediction)
            if task.factor in train.grids:
                on_grid = grid_accuracy(prediction, y_test, train.grids[task.factor],
                                        train.periodic.get(task.factor))
        row = {"encoding": task.encoding, "factor": task.factor,
               "kind": train.kinds[task.factor], "readout": name}
        rows.append({**row, "metric": "r2", "value": value})
        if task.factor in train.grids:
            rows.append({**row, "metric": "grid_accuracy", "value": on_grid})
    return rows
