"""Classification readouts: predict binary category presence (multi-label) from frozen encodings.

Readouts, chosen by name: ``mlp`` (:class:`MultiLabelMLP`, all categories in one network),
``knn`` (the share of positives among the ``k`` nearest training encodings, all categories from
one neighbour search; present where that share exceeds the training prevalence), ``logreg``,
``logreg_cv`` (its regularisation C chosen by 3-fold cross-validation over 1e-4..1e2),
``svc`` and ``gp`` (scikit-learn, one model per category). Each category gives one
``results.csv`` row per metric of :data:`METRICS`; undefined metrics are NaN (empty in CSV).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.gaussian_process import GaussianProcessClassifier
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn

from blockident.errors import ConfigError
from blockident.logs import progress
from blockident.readouts.metrics import ranking_metrics

METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc",
           "positives")
READOUTS = ("mlp", "knn", "logreg", "logreg_cv", "svc", "gp")
KNN_NEIGHBOURS = 20


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-column balanced accuracy of (N, C) 0/1 arrays: (C,), NaN where a class is absent."""
    pos, neg = y_true.sum(0), (1 - y_true).sum(0)
    tp, tn = (y_true * y_pred).sum(0), ((1 - y_true) * (1 - y_pred)).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 0.5 * (tp / pos + tn / neg)
    return np.where((pos > 0) & (neg > 0), out, np.nan)


class MultiLabelMLP:
    """One-hidden-layer multi-label classifier of all categories at once (plain torch).

    Loss: BCE with per-category ``pos_weight = n_neg / n_pos`` (of the fitting part), so rare
    categories are not ignored. Adam on minibatches; a seeded ``val_fraction`` of the training
    data is held out and the weights of the epoch with the best mean balanced accuracy over
    categories (those with both classes in the validation part) are kept; training stops after
    ``patience`` epochs without improvement or at ``max_epochs``. Deterministic for ``seed``.
    """

    def __init__(self, hidden: int = 100, lr: float = 1e-3, weight_decay: float = 0.0,
                 batch_size: int = 256, max_epochs: int = 200, patience: int = 10,
                 val_fraction: float = 0.1, seed: int = 0):
        self.hidden, self.lr, self.weight_decay = hidden, lr, weight_decay
        self.batch_size, self.max_epochs, self.patience = batch_size, max_epochs, patience
        self.val_fraction, self.seed = val_fraction, seed

    def fit(self, X: np.ndarray, Y: np.ndarray) -> MultiLabelMLP:
        """``X`` (N, D) features, ``Y`` (N, C) 0/1 labels (a (N,) vector counts as C = 1)."""
        X = np.asarray(X, dtype=np.float32)
        Y = np.asarray(Y, dtype=np.float32).reshape(len(X), -1)
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(len(X))
        n_val = int(round(self.val_fraction * len(X))) if len(X) > 1 else 0
        val, fit = perm[:n_val], perm[n_val:]
        x_fit, y_fit = torch.from_numpy(X[fit]), torch.from_numpy(Y[fit])
        x_val, y_val = torch.from_numpy(X[val]), Y[val]

        n_pos = y_fit.sum(0)
        n_neg = len(y_fit) - n_pos
        pos_weight = torch.where(n_pos > 0, n_neg / n_pos.clamp(min=1), torch.ones_like(n_pos))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net_ = nn.Sequential(nn.Linear(X.shape[1], self.hidden), nn.ReLU(),
                                      nn.Linear(self.hidden, Y.shape[1]))
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr,
                               weight_decay=self.weight_decay)
        gen = torch.Generator().manual_seed(self.seed)

        best, best_state, stale = -np.inf, copy.deepcopy(self.net_.state_dict()), 0
        self.n_epochs_ = 0
        for _ in range(self.max_epochs):
            self.net_.train()
            order = torch.randperm(len(x_fit), generator=gen)
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                opt.zero_grad()
                loss_fn(self.net_(x_fit[idx]), y_fit[idx]).backward()
                opt.step()
            self.n_epochs_ += 1
            if n_val == 0:
                continue
            self.net_.eval()
            with torch.no_grad():
                pred = (self.net_(x_val) > 0).numpy().astype(np.float32)
            bal = _balanced_accuracy(y_val, pred)
            score = float(np.nanmean(bal)) if np.isfinite(bal).any() else -np.inf
            if score > best:
                best, best_state, stale = score, copy.deepcopy(self.net_.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if n_val and best > -np.inf:
            self.net_.load_state_dict(best_state)
        self.best_val_balanced_accuracy_ = best
        self.net_.eval()
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits (N, C)."""
        with torch.no_grad():
            return self.net_(torch.as_tensor(np.asarray(X, dtype=np.float32))).numpy()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of presence (N, C)."""
        return 1.0 / (1.0 + np.exp(-self.decision_function(X).astype(np.float64)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """0/1 predictions (N, C), presence where the probability exceeds 0.5."""
        return (self.decision_function(X) > 0).astype(np.int64)


def category_table(y_true: np.ndarray, y_score: np.ndarray, y_pred: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """Metrics of :data:`METRICS` of every binary category at once: (N, C) labels, scores and
    0/1 predictions (an (N,) vector is one category) -> metric -> (C,) values.

    Undefined values are NaN: balanced accuracy and ROC-AUC without both classes in
    ``y_true``; recall and PR-AUC without positives; precision without predicted positives;
    F1 (``2tp / (2tp + fp + fn)``) without positives and predicted positives; everything but
    ``positives`` for an empty set. ROC-AUC and PR-AUC (average precision) are scikit-learn's
    (:mod:`blockident.readouts.metrics`).
    """
    y_true = np.asarray(y_true).astype(bool)
    y_true = y_true if y_true.ndim == 2 else y_true.reshape(-1, 1)
    y_pred = np.asarray(y_pred).astype(bool).reshape(y_true.shape)
    n, pos = len(y_true), y_true.sum(0)
    neg = n - pos
    tp = (y_true & y_pred).sum(0)
    fp = (~y_true & y_pred).sum(0)
    fn, tn = pos - tp, neg - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {
            "accuracy": ((tp + tn) / n, n > 0),
            "balanced_accuracy": (0.5 * (tp / pos + tn / neg), (pos > 0) & (neg > 0)),
            "precision": (tp / (tp + fp), tp + fp > 0),
            "recall": (tp / pos, pos > 0),
            "f1": (2 * tp / (2 * tp + fp + fn), 2 * tp + fp + fn > 0),
        }
    table = {m: np.where(defined, value, np.nan) for m, (value, defined) in values.items()}
    ranking = ranking_metrics(y_true, y_score)
    return table | {"roc_auc": ranking["roc_auc"], "pr_auc": ranking["average_precision"],
                    "positives": pos}


def category_metrics(y_true: np.ndarray, y_score: np.ndarray, y_pred: np.ndarray) -> dict:
    """:func:`category_table` of one category from (N,) labels, scores and 0/1 predictions:
    metric -> float (``positives``: int)."""
    table = category_table(np.ravel(y_true), np.ravel(y_score), np.ravel(y_pred))
    return {m: int(v[0]) if m == "positives" else float(v[0]) for m, v in table.items()}


def _sklearn_readout(name: str, seed: int):
    if name == "logreg":
        return LogisticRegression(class_weight="balanced", max_iter=1000)
    if name == "logreg_cv":
        return LogisticRegressionCV(Cs=np.logspace(-4, 2, 7), cv=3, class_weight="balanced",
                                    scoring="neg_log_loss", l1_ratios=(0.0,), max_iter=1000,
                                    use_legacy_attributes=False, random_state=seed)
    if name == "svc":
        return LinearSVC(class_weight="balanced", max_iter=5000, random_state=seed)
    if name == "gp":
        return GaussianProcessClassifier(random_state=seed)
    raise ConfigError(f"unknown classification readout {name!r}; choose from {READOUTS}")


def _fit_sklearn(name: str, x_train, y_train, x_test, seed: int, max_gp_samples: int):
    """Fit one category; returns (scores (N_test,), predictions (N_test,)) or None if it can't."""
    if name == "gp" and len(x_train) > max_gp_samples:
        idx = np.random.default_rng(seed).choice(len(x_train), max_gp_samples, replace=False)
        x_train, y_train = x_train[idx], y_train[idx]
    if len(np.unique(y_train)) < 2:
        return None
    model = _sklearn_readout(name, seed).fit(x_train, y_train)
    if name == "gp":
        score = model.predict_proba(x_test)[:, 1]
        return score, (score > 0.5).astype(np.int64)
    score = model.decision_function(x_test)
    return score, (score > 0).astype(np.int64)


def classification_rows(x_train: np.ndarray, Y_train: np.ndarray, x_test: np.ndarray,
                        Y_test: np.ndarray, categories: list[str], kinds: list[str],
                        encoding: str, readout: str, standardize: bool = True, seed: int = 0,
                        mlp_kwargs: dict | None = None, max_gp_samples: int = 1000,
                        ) -> tuple[list[dict], np.ndarray]:
    """``results.csv`` rows of one encoding and readout, and the raw test scores.

    ``x_*`` (N, D) encodings, ``Y_*`` (N, C) 0/1 presence of ``categories`` (C names, with
    ``kinds`` their roles, e.g. ``content``/``style``). Inputs are standardised with training
    statistics. Categories without a positive or a negative training example are not fitted:
    their scores are NaN and their metrics NaN except ``positives`` (the test count).
    Returns (rows: one per category and metric of :data:`METRICS`, scores (N_test, C): logits
    for ``mlp``, decision values for ``logreg``/``svc``, probabilities for ``gp``).
    """
    if readout not in READOUTS:
        raise ConfigError(f"unknown classification readout {readout!r}; choose from {READOUTS}")
    Y_train = np.asarray(Y_train).reshape(len(x_train), -1).astype(np.int64)
    Y_test = np.asarray(Y_test).reshape(len(x_test), -1).astype(np.int64)
    if not Y_train.shape[1] == Y_test.shape[1] == len(categories) == len(kinds):
        raise ValueError("Y_train, Y_test, categories and kinds disagree on the category count")
    x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    if standardize:
        scaler = StandardScaler().fit(x_train)
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

    n_pos = Y_train.sum(0)
    fitted = np.flatnonzero((n_pos > 0) & (n_pos < len(Y_train)))
    scores = np.full(Y_test.shape, np.nan)
    preds = np.zeros(Y_test.shape, dtype=np.int64)
    if readout == "mlp" and len(fitted):
        model = MultiLabelMLP(seed=seed, **(mlp_kwargs or {})).fit(x_train, Y_train[:, fitted])
        scores[:, fitted] = model.decision_function(x_test)
        preds[:, fitted] = scores[:, fitted] > 0
    elif readout == "knn" and len(fitted):
        k = min(KNN_NEIGHBOURS, len(x_train))
        near = NearestNeighbors(n_neighbors=k).fit(x_train).kneighbors(x_test, k, False)
        scores[:, fitted] = Y_train[near][:, :, fitted].mean(1)
        preds[:, fitted] = scores[:, fitted] > Y_train[:, fitted].mean(0)
    elif readout not in ("mlp", "knn"):
        for c in progress(list(fitted), f"{readout} readouts of {encoding}, per category"):
            out = _fit_sklearn(readout, x_train, Y_train[:, c], x_test, seed, max_gp_samples)
            if out is None:
                fitted = fitted[fitted != c]
                continue
            scores[:, c], preds[:, c] = out

    values = {m: np.full(len(categories), np.nan) for m in METRICS}
    for m, v in category_table(Y_test[:, fitted], scores[:, fitted], preds[:, fitted]).items():
        values[m][fitted] = v
    values["positives"] = Y_test.sum(0)
    rows = [{"encoding": encoding, "factor": category, "kind": kind, "readout": readout,
             "metric": m, "value": int(values[m][c]) if m == "positives" else float(values[m][c])}
            for c, (category, kind) in enumerate(zip(categories, kinds, strict=True))
            for m in METRICS]
    return rows, scores
