"""uint8 image cache: decode a list of images once into a memory-mapped ``.npy`` file.

:meth:`ImageCache.build` decodes every image with Pillow (converted to RGB, the shorter side
resized to ``size`` with bicubic resampling, then centre-cropped to ``size x size``) into an
array of shape (N, size, size, 3), uint8, stored as ``images_<size>_<key>.npy`` in ``cache_dir``
(``key``: hash of the ordered absolute paths), a :mod:`blockident.data.cache` entry: its
manifest records the size, the decoder, each image's size and modification time, and the bad
paths. A later build re-decodes only the images whose file changed (an edited frame, a repaired
bad one) into a copy of the array that then replaces it; a running process keeps the old one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from blockident.data import cache
from blockident.errors import DataError
from blockident.io import atomic_write

MAX_REPORTED = 10  # bad paths listed in a BadImageError message
DECODER = "pillow-rgb-bicubic-shorter-side-centre-crop"  # change it when load_image changes


class BadImageError(DataError):
    """Missing or unreadable image(s); ``paths`` lists all of them."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [str(p) for p in paths]
        shown = "\n  ".join(self.paths[:MAX_REPORTED])
        more = len(self.paths) - MAX_REPORTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{len(self.paths)} missing or unreadable image(s) (data.skip_bad_images=true leaves "
            f"out what uses them):\n  {shown}{tail}"
        )


def paths_hash(paths: Sequence[str | Path]) -> str:
    """sha256 hex digest of the ordered absolute paths."""
    h = hashlib.sha256()
    for p in paths:
        h.update(os.fspath(Path(p).absolute()).encode())
        h.update(b"\0")
    return h.hexdigest()


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Decode ``path`` to RGB, resize the shorter side to ``size``, centre-crop: (size, size, 3)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


class ImageCache:
    """N images as a read-only uint8 memmap ``array`` of shape (N, size, size, 3).

    ``bad``: index -> path of the images that could not be read (their rows are zeros).
    """

    def __init__(self, array: np.ndarray, paths: list[Path], bad: dict[int, str], file: Path):
        self.array = array
        self.paths = paths
        self.bad = bad
        self.file = file

    @property
    def size(self) -> int:
        return self.array.shape[1]

    def __len__(self) -> int:
        return self.array.shape[0]

    def batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, size, size) images at ``indices`` (read from the memmap, no decoding)."""
        if isinstance(indices, torch.Tensor):
            indices = indices.cpu().numpy()
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.ascontiguousarray(self.array[idx])
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

    @classmethod
    def build(cls, paths: Sequence[str | Path], size: int, cache_dir: str | Path,
              skip_bad: bool = False) -> ImageCache:
        """Decode ``paths`` once into ``cache_dir`` (or reuse a matching cache) and open it.

        Raises :class:`BadImageError` naming the missing/unreadable paths unless ``skip_bad``,
        in which case they are recorded in ``bad`` and filled with zeros.
        """
        paths = [Path(p) for p in paths]
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        settings = {"size": size, "decoder": DECODER, "paths_hash": paths_hash(paths)}
        npy = Path(cache_dir) / f"images_{size}_{settings['paths_hash'][:16]}.npy"
        stamps = [cache.stamp(p) for p in paths]  # before decoding: a later edit is seen later
        manifest = cache.read(npy, settings)
        if manifest is None:
            bad = _decode(paths, range(len(paths)), size, npy, None)
        else:
            stale = cache.changed(stamps, manifest["stamps"])
            bad = {int(i): p for i, p in manifest["bad"] if int(i) not in set(stale)}
            if stale:
                bad |= _decode(paths, stale, size, npy, npy)
        if manifest is None or stale:
            cache.write(npy, settings, stamps, bad=sorted(bad.items()))
        if bad and not skip_bad:
            raise BadImageError(list(bad.values()))
        return cls(np.load(npy, mmap_mode="r"), paths, bad, npy)


def _decode(paths: list[Path], rows: Sequence[int], size: int, npy: Path,
            previous: Path | None) -> dict[int, str]:
    """Decode ``paths[rows]`` into a new ``npy`` (a copy of ``previous`` when given, else
    zeros); returns the rows that could not be read, with their paths."""
    bad: dict[int, str] = {}

    def write(tmp: str) -> None:
        if previous is not None:
            shutil.copyfile(previous, tmp)
            arr = np.load(tmp, mmap_mode="r+")
        else:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                            shape=(len(paths), size, size, 3))
        for i in tqdm(rows, desc=f"caching images ({size}px)", unit="img"):
            try:
                arr[i] = load_image(paths[i], size)
            except Exception:  # missing, truncated or not an image: Pillow raises many types
                arr[i] = 0
                bad[i] = str(paths[i])
        arr.flush()
        del arr

    atomic_write(npy, write)
    return bad
