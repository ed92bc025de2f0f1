"""COCO run-length encoding of binary masks in plain numpy (the strings of BURST's ``"rle"``).

A mask (H, W) is read in column-major (Fortran) order and cut into runs that alternate between
0 and 1, starting with 0 (so the first run is empty when the first pixel is set). The counts
string is the COCO API's ``rleToString``: every run, minus the run two before it from the fourth
run on, as a signed little-endian sequence of 5-bit groups, one character ``48 + group`` each,
bit 0x20 meaning "more groups follow" and bit 0x10 of the last group the sign. ``encode`` gives
the same string as ``pycocotools.mask.encode(np.asfortranarray(mask))["counts"]``.
"""

from __future__ import annotations

import numpy as np


def runs(mask: np.ndarray) -> np.ndarray:
    """(H, W) mask (nonzero = set) -> (R,) int64 alternating 0/1 run lengths, Fortran order."""
    flat = np.asarray(mask).ravel(order="F") != 0
    if flat.size == 0:
        return np.zeros(1, dtype=np.int64)
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    lengths = np.diff(np.concatenate(([0], edges, [flat.size])))
    return np.concatenate(([0], lengths)) if flat[0] else lengths


def encode(mask: np.ndarray) -> str:
    """(H, W) mask (nonzero = set) -> COCO compressed RLE counts string."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    counts = runs(mask).tolist()
    chars = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            group = x & 0x1F
            x >>= 5
            more = x != -1 if group & 0x10 else x != 0
            chars.append(chr(48 + (group | 0x20 if more else group)))
    return "".join(chars)


def counts_from_string(counts: str) -> list[int]:
    """COCO compressed counts string -> run lengths (inverse of the string coding of
    :func:`encode`); ValueError for characters outside ``0``..``o``, a truncated last run or a
    negative run."""
    values: list[int] = []
    x = shift = 0
    for position, char in enumerate(counts):
        group = ord(char) - 48
        if not 0 <= group < 64:
            raise ValueError(f"RLE counts: invalid character {char!r} at position {position}")
        x |= (group & 0x1F) << shift
        shift += 5
        if group & 0x20:
            continue
        if group & 0x10:
            x -= 1 << shift
        if len(values) > 2:
            x += values[-2]
        if x < 0:
            raise ValueError(f"RLE counts: negative run {x} (run {len(values)}, ending at "
                             f"position {position})")
        values.append(x)
        x = shift = 0
    if shift:
        raise ValueError("RLE counts: the string ends inside a run (last character has the "
                         "continuation bit)")
    return values


def decode(counts: str, height: int, width: int) -> np.ndarray:
    """COCO compressed counts string -> (height, width) bool mask; ValueError when the string
    is malformed or its runs do not cover exactly ``height * width`` pixels."""
    if not isinstance(counts, str):
        raise ValueError(f"RLE counts: expected a string, got {type(counts).__name__}")
    lengths = counts_from_string(counts)
    total = sum(lengths)
    if total != height * width:
        raise ValueError(f"RLE counts: runs cover {total} pixels, the mask has "
                         f"{height} x {width} = {height * width}")
    values = np.arange(len(lengths)) % 2 == 1
    flat = np.repeat(values, np.asarray(lengths, dtype=np.int64))
    return flat.reshape(width, height).T
