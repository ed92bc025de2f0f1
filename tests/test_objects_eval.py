"""Evaluation of object-centric representations: segmentation scores, slot matching,
object-attribute readouts and the slot figure, on small synthetic scenes."""

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from blockident.readouts.object_attributes import (
    chance_accuracy,
    match_slots_to_objects,
    object_attribute_rows,
    presence_probe,
)
from blockident.readouts.segmentation import (
    fg_ari,
    hard_masks,
    matched_iou_dice,
    predicted_segments,
    segmentation_rows,
    upsample_attention,
)
from blockident.report_objects import plot_slots


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny torch fits run faster on one thread than on cores shared with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def scenes(n=8, size=16, objects=3, seed=0):
    """Entity masks (n, size, size) of axis-aligned rectangles on background 0, and visibility
    (n, 11): every object drawn keeps some pixels."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), np.uint8)
    visible = np.zeros((n, 11), bool)
    for i in range(n):
        for e in range(1, objects + 1):
            r, c = rng.integers(0, size - 4, 2)
            h, w = rng.integers(3, 6, 2)
            masks[i, r:r + h, c:c + w] = e
        visible[i, np.unique(masks[i])] = True
    visible[:, 0] = True
    return masks, visible


def one_hot_attention(ids, slots):
    """Soft maps (N, S, H, W) whose argmax is ``ids``."""
    attn = np.full((len(ids), slots, *ids.shape[1:]), 0.1 / slots, np.float32)
    np.put_along_axis(attn, ids[:, None].astype(np.int64), 0.9, axis=1)
    return attn


def test_fg_ari_equals_sklearn_on_foreground_pixels():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, size=(30, 12, 12))
    true[0] = 0  # no foreground: undefined
    true[1] = 0
    true[1, 0, 0] = 2  # one foreground pixel: undefined
    pred = rng.integers(0, 4, size=true.shape)
    pred[2] = (true[2] * 3) % 7  # a renamed copy: perfect
    pred[3] = 1  # one cluster against several
    ours = fg_ari(true, pred)
    assert np.isnan(ours[:2]).all()
    for i in range(2, len(true)):
        fg = true[i] != 0
        assert ours[i] == pytest.approx(adjusted_rand_score(true[i][fg], pred[i][fg]), abs=1e-12)
    assert ours[2] == pytest.approx(1.0)


def test_fg_ari_conventions_match_sklearn_on_trivial_partitions():
    true = np.zeros((3, 1, 4), np.int64)
    true[:, 0, :] = [[1, 1, 1, 1], [1, 1, 1, 1], [1, 2, 3, 4]]
    pred = np.array([[[5, 5, 5, 5]], [[0, 0, 1, 1]], [[0, 1, 2, 3]]])
    expected = [adjusted_rand_score(t.ravel(), p.ravel()) for t, p in zip(true, pred, strict=True)]
    np.testing.assert_allclose(fg_ari(true, pred), expected)
    np.testing.assert_allclose(expected, [1.0, 0.0, 1.0])


def test_scores_are_invariant_to_renaming_predicted_ids():
    masks, _ = scenes(n=6, seed=1)
    rng = np.random.default_rng(2)
    pred = rng.integers(0, 5, size=masks.shape)
    renamed = np.array([40, 3, 1000, 7, 2])[pred]  # any labels, not 0..S-1
    np.testing.assert_allclose(fg_ari(masks, renamed), fg_ari(masks, pred))
    for a, b in zip(matched_iou_dice(masks, renamed), matched_iou_dice(masks, pred),
                    strict=True):
        np.testing.assert_allclose(a, b)


def test_perfect_segmentation_scores_one():
    masks, _ = scenes()
    pred = (masks.astype(np.int64) + 2) % 11  # a relabelling, background its own segment
    assert np.allclose(fg_ari(masks, pred), 1)
    iou, dice = matched_iou_dice(masks, pred)
    assert np.allclose(iou, 1) and np.allclose(dice, 1)
    rows = segmentation_rows(masks, one_hot_attention(pred, 11), "slots")
    values = {r["metric"]: r["value"] for r in rows}
    assert values == pytest.approx({"fg_ari": 1, "mean_iou": 1, "dice": 1, "num_images": 8})
    assert {(r["factor"], r["kind"], r["readout"]) for r in rows} == {
        ("segmentation", "objects", "slot_attention")}


def test_partial_segmentation_by_hand():
    # one row of 8 pixels: object 1 = pixels 0-3, object 2 = pixels 4-5, background 6-7
    true = np.array([[[1, 1, 1, 1, 2, 2, 0, 0]]])
    # segment 0 covers object 1 and half of object 2; segment 1 the rest of object 2 and the
    # background
    pred = np.array([[[0, 0, 0, 0, 0, 1, 1, 1]]])
    iou, dice = matched_iou_dice(true, pred)
    # object 1 <-> segment 0: IoU 4/5, Dice 8/9; object 2 <-> segment 1: IoU 1/4, Dice 2/5
    assert iou[0] == pytest.approx((4 / 5 + 1 / 4) / 2)
    assert dice[0] == pytest.approx((8 / 9 + 2 / 5) / 2)
    # one segment for all 8 pixels goes to object 1 (IoU 4/8, Dice 8/12); object 2 is left
    # without a segment and scores 0
    iou, dice = matched_iou_dice(true, np.zeros_like(pred))
    assert iou[0] == pytest.approx(4 / 8 / 2) and dice[0] == pytest.approx(8 / 12 / 2)
    # no objects: undefined
    assert np.isnan(matched_iou_dice(np.zeros_like(true), pred)[0]).all()


def test_upsampling_and_hard_masks():
    attn = np.zeros((1, 2, 2, 2), np.float32)
    attn[0, 0, :, 0] = 1  # slot 0 on the left, slot 1 on the right
    attn[0, 1, :, 1] = 1
    up = upsample_attention(attn, 8)
    assert up.shape == (1, 2, 8, 8) and up.dtype == np.float32
    np.testing.assert_allclose(up.sum(1), 1, atol=1e-6)  # bilinear keeps the sum over slots
    ids = hard_masks(up)
    assert (ids[0, :, :4] == 0).all() and (ids[0, :, 4:] == 1).all()
    np.testing.assert_array_equal(predicted_segments(np.repeat(attn, 5, 0), (8, 8), batch=2),
                                  np.repeat(ids, 5, 0))


def presence_data(n, slots=4, dim=8, labels=3, seed=0, informative=True):
    """Scenes with ``labels`` binary labels; with ``informative`` the slot holding an object
    of label k has dimension k high (others noise)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < 0.4).astype(np.int64)
    x = rng.normal(size=(n, slots, dim)).astype(np.float32)
    if informative:
        for k in range(labels):
            slot = rng.integers(0, slots, n)
            x[np.arange(n), slot, k] += 4 * y[:, k]
    return x, y


def test_presence_probe_reads_labels_carried_by_one_slot_dimension():
    x, y = presence_data(400)
    out = presence_probe(x[:300], y[:300], x[300:], y[300:], steps=300, lr=5e-2)
    assert out["labels_scored"] == 3
    assert out["average_precision"] > 0.9 and out["roc_auc"] > 0.95
    # random features: about chance (AUC 0.5, AP the positive rate)
    x, y = presence_data(400, informative=False, seed=1)
    out = presence_probe(x[:300], y[:300], x[300:], y[300:], steps=300, lr=5e-2)
    assert abs(out["roc_auc"] - 0.5) < 0.12
    assert out["average_precision"] < y[300:].mean() + 0.15
    # a global representation is one slot; a label constant in the test set is not scored
    yt = y[300:].copy()
    yt[:, 0] = 0
    out = presence_probe(x[:300, 0], y[:300], x[300:, 0], yt, steps=50)
    assert out["labels_scored"] == 2


def test_match_slots_to_objects_recovers_a_known_assignment():
    masks, visible = scenes(n=5, objects=3, seed=3)
    # slot of entity e in image i: a known permutation; background to the last slot
    rng = np.random.default_rng(4)
    assignment = np.stack([rng.permutation(5) for _ in range(len(masks))])
    pred = np.take_along_axis(assignment, masks.reshape(len(masks), -1).astype(np.int64),
                              1).reshape(masks.shape)
    pred[masks == 0] = 4
    assignment[:, 0] = 4
    expected = [(i, int(assignment[i, e]), e) for i in range(len(masks)) for e in range(1, 4)
                if visible[i, e]]
    assert match_slots_to_objects(pred, masks, visible) == expected
    # soft maps give the same; an invisible object is not matched
    assert match_slots_to_objects(one_hot_attention(pred, 5), masks, visible) == expected
    hidden = visible.copy()
    hidden[0, 1] = False
    assert match_slots_to_objects(pred, masks, hidden) == [m for m in expected
                                                           if m[0] or m[2] != 1]
    # all objects in one slot: the largest overlap wins it, the others are left with slots
    # that miss them (IoU 0) and stay unmatched
    merged = np.where(masks > 0, 0, 4)
    matches = match_slots_to_objects(merged, masks, visible)
    assert len(matches) == len(masks) and all(slot == 0 for _, slot, _ in matches)


def attribute_scenes(n, slots=5, dim=6, seed=0, informative=True):
    """Slots (n, slots, dim), masks, attributes and visibility of 3-object scenes; the slot of
    each object encodes its colour (one-hot dims 0-3) and x (dim 4) when ``informative``."""
    rng = np.random.default_rng(seed)
    masks, visible = scenes(n, objects=3, seed=seed)
    color = np.zeros((n, 11), np.int64)
    color[:, 1:4] = rng.integers(1, 5, (n, 3))
    shape = np.zeros((n, 11), np.int64)
    shape[:, 1:4] = rng.integers(1, 3, (n, 3))
    x = np.zeros((n, 11))
    x[:, 1:4] = rng.uniform(-3, 3, (n, 3))
    attrs = {"color": color, "shape": shape, "x": x}
    slot_of = np.stack([rng.permutation(slots) for _ in range(n)])  # entity e -> slot
    pred = np.take_along_axis(slot_of, masks.reshape(n, -1).astype(np.int64), 1)
    pred = pred.reshape(masks.shape)
    z = rng.normal(scale=0.1 if informative else 1.0, size=(n, slots, dim))
    if informative:
        for e in range(1, 4):
            s = slot_of[:, e]
            z[np.arange(n), s, color[:, e] - 1] += 3
            z[np.arange(n), s, 4] = x[:, e]
    return z, masks, attrs, visible, pred


def test_object_attribute_rows_accuracy_one_with_information_and_chance_without():
    def run(informative):
        train = attribute_scenes(120, seed=0, informative=informative)
        test = attribute_scenes(60, seed=1, informative=informative)
        rows = object_attribute_rows(*train, *test, encoding="slots",
                                     categorical=("color", "shape"), continuous=("x",))
        return {(r["factor"], r["readout"], r["metric"]): r["value"] for r in rows}, rows

    values, rows = run(True)
    assert {r["kind"] for r in rows} == {"content"} and {r["encoding"] for r in rows} == {"slots"}
    assert values[("object_color", "logistic", "accuracy")] > 0.97
    assert values[("object_x", "linear", "r2")] > 0.97
    assert values[("objects", "hungarian_iou", "matched_fraction")] == 1.0
    visible_objects = attribute_scenes(60, seed=1)[3][:, 1:].sum()
    assert values[("objects", "hungarian_iou", "matched_objects")] == visible_objects
    # shape is not in the slots: near its majority-class chance
    assert abs(values[("object_shape", "logistic", "accuracy")]
               - values[("object_shape", "majority", "accuracy")]) < 0.15

    values, _ = run(False)
    chance = values[("object_color", "majority", "accuracy")]
    assert 0.15 < chance < 0.45
    assert values[("object_color", "logistic", "accuracy")] < chance + 0.15
    assert values[("object_x", "linear", "r2")] < 0.1


def test_chance_accuracy():
    assert chance_accuracy([1, 2, 2, 3], [2, 2, 1, 3]) == 0.5
    assert chance_accuracy([1, 1, 2, 2], [1, 2]) == 0.5  # ties: the smallest class
    assert np.isnan(chance_accuracy([], [1]))


@pytest.mark.parametrize("channels_first", [True, False])
def test_plot_slots_writes_a_png(tmp_path, channels_first):
    masks, _ = scenes(n=2, size=16)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    if channels_first:
        images = images.transpose(0, 3, 1, 2)
    attn = rng.random((2, 4, 4, 4)).astype(np.float32)
    attn /= attn.sum(1, keepdims=True)  # coarse maps: upsampled by the figure
    path = plot_slots(images, attn, masks, tmp_path / "slots.png", "test scenes")
    assert path == tmp_path / "slots.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["slots.png"]  # no temporary left
