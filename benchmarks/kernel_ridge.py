"""Time the kernel-ridge readouts of the numerical experiment: torch (now) against scikit-learn.

Setting: the numerical experiment's readout draws (``NumericalData``, latents 5 + 5 + 5, 5,000
train / 5,000 test by default) and its 12 readout tasks per encoder (``c``, ``s``, ``s~``,
``m1``, ``m2`` from each view, ``c'`` from each content-permuted view; every factor 5-d), for
three stand-in encoders, as an evaluation with ``readout.baseline=true`` and one control
encoder reads out: ``trained`` (the content latents plus noise, 5-d), ``untrained`` (a random
tanh layer of the view, 5-d) and ``oracle`` (the true latents with the view, 20-d). That is
36 tasks in 12 input sets. Both paths run through ``regression_rows`` with the same
``max_samples`` subset: ``new`` is :class:`~blockident.readouts.kernel_ridge.KernelRidgeCV`
(one fit per input set), ``old`` the previous readout (a seeded subset, then scikit-learn's
``GridSearchCV(KernelRidge(kernel="rbf"))`` cloned per task). ``--old-tasks k`` times the old
path on the first k tasks only and scales its time to all of them (said in the output); ``0``
skips it.
``--solvers`` times instead, at the fold's training size, one eigendecomposition (shared by the
alphas) against one Cholesky factorisation per alpha, and the time the grid's factorisations
alone take for all input sets (a floor under any fit of the whole grid on this machine).

    .venv/bin/python benchmarks/kernel_ridge.py [--n 5000] [--max-samples 5000]
        [--old-tasks 36] [--solvers] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV

from blockident.data.numerical import NumericalData
from blockident.readouts.kernel_ridge import KernelRidgeCV, sq_distances
from blockident.readouts.regression import regression_rows

ALPHAS, GAMMAS = (1.0, 0.1, 0.01, 0.001), (0.01, 0.1, 1.0, 10.0)


class SklearnKernelRidgeCV(RegressorMixin, BaseEstimator):
    """The previous readout: a seeded subset of ``max_samples``, then GridSearchCV."""

    def __init__(self, max_samples: int | None = None, seed: int = 0):
        self.max_samples, self.seed = max_samples, seed

    def fit(self, X, y):
        if self.max_samples is not None and len(X) > self.max_samples:
            idx = np.random.default_rng(self.seed).choice(len(X), self.max_samples, replace=False)
            X, y = X[idx], y[idx]
        grid = {"alpha": list(ALPHAS), "gamma": list(GAMMAS)}
        self.search_ = GridSearchCV(KernelRidge(kernel="rbf"), grid, cv=3).fit(X, y)
        return self

    def predict(self, X):
        return self.search_.predict(X)


def setting(n: int):
    """Readout splits of the numerical experiment and 36 tasks over three stand-in encoders."""
    splits = NumericalData(readout_train=n, readout_test=n).readout_data()
    rng = np.random.default_rng(0)
    layer = rng.normal(size=(15, 5)) / np.sqrt(15)
    stand_ins = {
        "trained": lambda split, name: split.oracle[name][:, :5] + 0.1 * rng.normal(size=(
            len(split.oracle[name]), 5)),
        "untrained": lambda split, name: np.tanh(split.inputs[name][1].numpy() @ layer),
        "oracle": lambda split, name: split.oracle[name]}
    tasks = [replace(t, encoding=f"{e}:{t.encoding}", inputs=f"{e}:{t.inputs}")
             for e in stand_ins for t in splits["train"].tasks]
    encodings = {s: {f"{e}:{name}": np.asarray(f(split, name), np.float64)
                     for e, f in stand_ins.items() for name in split.inputs}
                 for s, split in splits.items()}
    return replace(splits["train"], tasks=tasks), splits["test"], encodings


def timed(train, test, encodings, regressor) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    rows = regression_rows(train, test, encodings, {"kernel_ridge": regressor})
    return time.perf_counter() - started, rows


def solvers(n: int, device: str, fits: int) -> None:
    """One eigendecomposition against one Cholesky factorisation per alpha, (n, n) RBF kernel,
    and ``fits`` (input sets x gammas x folds) times the latter."""
    x = torch.randn(n, 5, dtype=torch.float64, device=device)
    kernel = torch.exp(-0.1 * sq_distances(x, x))
    eye = torch.eye(n, dtype=torch.float64, device=device)
    started = time.perf_counter()
    torch.linalg.eigh(kernel)
    eig = time.perf_counter() - started
    started = time.perf_counter()
    for alpha in ALPHAS:
        torch.linalg.cholesky(kernel + alpha * eye)
    chol = time.perf_counter() - started
    print(f"solvers at the fold's training size {n}: eigendecomposition {eig:.2f} s, "
          f"{len(ALPHAS)} Cholesky factorisations {chol:.2f} s (ratio {eig / chol:.1f}); "
          f"the factorisations of {fits} x {len(ALPHAS)} grid fits alone: {fits * chol:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="train and test samples each")
    parser.add_argument("--max-samples", type=int, default=None,
                        help="training subset of both paths (default: all)")
    parser.add_argument("--old-tasks", type=int, default=None,
                        help="time the old path on the first k tasks and scale (default: all; "
                             "0: not at all)")
    parser.add_argument("--solvers", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    train, test, encodings = setting(args.n)
    fit_size = min(args.n, args.max_samples or args.n)
    print(f"{args.n} train / {args.n} test, fitted on {fit_size}, {len(train.tasks)} tasks in "
          f"{len({t.inputs for t in train.tasks})} input sets, {torch.get_num_threads()} threads")
    if args.solvers:
        fits = len({t.inputs for t in train.tasks}) * len(GAMMAS) * 3
        solvers(fit_size - fit_size // 3, args.device, fits)
        return

    new, rows = timed(train, test, encodings, KernelRidgeCV(max_samples=args.max_samples,
                                                           device=args.device))
    print(f"new (torch, {args.device}): {new:.2f} s for {len(train.tasks)} tasks")
    k = len(train.tasks) if args.old_tasks is None else min(args.old_tasks, len(train.tasks))
    if k == 0:  # --old-tasks 0: the new path alone (scikit-learn at a GPU's sizes takes hours)
        return
    old, old_rows = timed(replace(train, tasks=train.tasks[:k]), test, encodings,
                          SklearnKernelRidgeCV(max_samples=args.max_samples))
    scaled = old * len(train.tasks) / k
    note = "" if k == len(train.tasks) else f" ({old:.2f} s for the first {k}, scaled)"
    print(f"old (scikit-learn, per task): {scaled:.2f} s for {len(train.tasks)} tasks{note}")
    gap = max(abs(a["value"] - b["value"]) for a, b in zip(rows, old_rows, strict=False))
    print(f"largest R2 difference, new - old, over the {k} tasks both ran: {gap:.1e}")
    print(f"ratio old / new: {scaled / new:.1f}")


if __name__ == "__main__":
    main()
