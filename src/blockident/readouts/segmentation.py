"""Segmentation scores of object-centric representations: slots' attention maps vs. true masks.

Pure functions on arrays: a model with ``S`` slots gives attention maps ``(N, S, h, w)`` over its
patch grid; ground truth is an entity-id mask ``(N, H, W)`` (0 = background, 1.. = objects).
Maps are upsampled bilinearly to the mask size and each pixel goes to its most attended slot
(:func:`predicted_segments`), then scored per image:

- :func:`fg_ari`: adjusted Rand index over the foreground pixels (true id != 0) only, the
  usual object-discovery score (background may be split or merged freely).
- :func:`matched_iou_dice`: predicted segments matched one-to-one to the true objects by the
  Hungarian algorithm maximising IoU; mean IoU and mean Dice over the true objects.

:func:`segmentation_rows` turns them into ``results.csv`` rows.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

SEGMENTATION_METRICS = ("fg_ari", "mean_iou", "dice", "num_images")


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def upsample_attention(attn, size: int | tuple[int, int]) -> np.ndarray:
    """Attention maps (N, S, h, w) resized bilinearly (torch, ``align_corners=False``) to
    ``size`` = H or (H, W): float32 (N, S, H, W). Maps already of that size are returned as
    they are."""
    attn = torch.as_tensor(np.asarray(attn) if not torch.is_tensor(attn) else attn.detach())
    attn = attn.to("cpu", torch.float32)
    if attn.ndim != 4:
        raise ValueError(f"attention maps must be (N, S, h, w), got shape {tuple(attn.shape)}")
    size = _size(size)
    if tuple(attn.shape[-2:]) != size:
        attn = F.interpolate(attn, size=size, mode="bilinear", align_corners=False)
    return attn.numpy()


def hard_masks(attn_up) -> np.ndarray:
    """Slot id (N, H, W) int64 of every pixel: the slot with the highest attention
    (ties: the lowest slot index)."""
    return np.asarray(attn_up).argmax(1).astype(np.int64)


def predicted_segments(attn, size: int | tuple[int, int], batch: int = 64) -> np.ndarray:
    """:func:`hard_masks` of :func:`upsample_attention`, ``batch`` images at a time so that
    the upsampled maps of a whole split never sit in memory at once: (N, H, W) int64."""
    attn = np.asarray(attn)
    size = _size(size)
    out = np.empty((len(attn), *size), np.int64)
    for start in range(0, len(attn), batch):
        out[start:start + batch] = hard_masks(upsample_attention(attn[start:start + batch], size))
    return out


def contingency(true: np.ndarray, pred: np.ndarray, where: np.ndarray | None = None,
                n_true: int | None = None, n_pred: int | None = None) -> np.ndarray:
    """Per-image contingency tables (N, n_true, n_pred) of non-negative integer label maps
    ``true`` and ``pred`` (N, H, W): entry [n, i, j] counts the pixels of image n with true
    label i and predicted label j, over the pixels where ``where`` (N, H, W) is true (all by
    default). ``n_true``/``n_pred`` default to the largest label + 1."""
    true = np.asarray(true).astype(np.int64).reshape(len(true), -1)
    pred = np.asarray(pred).astype(np.int64).reshape(len(pred), -1)
    if true.shape != pred.shape:
        raise ValueError(f"true and predicted masks differ in shape: {true.shape} vs {pred.shape}")
    if true.size and (true.min() < 0 or pred.min() < 0):
        raise ValueError("mask labels must be non-negative integers")
    n_true = int(true.max(initial=0)) + 1 if n_true is None else n_true
    n_pred = int(pred.max(initial=0)) + 1 if n_pred is None else n_pred
    image = np.arange(len(true))[:, None]
    flat = (image * n_true + true) * n_pred + pred
    if where is not None:
        flat = flat[np.asarray(where).reshape(flat.shape)]
    counts = np.bincount(flat.ravel(), minlength=len(true) * n_true * n_pred)
    return counts.reshape(len(true), n_true, n_pred)


def _pairs(counts: np.ndarray) -> np.ndarray:
    counts = counts.astype(np.float64)
    return counts * (counts - 1) / 2


def ari_from_contingency(table: np.ndarray) -> np.ndarray:
    """Adjusted Rand index (Hubert & Arabie) of each (T, P) table of a stack (N, T, P).

    ``ARI = (I - E) / (M - E)`` with ``I = sum_ij C(n_ij, 2)``, ``a = sum_i C(n_i., 2)``,
    ``b = sum_j C(n_.j, 2)``, ``E = a b / C(n, 2)`` and ``M = (a + b) / 2``. Conventions:
    NaN where fewer than 2 pixels are counted (no pairs). ``M = E`` happens, for n >= 2, only
    when both partitions are the same trivial one (one cluster each, or all singletons);
    then the partitions agree and ARI = 1, as in ``sklearn.metrics.adjusted_rand_score``.
    In particular one object segmented by one slot scores 1, and split over several slots 0.
    """
    table = np.asarray(table)
    n = table.sum((1, 2)).astype(np.float64)
    index = _pairs(table).sum((1, 2))
    a = _pairs(table.sum(2)).sum(1)
    b = _pairs(table.sum(1)).sum(1)
    total = n * (n - 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = a * b / total
        maximum = (a + b) / 2
        ari = (index - expected) / (maximum - expected)
    trivial = (a == b) & ((a == 0) | (a == total))  # exact: integer pair counts, M = E
    ari = np.where(trivial, 1.0, ari)
    return np.where(n >= 2, ari, np.nan)


def _compact(pred: np.ndarray) -> np.ndarray:
    """Predicted ids as small non-negative integers (renamed only where they are not)."""
    pred = np.asarray(pred)
    if np.issubdtype(pred.dtype, np.integer) and pred.size and 0 <= pred.min() \
            and pred.max() < 1024:
        return pred
    return np.unique(pred, return_inverse=True)[1].reshape(pred.shape)


def fg_ari(true, pred) -> np.ndarray:
    """Foreground adjusted Rand index per image (N,) of the true entity ids and predicted
    segment ids (both (N, H, W), non-negative integers), over the pixels whose true id is not
    0 (background); see :func:`ari_from_contingency` for the conventions (NaN with fewer than
    two foreground pixels). Invariant to renaming the predicted ids."""
    true = np.asarray(true)
    table = contingency(true, _compact(pred), where=true != 0)
    return ari_from_contingency(table[:, 1:, :])


def iou_dice_table(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and Dice (N, T, P) of every (true label, predicted label) pair of (N, T, P) counts."""
    inter = table.astype(np.float64)
    area_true, area_pred = inter.sum(2, keepdims=True), inter.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (area_true + area_pred - inter)
        dice = 2 * inter / (area_true + area_pred)
    return np.nan_to_num(iou), np.nan_to_num(dice)


def match_segments(iou: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching maximising total IoU of the true labels ``rows`` of one image's
    (T, P) IoU table to distinct predicted labels: (true labels, predicted labels) matched."""
    if not len(rows):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    r, c = linear_sum_assignment(iou[rows], maximize=True)
    return rows[r], c


def matched_iou_dice(true, pred) -> tuple[np.ndarray, np.ndarray]:
    """Mean IoU and mean Dice per image ((N,), (N,)) of the true objects (ids present in the
    image and != 0) after Hungarian matching to the predicted segments (ids of ``pred``, every
    pixel counted, background included) maximising total IoU. An object left without a segment
    (more objects than segments) or matched with no overlap scores 0; NaN for images without
    objects. Invariant to renaming the predicted ids."""
    true = np.asarray(true)
    table = contingency(true, _compact(pred))
    iou, dice = iou_dice_table(table)
    present = table.sum(2) > 0
    mean_iou, mean_dice = np.full(len(true), np.nan), np.full(len(true), np.nan)
    for n in range(len(true)):
        objects = np.flatnonzero(present[n, 1:]) + 1
        if not len(objects):
            continue
        t, p = match_segments(iou[n], objects)
        mean_iou[n] = iou[n, t, p].sum() / len(objects)
        mean_dice[n] = dice[n, t, p].sum() / len(objects)
    return mean_iou, mean_dice


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def segmentation_rows(true, attn, encoding: str, kind: str = "objects",
                      readout: str = "slot_attention") -> list[dict]:
    """``results.csv`` rows of one encoding's slot attention (N, S, h, w) against the true
    entity masks (N, H, W): factor ``segmentation``, metrics ``fg_ari``, ``mean_iou``,
    ``dice`` (means over images, images where a score is undefined skipped) and
    ``num_images`` (N). Maps are upsampled to (H, W) (:func:`predicted_segments`)."""
    true = np.asarray(true)
    pred = predicted_segments(attn, true.shape[-2:])
    iou, dice = matched_iou_dice(true, pred)
    values = {"fg_ari": _nanmean(fg_ari(true, pred)), "mean_iou": _nanmean(iou),
              "dice": _nanmean(dice), "num_images": len(true)}
    return [{"encoding": encoding, "factor": "segmentation", "kind": kind, "readout": readout,
             "metric": metric, "value": values[metric]} for metric in SEGMENTATION_METRICS]
