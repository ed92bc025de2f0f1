"""Readouts of objects' attributes from slot representations (pure functions on arrays).

Slots are ``(N, S, D)`` arrays (a global representation is ``(N, 1, D)``); ground truth is in
the CLEVR-with-masks layout: entity-id masks ``(N, H, W)`` (0 = background, 1.. = objects),
``visible`` ``(N, E)`` (entity 0 = background) and attributes name -> ``(N, E)``: integer codes
(``color``, ``shape``, ``material``, ``size``; 0 = no object) and floats (``x``, ``y``, ``z``,
``rotation``).

- :func:`presence_probe`: which labels (e.g. "a red object is in the scene") a linear readout
  applied to every slot, max-pooled over slots, finds; average precision and ROC-AUC.
- :func:`match_slots_to_objects`: each visible object's slot, by Hungarian matching on the
  IoU of the slots' hard masks with the objects' masks.
- :func:`object_attribute_rows`: per attribute, a readout of the matched slot vectors
  (logistic regression accuracy for codes, ridge R2 for coordinates), as ``results.csv`` rows.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

from blockident.readouts.metrics import ranking_metrics
from blockident.readouts.segmentation import (
    contingency,
    iou_dice_table,
    match_segments,
    predicted_segments,
)

CATEGORICAL = ("color", "shape", "material", "size")
CONTINUOUS = ("x", "y", "z")


def _slots(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim == 2:  # a global representation (N, D) is one slot
        x = x[:, None]
    if x.ndim != 3:
        raise ValueError(f"slots must be (N, S, D), got shape {x.shape}")
    return x


def presence_probe(slots_train, y_train, slots_test, y_test, steps: int = 500,
                   lr: float = 1e-2, seed: int = 0) -> dict[str, float]:
    """Multi-label presence readout of slot sets.

    A linear layer D -> K applied to every slot, the logits max-pooled over the slots, fitted
    by full-batch Adam (``steps``, ``lr``) to BCE-with-logits with per-label ``pos_weight =
    negatives / positives`` of the training labels. Slot features are standardised with the
    mean and deviation of all training slots. ``slots_*`` (N, S, D) (or (N, D) for one slot),
    ``y_*`` (N, K) 0/1. Returns ``average_precision`` and ``roc_auc`` (scikit-learn's, from
    :mod:`.metrics`), macro means over the labels with both classes in the training and in the
    test labels (NaN if none), and ``labels_scored`` (their number). Deterministic for ``seed``.
    """
    x_train, x_test = _slots(slots_train), _slots(slots_test)
    y_train = np.asarray(y_train, np.float32).reshape(len(x_train), -1)
    y_test = np.asarray(y_test).reshape(len(x_test), -1).astype(np.int64)
    flat = x_train.reshape(-1, x_train.shape[-1])
    mean, std = flat.mean(0), flat.std(0) + 1e-6
    xt = torch.from_numpy((x_train - mean) / std)
    yt = torch.from_numpy(y_train)
    n_pos = yt.sum(0)
    n_neg = len(yt) - n_pos
    pos_weight = torch.where(n_pos > 0, n_neg / n_pos.clamp(min=1), torch.ones_like(n_pos))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = torch.nn.Linear(xt.shape[-1], yt.shape[1])
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        logits = layer(xt).amax(1)
        F.binary_cross_entropy_with_logits(logits, yt, pos_weight=pos_weight).backward()
        optimizer.step()
    with torch.no_grad():
        scores = layer(torch.from_numpy((x_test - mean) / std)).amax(1).numpy()

    both = lambda y: (y.sum(0) > 0) & (y.sum(0) < len(y))  # noqa: E731
    scored = np.flatnonzero(both(y_train) & both(y_test))
    if not len(scored):
        return {"average_precision": float("nan"), "roc_auc": float("nan"), "labels_scored": 0}
    means = {k: float(v.mean()) for k, v in ranking_metrics(y_test[:, scored],
                                                            scores[:, scored]).items()}
    return means | {"labels_scored": len(scored)}


def _slot_ids(pred, size: tuple[int, int]) -> np.ndarray:
    """Hard slot ids (N, H, W) from slot ids or soft maps (N, S, h, w) (upsampled, argmax)."""
    pred = np.asarray(pred)
    if pred.ndim == 4:
        return predicted_segments(pred, size)
    if pred.ndim != 3 or tuple(pred.shape[-2:]) != tuple(size):
        raise ValueError(f"predicted slot ids must be (N, H, W) = (N, {size[0]}, {size[1]}) or "
                         f"soft maps (N, S, h, w); got shape {pred.shape}")
    return pred.astype(np.int64)


def _match(pred, masks, visible, min_iou: float) -> tuple[list[tuple[int, int, int]], int]:
    """:func:`match_slots_to_objects` and the number of objects that could be matched."""
    masks = np.asarray(masks)
    visible = np.asarray(visible, bool)
    ids = _slot_ids(pred, masks.shape[-2:])
    n_entities = max(visible.shape[1], int(masks.max(initial=0)) + 1)
    n_slots = np.asarray(pred).shape[1] if np.asarray(pred).ndim == 4 else None
    table = contingency(masks, ids, n_true=n_entities, n_pred=n_slots)
    iou, _ = iou_dice_table(table)
    objects = table.sum(2) > 0  # entities with pixels in the mask ...
    objects[:, 0] = False
    objects[:, :visible.shape[1]] &= visible  # ... and marked visible
    out = []
    for n in range(len(masks)):
        entities, slots = match_segments(iou[n], np.flatnonzero(objects[n]))
        keep = iou[n, entities, slots] > min_iou
        out += [(n, int(s), int(e)) for e, s in zip(entities[keep], slots[keep], strict=True)]
    return out, int(objects.sum())


def match_slots_to_objects(pred, masks, visible, min_iou: float = 0.0
                           ) -> list[tuple[int, int, int]]:
    """(image, slot, entity) of each visible object matched to a slot.

    ``pred``: every pixel's slot id (N, H, W), or soft slot maps (N, S, h, w) turned into ids
    by upsampling and argmax; ``masks`` (N, H, W) entity ids; ``visible`` (N, E) bool. Per
    image, the objects (entity != 0, visible, with pixels in the mask) are matched one-to-one
    to slots by the Hungarian algorithm maximising the total IoU of the slot's hard mask with
    the object's mask; pairs with IoU <= ``min_iou`` are dropped. Sorted by image, then entity.
    """
    return _match(pred, masks, visible, min_iou)[0]


def chance_accuracy(y_train, y_test) -> float:
    """Accuracy on ``y_test`` of always predicting the most frequent class of ``y_train``
    (ties: the smallest); NaN without training or test labels."""
    y_train, y_test = np.asarray(y_train).ravel(), np.asarray(y_test).ravel()
    if not len(y_train) or not len(y_test):
        return float("nan")
    values, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(y_test == values[counts.argmax()]))


def _matched(slots, masks, attributes, visible, pred, min_iou):
    pairs, objects = _match(pred, masks, visible, min_iou)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 3)
    x = _slots(slots)[pairs[:, 0], pairs[:, 1]].astype(np.float64)
    targets = {name: np.asarray(values)[pairs[:, 0], pairs[:, 2]]
               for name, values in attributes.items()}
    return x, targets, len(pairs), objects


def object_attribute_rows(slots_train, masks_train, attrs_train, visible_train, pred_train,
                          slots_test, masks_test, attrs_test, visible_test, pred_test,
                          encoding: str, kind: str = "content",
                          categorical: tuple[str, ...] = CATEGORICAL,
                          continuous: tuple[str, ...] = CONTINUOUS, chance: bool = True,
                          min_iou: float = 0.0) -> list[dict]:
    """``results.csv`` rows of object-attribute readouts of matched slots.

    Each part's slots (N, S, D) are matched to its visible objects
    (:func:`match_slots_to_objects` on ``pred_*``: slot ids (N, H, W) or soft maps
    (N, S, h, w)); the matched slot vectors, standardised with training statistics, are the
    features, the matched objects' attributes (``attrs_*``: name -> (N, E)) the targets.
    Rows, factor ``object_<attribute>`` and the given ``kind``:

    - ``categorical`` attributes: readout ``logistic`` (multinomial logistic regression),
      metric ``accuracy``; with ``chance`` also readout ``majority``, metric ``accuracy``
      (:func:`chance_accuracy`, the level a readout of no information reaches);
    - ``continuous`` attributes: readout ``linear`` (ridge, penalty chosen by leave-one-out
      on the training objects), metric ``r2`` (chance 0);
    - factor ``objects``, readout ``hungarian_iou``: metric ``matched_fraction`` (matched test
      objects / visible test objects) and ``matched_objects`` (their number).

    A readout without two training objects (or, for classes, two classes) scores NaN.
    """
    x_train, y_train, _, _ = _matched(slots_train, masks_train, attrs_train, visible_train,
                                      pred_train, min_iou)
    x_test, y_test, matched, objects = _matched(slots_test, masks_test, attrs_test,
                                                visible_test, pred_test, min_iou)
    if len(x_train):
        scaler = StandardScaler().fit(x_train)
        x_train = scaler.transform(x_train)
        x_test = scaler.transform(x_test) if len(x_test) else x_test
    usable = len(x_train) >= 2 and len(x_test) >= 1
    nan = float("nan")
    rows = []

    def row(factor, readout, metric, value):
        rows.append({"encoding": encoding, "factor": factor, "kind": kind, "readout": readout,
                     "metric": metric, "value": value})

    for name in categorical:
        y, yt = y_train[name].astype(np.int64), y_test[name].astype(np.int64)
        value = nan
        if usable and len(np.unique(y)) >= 2:
            model = LogisticRegression(max_iter=1000).fit(x_train, y)
            value = float(np.mean(model.predict(x_test) == yt))
        row(f"object_{name}", "logistic", "accuracy", value)
        if chance:
            row(f"object_{name}", "majority", "accuracy", chance_accuracy(y, yt))
    for name in continuous:
        y, yt = y_train[name].astype(np.float64), y_test[name].astype(np.float64)
        value = nan
        if usable and len(yt) >= 2:
            model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x_train, y)
            value = float(r2_score(yt, model.predict(x_test)))
        row(f"object_{name}", "linear", "r2", value)
    row("objects", "hungarian_iou", "matched_fraction", matched / objects if objects else nan)
    row("objects", "hungarian_iou", "matched_objects", matched)
    return rows
