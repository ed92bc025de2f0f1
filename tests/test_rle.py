"""COCO RLE: round trips, edge cases, agreement with pycocotools, malformed strings."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from blockident.data.rle import decode, encode, runs

masks = st.tuples(st.integers(1, 40), st.integers(1, 40)).flatmap(
    lambda shape: arrays(np.bool_, shape))


def blobs(seed: int, height: int, width: int) -> np.ndarray:
    """A mask with long runs (large counts, so multi-character groups and negative deltas)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:height, :width]
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(rng.integers(1, 5)):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(2, height / 2)
        mask |= (ys - cy) ** 2 + (xs - cx) ** 2 < r**2
    return mask


@settings(max_examples=200, deadline=None)
@given(masks)
def test_round_trip(mask):
    counts = encode(mask)
    assert np.array_equal(decode(counts, *mask.shape), mask)
    assert runs(mask).sum() == mask.size


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_of_large_blobs(seed):
    mask = blobs(seed, 300, 170)
    assert np.array_equal(decode(encode(mask), 300, 170), mask)


def test_known_strings_empty_and_full_masks():
    assert encode(np.zeros((4, 5), bool)) == "d0"  # one run of 20 zeros
    assert encode(np.ones((4, 5), bool)) == "0d0"  # no zeros, then 20 ones
    assert not decode("d0", 4, 5).any() and decode("0d0", 4, 5).all()
    mask = np.array([[0, 1], [1, 1]], dtype=np.uint8)  # column-major: 0 1 1 1
    assert runs(mask).tolist() == [1, 3] and encode(mask) == "13"
    assert decode("13", 2, 2).tolist() == [[False, True], [True, True]]


def test_nonzero_values_count_as_set():
    mask = np.array([[0, 7], [2, 0]], dtype=np.uint8)
    assert np.array_equal(decode(encode(mask), 2, 2), mask != 0)


@pytest.mark.parametrize("counts, message", [
    ("1 3", "invalid character"),
    ("1p", "invalid character"),
    ("1\u00e9", "invalid character"),
    ("1b", "ends inside a run"),
    ("13", "cover 4 pixels"),
    ("@", "negative run"),  # a first run of -16
    ("0d01[O", "negative run"),  # runs 0, 20, 1, then 20 - 21
])
def test_malformed_strings_raise_value_error(counts, message):
    with pytest.raises(ValueError, match=message):
        decode(counts, 3, 3)


def test_bad_mask_shape():
    with pytest.raises(ValueError, match="2-D"):
        encode(np.zeros((2, 2, 2), bool))


@pytest.fixture(scope="module")
def pycocotools_mask():
    return pytest.importorskip("pycocotools.mask", reason="pycocotools not installed")


@settings(max_examples=200, deadline=None)
@given(mask=masks)
def test_strings_equal_pycocotools(pycocotools_mask, mask):
    coco = pycocotools_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert encode(mask) == coco["counts"].decode()
    assert np.array_equal(decode(coco["counts"].decode(), *mask.shape), mask)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("seed", range(5))
def test_blob_strings_equal_pycocotools(pycocotools_mask, seed):
    mask = blobs(seed, 300, 170)
    coco = pycocotools_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert encode(mask) == coco["counts"].decode()
    rle = {"size": [300, 170], "counts": encode(mask).encode()}
    assert np.array_equal(pycocotools_mask.decode(rle).astype(bool), mask)
