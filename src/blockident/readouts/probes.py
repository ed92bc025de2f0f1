"""Class readouts of frozen features: a linear probe and few-shot prototypes.

Both take features (N, D) and integer class labels (N,) and return ``{metric: value}``; the
readouts of :mod:`.evaluate` apply them (``readout.probes``) to every categorical factor.

- :class:`LinearProbe`: multinomial logistic regression fitted by full-batch L-BFGS in torch
  (on the GPU when there is one) to standardised features; the L2 penalty ``lam`` (objective:
  mean cross-entropy + lam / 2 * ||W||^2) is swept coarse-to-fine on a validation split
  stratified by class, then the probe is refitted on train + validation and scored on test:
  ``top1`` and ``mean_per_class`` accuracy. ``solver="sklearn"`` fits scikit-learn's
  LogisticRegression (C = 1 / (lam * n), the same objective) instead.
- :class:`FewShot`: N-way K-shot episodes drawn (seeded) from the test features; features are
  centred on the episode's support mean and L2-normalised, each query goes to the nearest class
  prototype (mean support feature): ``top1`` (mean episode accuracy) and ``accuracy_ci95``
  (half-width of its 95 % confidence interval).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from blockident.errors import ConfigError


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, lam: float, max_iter: int = 200,
                 init: tuple[torch.Tensor, torch.Tensor] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(W (D, C), b (C,)) minimising mean cross-entropy + lam / 2 * ||W||^2 on x (N, D), y (N,)."""
    w = torch.zeros(x.shape[1], classes, dtype=x.dtype, device=x.device)
    b = torch.zeros(classes, dtype=x.dtype, device=x.device)
    if init is not None:
        w, b = init[0].clone(), init[1].clone()
    w.requires_grad_(True)
    b.requires_grad_(True)
    optimizer = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-5, tolerance_change=1e-9,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + 0.5 * lam * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach(), b.detach()


def _accuracies(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    per_class = [np.mean(pred[y == c] == c) for c in np.unique(y)]
    return {"top1": float(np.mean(pred == y)), "mean_per_class": float(np.mean(per_class))}


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: ``fraction`` of every class (at least one, never all of a
    class with two or more samples) to validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        val.append(members[:n])
        train.append(members[n:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


class LinearProbe:
    """See the module docstring. ``coarse``: log10 of the penalties tried first; ``fine``:
    log10 offsets tried around the best coarse one; ``val_fraction`` of each class validates."""

    def __init__(self, coarse: tuple[float, ...] = (-6, -5, -4, -3, -2, -1, 0),
                 fine: tuple[float, ...] = (-0.5, -0.25, 0.25, 0.5), val_fraction: float = 0.2,
                 max_iter: int = 100, solver: str = "lbfgs", seed: int = 0):
        if solver not in ("lbfgs", "sklearn"):
            raise ConfigError(f"solver must be 'lbfgs' or 'sklearn', got {solver!r}")
        self.coarse, self.fine, self.val_fraction = list(coarse), list(fine), val_fraction
        self.max_iter, self.solver, self.seed = max_iter, solver, seed

    def fit_predict(self, x: np.ndarray, y: np.ndarray, lam: float, x_test: np.ndarray
                    ) -> np.ndarray:
        """Labels of ``x_test`` by the probe fitted on (``x``, ``y``) with penalty ``lam``."""
        classes, y_index = np.unique(y, return_inverse=True)
        mean, std = x.mean(0), x.std(0) + 1e-6
        x, x_test = (x - mean) / std, (x_test - mean) / std
        if self.solver == "sklearn":
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(C=1 / (lam * len(x)), max_iter=5000, tol=1e-8)
            return classes[model.fit(x, y_index).predict(x_test)]
        device = _device()
        xt = torch.as_tensor(x, dtype=torch.float64, device=device)
        w, b = fit_logistic(xt, torch.as_tensor(y_index, device=device), len(classes), lam,
                            self.max_iter)
        scores = torch.as_tensor(x_test, dtype=torch.float64, device=device) @ w + b
        return classes[scores.argmax(1).cpu().numpy()]

    def select(self, x: np.ndarray, y: np.ndarray) -> float:
        """The penalty with the best validation top-1: coarse grid, then around its best."""
        train, val = stratified_split(y, self.val_fraction, self.seed)
        scores: dict[float, float] = {}

        def sweep(exponents):
            for e in exponents:
                if e not in scores:
                    pred = self.fit_predict(x[train], y[train], 10.0 ** e, x[val])
                    scores[e] = float(np.mean(pred == y[val]))
            return max(scores, key=lambda e: (scores[e], e))  # ties: the stronger penalty

        best = sweep(self.coarse)
        return 10.0 ** sweep([best + d for d in self.fine])

    def __call__(self, x_train, y_train, x_test, y_test) -> dict[str, float]:
        x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
        lam = self.select(x_train, y_train)
        return _accuracies(self.fit_predict(x_train, y_train, lam, x_test), np.asarray(y_test))


class FewShot:
    """``ways``-way ``shots``-shot episodes with ``queries`` queries per class (see the module
    docstring); classes with fewer than shots + queries test samples are not drawn, and with
    fewer than ``ways`` such classes the scores are NaN."""

    def __init__(self, ways: int = 5, shots: int = 5, queries: int = 15, episodes: int = 1000,
                 seed: int = 0):
        self.ways, self.shots, self.queries = ways, shots, queries
        self.episodes, self.seed = episodes, seed

    def episode_indices(self, y: np.ndarray) -> np.ndarray | None:
        """(episodes, ways, shots + queries) sample indices, or None without enough classes."""
        per = self.shots + self.queries
        members = {c: np.flatnonzero(y == c) for c in np.unique(y)}
        eligible = [c for c, m in members.items() if len(m) >= per]
        if len(eligible) < self.ways:
            return None
        rng = np.random.default_rng(self.seed)
        out = np.empty((self.episodes, self.ways, per), np.int64)
        for e in range(self.episodes):
            for w, c in enumerate(rng.choice(eligible, self.ways, replace=False)):
                out[e, w] = rng.choice(members[c], per, replace=False)
        return out

    def __call__(self, x_train, y_train, x_test, y_test) -> dict[str, float]:
        index = self.episode_indices(np.asarray(y_test))
        if index is None:
            return {"top1": float("nan"), "accuracy_ci95": float("nan")}
        x = torch.as_tensor(np.asarray(x_test), dtype=torch.float32, device=_device())
        accuracy = []
        for chunk in torch.as_tensor(index).split(100):
            feats = x[chunk.to(x.device)]  # (E, ways, shots + queries, D)
            support, query = feats[:, :, :self.shots], feats[:, :, self.shots:]
            centre = support.mean(dim=(1, 2), keepdim=True)
            support = F.normalize(support - centre, dim=-1)
            query = F.normalize(query - centre, dim=-1)
            prototypes = support.mean(2)  # (E, ways, D)
            distance = torch.cdist(query.flatten(1, 2), prototypes)  # (E, ways * queries, ways)
            truth = torch.arange(self.ways, device=x.device).repeat_interleave(self.queries)
            accuracy.append((distance.argmin(-1) == truth).float().mean(1).cpu())
        accuracy = torch.cat(accuracy).numpy()
        half = 1.96 * accuracy.std(ddof=1) / np.sqrt(len(accuracy)) if len(accuracy) > 1 else 0
        return {"top1": float(accuracy.mean()), "accuracy_ci95": float(half)}
