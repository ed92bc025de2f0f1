"""Encode the readout splits once, then run every readout a factor's type calls for.

Factor types (:data:`blockident.data.base.FACTOR_TYPES`) decide the readouts, named in the
readout config: ``continuous`` -> ``regressors`` (R2), ``categorical`` -> ``categorical``
(scikit-learn classifiers, accuracy), ``binary`` -> ``binary`` (multi-label readouts of
:mod:`blockident.readouts.classification`, all binary factors of one input set at once).
``readout.whole`` adds scores of the whole representation against all continuous factors
(MCC, DCI); ``readout.probes`` adds class readouts (:mod:`.probes`: linear probe, few-shot)
of every categorical factor, rows with their own metrics (``top1``, ``mean_per_class``,
``accuracy_ci95``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler
from torch import nn

from blockident import __version__
from blockident.data import cache
from blockident.data.base import ReadoutSplit
from blockident.errors import ConfigError
from blockident.io import atomic_savez
from blockident.logs import progress
from blockident.readouts.classification import classification_rows
from blockident.readouts.disentanglement import dci, mcc
from blockident.readouts.regression import regression_rows

Encodings = dict[str, dict[str, np.ndarray]]  # split -> input set -> (N, D)


def encode_splits(module, splits: dict[str, ReadoutSplit], augment: nn.Module | None = None,
                  copies: int = 0) -> tuple[dict[str, ReadoutSplit], Encodings]:
    """Encodings of every input set of every split with ``module.encode``.

    With ``copies`` > 0 the ``train`` split's view-1 inputs are also encoded ``copies`` times
    through ``augment`` in training mode (random augmentations), appended after the clean
    encodings (view-2 encodings are repeated as they are), and its factors repeated to match;
    the returned splits reflect that.
    """
    if copies and augment is None:
        raise ConfigError("readout.augment needs a data module with augmentations")
    encodings: Encodings = {split: {} for split in splits}
    sets = [(split, name) for split, s in splits.items() for name in s.inputs]
    for split, name in progress(sets, "encoding the readout splits"):
        s = splits[split]
        view, x = s.inputs[name]
        z = [module.encode(view, x, s.transforms.get(view))]
        for _ in range(copies if split == "train" else 0):
            if view == 1:
                augment.to(module.device).train()
                z.append(module.encode(view, x, augment))
            else:
                z.append(z[0])
        encodings[split][name] = np.concatenate(z)
    return with_copies(splits, copies), encodings


def with_copies(splits: dict[str, ReadoutSplit], copies: int) -> dict[str, ReadoutSplit]:
    """``splits`` with the ``train`` factors repeated ``copies + 1`` times, to match encodings
    of the train inputs with ``copies`` augmented copies appended."""
    if not copies:
        return splits
    train = splits["train"]
    factors = {k: np.concatenate([v] * (copies + 1)) for k, v in train.factors.items()}
    return {**splits, "train": replace(train, factors=factors)}


def _cache_settings(splits: dict[str, ReadoutSplit], source: Path, copies: int) -> dict:
    return {"source": str(Path(source).resolve()), "augment": copies, "version": __version__,
            "inputs": {s: {n: len(x) for n, (_, x) in split.inputs.items()}
                       for s, split in splits.items()}}


def cached_encodings(out: Path, splits: dict[str, ReadoutSplit], source: Path,
                     copies: int = 0) -> Encodings | None:
    """The encodings :func:`save_encodings` left in ``out`` for the weights in ``source`` (a
    checkpoint file), if that file is unchanged and they cover the same inputs; else None."""
    settings, encodings = _cache_settings(splits, source, copies), {}
    for split in splits:
        path = out / f"encodings_{split}.npz"
        doc = cache.read(path, settings)
        if doc is None or cache.changed([cache.stamp(source)], doc["stamps"]):
            return None
        with np.load(path) as arrays:
            encodings[split] = {name: arrays[name] for name in arrays.files}
    return encodings


def save_encodings(out: Path, encodings: Encodings, splits: dict[str, ReadoutSplit],
                   source: Path | None, copies: int = 0) -> None:
    """Write ``encodings_<split>.npz`` in ``out``; with the ``source`` checkpoint they came from,
    a cache manifest too, so that :func:`cached_encodings` can reuse them."""
    for split, arrays in encodings.items():
        path = out / f"encodings_{split}.npz"
        atomic_savez(path, arrays)
        if source is not None:
            cache.write(path, _cache_settings(splits, source, copies), [cache.stamp(source)])


def _categorical_rows(train, test, encodings, tasks, classifiers, standardize) -> list[dict]:
    rows = []
    for task in progress(tasks, f"{', '.join(classifiers)} readouts of categorical factors"):
        x_train, x_test = encodings["train"][task.inputs], encodings["test"][task.inputs]
        if standardize:
            scaler = StandardScaler().fit(x_train)
            x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
        y_train = np.asarray(train.factors[task.factor]).reshape(len(x_train))
        y_test = np.asarray(test.factors[task.factor]).reshape(len(x_test))
        for name, model in classifiers.items():
            value = float("nan")
            if len(np.unique(y_train)) > 1:
                value = float((clone(model).fit(x_train, y_train).predict(x_test)
                               == y_test).mean())
            rows.append({"encoding": task.encoding, "factor": task.factor,
                         "kind": train.kinds[task.factor], "readout": name,
                         "metric": "accuracy", "value": value})
    return rows


def _probe_rows(train, test, encodings, tasks, probes) -> list[dict]:
    """Rows of every probe of ``readout.probes`` (name -> config) on categorical ``tasks``."""
    rows = []
    for name, spec in probes.items():
        if spec is None:
            continue
        probe = instantiate(spec)
        for task in progress(tasks, f"{name} readouts of categorical factors"):
            values = probe(encodings["train"][task.inputs],
                           np.asarray(train.factors[task.factor]).reshape(-1),
                           encodings["test"][task.inputs],
                           np.asarray(test.factors[task.factor]).reshape(-1))
            rows += [{"encoding": task.encoding, "factor": task.factor,
                      "kind": train.kinds[task.factor], "readout": name, "metric": metric,
                      "value": value} for metric, value in values.items()]
    return rows


def _binary_rows(train, test, encodings, tasks, cfg) -> tuple[list[dict], dict]:
    """Rows and raw test scores (key ``encoding/readout``) of the binary factors."""
    rows, predictions = [], {}
    groups = defaultdict(list)
    for task in tasks:
        groups[(task.encoding, task.inputs)].append(task.factor)
    fits = [(group, readout) for group in groups for readout in cfg.binary]
    for (encoding, inputs), readout in progress(fits, f"{', '.join(cfg.binary)} readouts of "
                                                f"binary factors ({len(tasks)})"):
        factors = groups[(encoding, inputs)]
        labels = {split: np.stack([np.asarray(s.factors[f]).reshape(-1) for f in factors], 1)
                  for split, s in (("train", train), ("test", test))}
        part, scores = classification_rows(
            encodings["train"][inputs], labels["train"], encodings["test"][inputs],
            labels["test"], factors, [train.kinds[f] for f in factors], encoding, readout,
            standardize=cfg.standardize, seed=cfg.get("seed", 0),
            mlp_kwargs=dict(cfg.get("mlp") or {}))
        rows += part
        predictions[f"{encoding}/{readout}"] = scores
        predictions[f"{encoding}/labels"] = labels["test"]
        predictions[f"{encoding}/factors"] = np.asarray(factors)
    return rows, predictions


def readout_rows(splits: dict[str, ReadoutSplit], encodings: Encodings,
                 cfg: DictConfig) -> tuple[list[dict], dict[str, np.ndarray]]:
    """``results.csv`` rows of every readout task, and raw test predictions of binary readouts.

    ``cfg`` is the readout config; ``only_content`` keeps content factors only.
    """
    train, test = splits["train"], splits["test"]
    tasks = [t for t in train.tasks
             if not cfg.get("only_content") or train.kinds[t.factor] == "content"]
    by_type = defaultdict(list)
    for task in tasks:
        by_type[train.factor_type(task.factor)].append(task)
    unknown = set(by_type) - {"continuous", "categorical", "binary"}
    if unknown:
        raise ValueError(f"unknown factor types {sorted(unknown)}")
    rows, predictions = [], {}
    for kind, needs in (("continuous", "regressors"), ("categorical", "categorical"),
                        ("binary", "binary")):
        if by_type[kind] and not cfg.get(needs):
            raise ConfigError(f"{len(by_type[kind])} {kind} factors to read out, but the "
                              f"readout config has no '{needs}'")
    if by_type["continuous"]:
        regressors = {name: instantiate(spec) for name, spec in cfg.regressors.items()
                      if spec is not None}  # null removes a readout in an experiment's config
        rows += regression_rows(replace(train, tasks=by_type["continuous"]), test, encodings,
                                regressors, cfg.standardize)
    if by_type["categorical"]:
        classifiers = {name: instantiate(spec) for name, spec in cfg.categorical.items()
                       if spec is not None}
        rows += _categorical_rows(train, test, encodings, by_type["categorical"], classifiers,
                                  cfg.standardize)
        rows += _probe_rows(train, test, encodings, by_type["categorical"],
                            cfg.get("probes") or {})
    if by_type["binary"]:
        part, predictions = _binary_rows(train, test, encodings, by_type["binary"], cfg)
        rows += part
    if cfg.get("whole"):
        rows += whole_rows(train, test, encodings, by_type["continuous"], cfg.whole,
                           cfg.get("seed", 0))
    return rows, predictions


WHOLE = ("mcc", "dci")


def whole_rows(train, test, encodings, tasks, scores, seed: int = 0) -> list[dict]:
    """Scores of the whole representation against all its continuous factors at once: ``mcc``
    (Pearson and Spearman, Hungarian-matched) and ``dci`` (disentanglement, completeness,
    informativeness; lasso importances); rows with factor ``*`` and kind ``all``."""
    unknown = set(scores) - set(WHOLE)
    if unknown:
        raise ConfigError(f"readout.whole: unknown {sorted(unknown)}; expected any of {WHOLE}")
    groups = defaultdict(list)
    for task in tasks:
        groups[(task.encoding, task.inputs)].append(task.factor)
    rows = []
    for (encoding, inputs), factors in groups.items():
        y = {s: np.column_stack([np.asarray(split.factors[f], dtype=float).reshape(
            len(split.factors[f]), -1) for f in factors]) for s, split in (("train", train),
                                                                          ("test", test))}
        values = {}
        if "mcc" in scores:
            for method in ("pearson", "spearman"):
                values[("mcc", method)] = mcc(encodings["test"][inputs], y["test"], method)[0]
        if "dci" in scores:
            result = dci(encodings["train"][inputs], y["train"], encodings["test"][inputs],
                         y["test"], importance="lasso", seed=seed)
            for metric in ("disentanglement", "completeness", "informativeness"):
                values[("dci", metric)] = result[metric]
        rows += [{"encoding": encoding, "factor": "*", "kind": "all", "readout": readout,
                  "metric": metric, "value": float(v)} for (readout, metric), v in values.items()]
    return rows


HEADLINE_METRICS = ("balanced_accuracy", "accuracy", "r2")


def headline(rows: list[dict]) -> dict[str, float]:
    """Mean of each headline metric per (encoding, readout, kind), keyed for a logger:
    ``readout/<encoding>/<readout>/<kind>_<metric>``; NaN values are skipped."""
    table = pd.DataFrame(rows)
    table = table[table["metric"].isin(HEADLINE_METRICS)].dropna(subset=["value"])
    means = table.groupby(["encoding", "readout", "kind", "metric"])["value"].mean()
    return {f"readout/{e}/{r}/{k}_{m}": float(v) for (e, r, k, m), v in means.items()}


class ReadoutCallback(L.Callback):
    """Every ``every`` training steps, read every factor out of the current encoder and log the
    :func:`headline` means (the readout data is built once, at the first evaluation)."""

    def __init__(self, data, cfg: DictConfig, every: int):
        self.data, self.cfg, self.every = data, cfg, every
        self.splits: dict[str, ReadoutSplit] | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step % self.every or not trainer.is_global_zero:
            return
        if self.splits is None:
            self.splits = self.data.readout_data()
        splits, encodings = encode_splits(pl_module, self.splits)
        rows, _ = readout_rows(splits, encodings, self.cfg)
        metrics = headline(rows)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
