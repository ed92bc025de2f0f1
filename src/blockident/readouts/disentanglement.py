"""Disentanglement scores of encodings against ground-truth factors: MCC, DCI, grid accuracy.

Pure functions on arrays: they take encodings ``z`` (N, D) and factor values (N, F), never a
model. Factors are continuous or ordered grid values (categorical factors need a classifier).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Lasso
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler


def _as_2d(a) -> np.ndarray:
    """(N,) or (N, K) array-like -> float64 (N, K)."""
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _unit_columns(a: np.ndarray) -> np.ndarray:
    """(N, K) -> centred columns of unit norm; constant columns become zeros."""
    centred = a - a.mean(axis=0)
    norm = np.linalg.norm(centred, axis=0)
    keep = np.ptp(a, axis=0) > 0
    return np.divide(centred, norm, out=np.zeros_like(centred), where=keep & (norm > 0))


def correlations(z, factors, method: str = "pearson") -> np.ndarray:
    """(D, F) correlation of every encoding dimension of ``z`` (N, D) with every factor (N, F).

    ``method="spearman"`` correlates ranks (average ranks for ties). A constant column has
    correlation 0 with everything.
    """
    z, factors = _as_2d(z), _as_2d(factors)
    if method == "spearman":
        z, factors = rankdata(z, axis=0), rankdata(factors, axis=0)
    elif method != "pearson":
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    return np.clip(_unit_columns(z).T @ _unit_columns(factors), -1.0, 1.0)


def mcc(z, factors, method: str = "pearson") -> tuple[float, np.ndarray]:
    """Mean correlation coefficient of ``z`` (N, D) with ``factors`` (N, F).

    Dimensions are matched one-to-one to factors (Hungarian algorithm) to maximise the total
    absolute correlation; with D != F only min(D, F) pairs are matched. Returns the mean |r| over
    matched pairs (as in Hyvärinen & Morioka's MCC and Zimmermann et al. 2021's cl-ica) and the
    (min(D, F), 2) int array of matched (dimension, factor) pairs, ordered by factor.
    """
    r = np.abs(correlations(z, factors, method))
    dims, facs = linear_sum_assignment(r, maximize=True)
    order = np.argsort(facs)
    dims, facs = dims[order], facs[order]
    return float(r[dims, facs].mean()), np.stack([dims, facs], axis=1)


def _one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """1 - entropy (log base ``base``) of each column of the distributions ``p`` (K, M) -> (M,).

    With ``base`` 1 there is only one outcome, so the entropy is 0.
    """
    if base == 1:
        return np.ones(p.shape[1])
    plogp = p * np.log(np.where(p > 0, p, 1.0))
    return 1.0 + plogp.sum(axis=0) / np.log(base)


def dci_scores(importances) -> tuple[float, float]:
    """(disentanglement, completeness) of an importance matrix R (D, F), Eastwood & Williams 2018.

    Disentanglement: D_i = 1 - H_F(P_i.) with P_ij = R_ij / sum_k R_ik, averaged over dimensions
    weighted by rho_i = sum_j R_ij / sum R. Completeness: C_j = 1 - H_D(P~_.j) with
    P~_ij = R_ij / sum_k R_kj, averaged over factors (disentanglement_lib weights C_j by the
    column's share of sum R, the same when every column sums to one, as tree importances do).
    R must be nonnegative. A dimension that no factor uses has weight 0; a factor that no
    dimension explains has C_j = 0. An all-zero R scores (0, 0).
    """
    r = np.asarray(importances, dtype=np.float64)
    if r.ndim != 2 or np.any(r < 0):
        raise ValueError("importances must be a nonnegative (D, F) matrix")
    total = r.sum()
    if total == 0:
        return 0.0, 0.0
    n_dims, n_factors = r.shape
    rows, cols = r.sum(axis=1, keepdims=True), r.sum(axis=0, keepdims=True)
    p_rows = np.divide(r, rows, out=np.zeros_like(r), where=rows > 0)
    p_cols = np.divide(r, cols, out=np.zeros_like(r), where=cols > 0)
    per_dim = _one_minus_entropy(p_rows.T, n_factors)
    per_factor = np.where(cols[0] > 0, _one_minus_entropy(p_cols, n_dims), 0.0)
    return float(per_dim @ (rows[:, 0] / total)), float(per_factor.mean())


def dci(z_train, factors_train, z_test, factors_test, importance: str = "gbt",
        n_estimators: int = 50, alpha: float = 0.01, max_samples: int | None = 2000,
        seed: int = 0) -> dict:
    """DCI scores (Eastwood & Williams, ICLR 2018) of encodings ``z`` (N, D) for factors (N, F).

    One regressor per factor predicts it from the encodings (both standardised with training
    statistics): ``importance="gbt"`` fits ``GradientBoostingRegressor(n_estimators)`` and takes
    its ``feature_importances_`` (disentanglement_lib's choice, there classifiers of 100
    trees); ``"lasso"`` fits ``Lasso(alpha)`` and takes |coefficients|. Fits use a seeded random
    subset of ``max_samples`` training samples (``None``: all), since boosting is slow.

    Returns ``disentanglement`` and ``completeness`` (:func:`dci_scores`), ``informativeness``:
    the mean over factors of the regressors' test R² (higher is better; Eastwood & Williams
    report the prediction error, disentanglement_lib the accuracy of classifiers on discretised
    factors), and ``importances``: R (D, F).
    """
    if importance not in ("gbt", "lasso"):
        raise ValueError(f"importance must be 'gbt' or 'lasso', got {importance!r}")
    z_train, factors_train = _as_2d(z_train), _as_2d(factors_train)
    z_test, factors_test = _as_2d(z_test), _as_2d(factors_test)
    if max_samples is not None and len(z_train) > max_samples:
        idx = np.random.default_rng(seed).choice(len(z_train), max_samples, replace=False)
        z_train, factors_train = z_train[idx], factors_train[idx]
    scaler = StandardScaler().fit(z_train)
    z_train, z_test = scaler.transform(z_train), scaler.transform(z_test)
    y_scaler = StandardScaler().fit(factors_train)
    y_train, y_test = y_scaler.transform(factors_train), y_scaler.transform(factors_test)

    importances = np.zeros((z_train.shape[1], y_train.shape[1]))
    r2 = np.zeros(y_train.shape[1])
    for j in range(y_train.shape[1]):
        if importance == "gbt":
            model = GradientBoostingRegressor(n_estimators=n_estimators, random_state=seed)
            importances[:, j] = model.fit(z_train, y_train[:, j]).feature_importances_
        else:
            model = Lasso(alpha=alpha).fit(z_train, y_train[:, j])
            importances[:, j] = np.abs(model.coef_)
        r2[j] = r2_score(y_test[:, j], model.predict(z_test))
    disentanglement, completeness = dci_scores(importances)
    return {"disentanglement": disentanglement, "completeness": completeness,
            "informativeness": float(r2.mean()), "importances": importances}


def grid_accuracy(prediction, truth, grid, periodic: float | None = None) -> float:
    """Fraction of predictions closer to their true grid value than to either neighbouring one.

    ``prediction`` and ``truth`` have the same shape (any); every truth value is on ``grid``
    (G,), strictly increasing. A prediction is accurate strictly inside the midpoints to the
    neighbouring grid values (exactly midway is not accurate); beyond the first and last grid
    values the interval is open, unless ``periodic`` gives the period: then predictions,
    truths and grid values are taken modulo the period (grid values one period apart, such as
    0 and 2 pi, are one value) and the first and last grid values are neighbours.
    """
    prediction = np.asarray(prediction, dtype=np.float64).ravel()
    truth = np.asarray(truth, dtype=np.float64).ravel()
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or np.any(np.diff(grid) <= 0):
        raise ValueError("grid must be strictly increasing values (G,)")
    if periodic is None:
        ends = [-np.inf], [np.inf]
    else:
        grid = np.unique(np.mod(grid, periodic))
        grid = grid[~np.isclose(grid, grid[0] + periodic)]
        truth = np.mod(truth, periodic)
        ends = [grid[-1] - periodic], [grid[0] + periodic]
    padded = np.concatenate([ends[0], grid, ends[1]])
    index = np.abs(truth[:, None] - padded[None, :]).argmin(axis=1)
    if periodic is not None:
        index = (index - 1) % len(grid) + 1
    offset = prediction - padded[index]
    off_grid = truth - padded[index]
    if periodic is not None:
        offset = np.mod(offset + periodic / 2, periodic) - periodic / 2
        off_grid = np.mod(off_grid + periodic / 2, periodic) - periodic / 2
    if not np.allclose(off_grid, 0.0, atol=1e-8):
        raise ValueError("every truth value must be on the grid")
    below = (padded[index] - padded[index - 1]) / 2
    above = (padded[index + 1] - padded[index]) / 2
    return float(np.mean((-below < offset) & (offset < above)))
