"""RBF kernel ridge regression with (alpha, gamma) chosen by k-fold cross-validation, in torch.

:class:`KernelRidgeCV` gives what scikit-learn's ``GridSearchCV(KernelRidge(kernel="rbf"),
{"alpha": alphas, "gamma": gammas}, cv=k)`` gives (unshuffled k-fold, R2 scoring, the best
candidate refitted on all samples), for many targets at once: the columns of ``y`` come in
blocks (one factor each), and every block chooses its own (alpha, gamma), as a separate grid
search on that block's columns would. All blocks share each kernel matrix and each Cholesky
factorisation, so one fit costs ``len(alphas) * len(gammas) * k`` factorisations of the
fold's training kernel whatever the number of blocks, plus one per distinct chosen candidate.
Computed in float64 on ``device`` (a GPU makes readouts of tens of thousands of samples
practical; CPU is the default).

One Cholesky factorisation per alpha, not one eigendecomposition per (gamma, fold) shared
across the alphas: ``benchmarks/kernel_ridge.py --solvers`` measures an eigendecomposition
at several times the cost of four factorisations (its tridiagonal reduction runs at
matrix-vector speed), so it would pay only for grids of many more alphas.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin

from blockident.logs import log

PREDICT_CHUNK = 1 << 24  # kernel entries held at once while predicting (128 MiB in float64)


def sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (N, M) between the rows of ``a`` (N, D) and ``b`` (M, D),
    as scikit-learn computes them (``|a|^2 - 2 a.b + |b|^2``, clipped at 0)."""
    d = torch.addmm((a * a).sum(1)[:, None], a, b.T, alpha=-2).add_((b * b).sum(1))
    return d.clamp_(min=0)


def solve(kernel: torch.Tensor, alpha: float, y: torch.Tensor) -> torch.Tensor:
    """Dual coefficients (N, T) of ridge ``(kernel + alpha I) c = y`` for ``kernel`` (N, N)
    and ``y`` (N, T): by Cholesky; if that fails (singular), the least-squares solution,
    with a warning, as scikit-learn's KernelRidge falls back. ``kernel`` is left as it was."""
    diagonal = kernel.diagonal()
    kept = diagonal.clone()
    diagonal.add_(alpha)
    factor, info = torch.linalg.cholesky_ex(kernel)
    if not info.item():
        coef = torch.cholesky_solve(y, factor)
    else:
        warnings.warn("kernel ridge: singular kernel matrix; using the least-squares solution",
                      stacklevel=2)
        coef = torch.linalg.pinv(kernel, hermitian=True) @ y
    diagonal.copy_(kept)
    return coef


def r2_columns(y: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """R2 of every column (T,) of ``prediction`` against ``y`` (N, T), with scikit-learn's
    conventions for a constant column: 1 if predicted exactly, else 0."""
    residual = ((y - prediction) ** 2).sum(0)
    total = ((y - y.mean(0)) ** 2).sum(0)
    r2 = 1 - residual / torch.where(total == 0, 1, total)
    return torch.where(total == 0, (residual == 0).to(r2.dtype), r2)


def fold_bounds(n: int, k: int) -> list[tuple[int, int]]:
    """(start, stop) of each test fold of unshuffled k-fold on ``n`` samples, as scikit-learn's
    ``KFold(k)``: contiguous, the first ``n % k`` folds one sample larger."""
    if not 2 <= k <= n:
        raise ValueError(f"kernel ridge: {k}-fold cross-validation needs at least {k} samples "
                         f"and k >= 2; got {n} samples")
    sizes = np.full(k, n // k)
    sizes[:n % k] += 1
    stops = np.cumsum(sizes)
    return [(int(stop - size), int(stop)) for size, stop in zip(sizes, stops, strict=True)]


def cv_scores(distances: torch.Tensor, y: torch.Tensor, alphas, gammas, k: int) -> np.ndarray:
    """R2 of every column of ``y`` (N, T) on each held-out fold, for every candidate, from the
    squared distances (N, N) of the samples: (k folds, alphas, gammas, T)."""
    n, device = len(y), y.device
    scores = np.empty((k, len(alphas), len(gammas), y.shape[1]))
    for g, gamma in enumerate(gammas):
        kernel = torch.exp(-gamma * distances)
        for f, (start, stop) in enumerate(fold_bounds(n, k)):
            train = torch.cat([torch.arange(start, device=device),
                               torch.arange(stop, n, device=device)])
            k_train, k_test = kernel[train[:, None], train], kernel[start:stop, train]
            for a, alpha in enumerate(alphas):
                prediction = k_test @ solve(k_train, alpha, y[train])
                scores[f, a, g] = r2_columns(y[start:stop], prediction).cpu().numpy()
    return scores


class KernelRidgeCV(RegressorMixin, BaseEstimator):
    """RBF kernel ridge with (alpha, gamma) chosen by ``cv``-fold grid search (see the module).

    Fitting is cubic in the sample count, so by default at most ``max_samples`` training samples
    (a seeded random subset) are used; ``max_samples=None`` fits on all of them, as the original
    code does (``readout=regression_original`` also sets its gamma grid, ``logspace(-2, 2, 4)``).
    ``device``: where the kernels are built and solved (``cpu``, ``cuda``, ...).

    Fitted: ``best_params_`` (one dict of alpha and gamma per block), ``cv_scores_`` (blocks,
    alphas, gammas) the mean R2 over folds, ``X_fit_`` (n, D), ``dual_coef_`` (n, T) and
    ``gamma_`` (T,) of every column.
    """

    multi_factor = True  # fit(X, y, blocks=...) selects per block of columns (one factor each)

    def __init__(self, alphas=(1.0, 0.1, 0.01, 0.001), gammas=(0.01, 0.1, 1.0, 10.0),
                 cv: int = 3, max_samples: int | None = 1000, seed: int = 0,
                 device: str = "cpu"):
        self.alphas, self.gammas, self.cv = alphas, gammas, cv
        self.max_samples, self.seed, self.device = max_samples, seed, device

    def fit(self, X, y, blocks: list[int] | None = None) -> KernelRidgeCV:
        """``X`` (N, D), ``y`` (N,) or (N, T); ``blocks``: the widths of consecutive column
        blocks of ``y`` that choose their own (alpha, gamma) (default: one block)."""
        X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
        self.one_target_ = y.ndim == 1
        y = y.reshape(len(y), -1)
        blocks = [y.shape[1]] if blocks is None else list(blocks)
        if sum(blocks) != y.shape[1]:
            raise ValueError(f"blocks {blocks} do not add up to the {y.shape[1]} target columns")
        if self.max_samples is not None and len(X) > self.max_samples:
            idx = np.random.default_rng(self.seed).choice(len(X), self.max_samples, replace=False)
            X, y = X[idx], y[idx]
        alphas, gammas = [float(a) for a in self.alphas], [float(g) for g in self.gammas]
        log.info("kernel ridge: %d fits on %d samples (readout.regressors.kernel_ridge."
                 "max_samples caps them)", len(alphas) * len(gammas) * self.cv, len(X))
        started = time.monotonic()
        x = torch.as_tensor(X, device=self.device)
        targets = torch.as_tensor(y, device=self.device)
        distances = sq_distances(x, x).fill_diagonal_(0)
        scores = cv_scores(distances, targets, alphas, gammas, self.cv)
        edges = np.cumsum([0, *blocks])
        # as GridSearchCV: per fold the mean over the block's columns, then the mean over folds
        self.cv_scores_ = np.stack([scores[..., lo:hi].mean(-1).mean(0)
                                    for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
        flat = np.nan_to_num(self.cv_scores_.reshape(len(blocks), -1), nan=-np.inf)
        best = flat.argmax(1)  # the first of equals, in GridSearchCV's order (alpha, then gamma)
        self.best_params_ = [{"alpha": alphas[b // len(gammas)], "gamma": gammas[b % len(gammas)]}
                             for b in best]
        choice = np.repeat(best, blocks)  # every column's candidate
        coef = torch.empty_like(targets)
        for candidate in np.unique(choice):
            cols = np.flatnonzero(choice == candidate)
            a, g = divmod(int(candidate), len(gammas))
            kernel = torch.exp(-gammas[g] * distances)
            coef[:, cols] = solve(kernel, alphas[a], targets[:, cols])
        gamma = np.asarray(gammas)[choice % len(gammas)]
        self.X_fit_, self.dual_coef_, self.gamma_ = X, coef.cpu().numpy(), gamma
        log.info("kernel ridge: done in %.1f s", time.monotonic() - started)
        return self

    def predict(self, X) -> np.ndarray:
        """Predictions (M,) for a 1-D training target, else (M, T), of ``X`` (M, D)."""
        x = torch.as_tensor(np.asarray(X, np.float64), device=self.device)
        x_fit = torch.as_tensor(self.X_fit_, device=self.device)
        coef = torch.as_tensor(self.dual_coef_, device=self.device)
        out = torch.empty(len(x), coef.shape[1], dtype=torch.float64, device=self.device)
        rows = max(1, PREDICT_CHUNK // max(1, len(x_fit)))
        for start in range(0, len(x), rows):
            distances = sq_distances(x[start:start + rows], x_fit)
            for gamma in np.unique(self.gamma_):
                cols = torch.as_tensor(np.flatnonzero(self.gamma_ == gamma), device=self.device)
                out[start:start + rows, cols] = torch.exp(-gamma * distances) @ coef[:, cols]
        out = out.cpu().numpy()
        return out[:, 0] if self.one_target_ else out
