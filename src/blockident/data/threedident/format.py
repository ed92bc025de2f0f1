"""3DIdent (Zimmermann et al., ICML 2021, cl-ica): the public layout, checked, as a factor set.

Layout of the published archive (one folder per split)::

    ROOT/train/images/<i>.png      224x224 RGB, i = 0..N-1 zero-padded to ceil(log10 N) digits
    ROOT/train/raw_latents.npy     (N, 10) floats in [-1, 1]: the factors (:data:`FACTORS`)
    ROOT/train/latents.npy         (N, 10) the same latents in the renderer's units
    ROOT/test/...                  the same

:func:`read_3dident` checks a split (files present, raw latents of shape (N, 10) inside
[-1, 1], ``latents.npy`` with N rows, the image folder holding exactly the N expected names) and
raises :class:`FormatError` naming the file otherwise. Images are decoded when loaded, or once
into the shared uint8 :class:`~blockident.data.images.ImageCache` when ``cache_dir`` is given.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from blockident.data.factors import FactorDataset
from blockident.data.images import ImageCache
from blockident.errors import DataError

SPLITS = ("train", "test")
FACTORS = ("pos_x", "pos_y", "pos_z", "rot_alpha", "rot_beta", "rot_gamma", "spotlight_pos",
           "object_hue", "spotlight_hue", "background_hue")
RAW_LATENTS = "raw_latents.npy"
LATENTS = "latents.npy"
IMAGES = "images"
TOLERANCE = 1e-4  # raw latents may exceed [-1, 1] by this much (float rounding)
MAX_LISTED = 5  # names listed in an error message


class FormatError(DataError):
    """A folder does not have the 3DIdent layout; the message names the file."""


def image_name(index: int, n: int) -> str:
    """Name of image ``index`` of ``n``: zero-padded to ceil(log10 n) digits (cl-ica's rule;
    for n >= 2 that is the number of digits of n - 1)."""
    return f"{index:0{len(str(n - 1)) if n > 1 else 0}d}.png"


def _listed(names) -> str:
    names = sorted(names)
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def _load_npy(path: Path, **kwargs) -> np.ndarray:
    if not path.is_file():
        raise FormatError(f"{path}: missing (a 3DIdent split holds {RAW_LATENTS}, {LATENTS} and "
                          f"{IMAGES}/)")
    try:
        array = np.load(path, allow_pickle=False, **kwargs)
    except (ValueError, OSError, EOFError) as error:
        raise FormatError(f"{path}: not a readable .npy array ({error})") from error
    if array.dtype.kind not in "fiu":
        raise FormatError(f"{path}: dtype {array.dtype} is not numeric")
    return array


def _read_raw_latents(path: Path) -> np.ndarray:
    """(N, 10) float64 raw latents of ``path``, checked to lie in [-1, 1]."""
    raw = _load_npy(path)
    if raw.ndim != 2 or raw.shape[1] != len(FACTORS) or len(raw) == 0:
        raise FormatError(f"{path}: shape {raw.shape}, expected (N, {len(FACTORS)}) with N >= 1 "
                          f"(columns {', '.join(FACTORS)})")
    raw = raw.astype(np.float64)
    bad = ~(np.abs(raw) <= 1 + TOLERANCE)  # also catches NaN
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        raise FormatError(f"{path}: row {row}, column {col} ({FACTORS[col]!r}) is {raw[row, col]}, "
                          f"outside [-1, 1] ({int(bad.sum())} such values)")
    return raw


def split_folder(root: str | Path, split: str | None = None) -> Path:
    """``root/split``, or with ``split=None`` ``root`` itself when it is a split folder."""
    root = Path(root)
    if split is not None:
        folder = root / split
        if not folder.is_dir():
            found = [s for s in SPLITS if (root / s).is_dir()]
            raise FormatError(f"{folder}: split folder missing (found: {', '.join(found) or 'none'}"
                              f" in {root})")
        return folder
    if (root / RAW_LATENTS).exists() or (root / IMAGES).is_dir():
        return root
    found = [s for s in SPLITS if (root / s).is_dir()]
    if found:
        raise FormatError(f"{root}: holds the splits {', '.join(found)}; pass split=")
    raise FormatError(f"{root}: not a 3DIdent folder (no {RAW_LATENTS}, no {IMAGES}/, no split "
                      f"folders {', '.join(SPLITS)})")


def read_3dident(root: str | Path, split: str | None = None, size: int | None = None,
                 cache_dir: str | Path | None = None) -> FactorDataset:
    """Check split ``split`` of ``root`` (or ``root`` as one split folder) and return its N
    samples: factors ``values`` (N, 10) float64 = the raw latents, ``load(indices)`` -> uint8
    (n, H, W, 3) decoded with Pillow (resized to ``size x size``, bilinear with antialiasing,
    when ``size`` is given). With ``cache_dir`` (and ``size``) every image is decoded once into
    an :class:`ImageCache` there (bicubic) and loads read its memory map. Raises
    :class:`FormatError` naming the file on any mismatch."""
    folder = split_folder(root, split)
    raw = _read_raw_latents(folder / RAW_LATENTS)
    n = len(raw)
    images = folder / IMAGES
    if not images.is_dir():
        raise FormatError(f"{images}: image folder missing")
    found = {e.name for e in os.scandir(images) if not e.name.startswith(".")}
    names = [image_name(i, n) for i in range(n)]
    absent, unexpected = set(names) - found, found - set(names)
    if absent or unexpected:
        raise FormatError(
            f"{images}: {len(found)} images for {n} rows of {folder / RAW_LATENTS}, named "
            f"0..{n - 1} zero-padded to {len(names[0]) - 4} digits (missing: "
            f"{_listed(str(images / a) for a in absent) or 'none'}; unexpected: "
            f"{_listed(unexpected) or 'none'})")
    latents = _load_npy(folder / LATENTS, mmap_mode="r")
    if latents.ndim != 2 or len(latents) != n:
        raise FormatError(f"{folder / LATENTS}: shape {latents.shape}, expected {n} rows like "
                          f"{folder / RAW_LATENTS}")
    paths = [images / name for name in names]
    if cache_dir is not None:
        if size is None:
            raise ValueError("read_3dident: cache_dir needs size (the cached image side)")
        cache = ImageCache.build(paths, size, cache_dir)
        return FactorDataset(FACTORS, raw, lambda indices: cache.array[np.asarray(indices)])

    def load(indices: np.ndarray) -> np.ndarray:
        """uint8 (len(indices), H, W, 3): the images of ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        decoded = [_decode(paths[i], size) for i in indices]
        if not decoded:
            return np.zeros((0, size or 0, size or 0, 3), np.uint8)
        for i, array in zip(indices, decoded, strict=True):
            if array.shape != decoded[0].shape:
                raise FormatError(f"{paths[i]}: {array.shape[1]}x{array.shape[0]} px, but "
                                  f"{paths[indices[0]]} is {decoded[0].shape[1]}x"
                                  f"{decoded[0].shape[0]} (pass size= to resize)")
        return np.stack(decoded)

    return FactorDataset(FACTORS, raw, load)


def _decode(path: Path, size: int | None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of ``path``, resized to (size, size) when ``size`` is given."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, ValueError) as error:
        raise FormatError(f"{path}: missing or unreadable image ({error})") from error
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)
