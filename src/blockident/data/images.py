"""uint8 image cache: decode a list of images once into a memory-mapped ``.npy`` file.

:meth:`ImageCache.build` decodes every image with Pillow (converted to RGB, the shorter side
resized to ``size`` with bicubic resampling, then centre-cropped to ``size x size``) into an
array of shape (N, size, size, 3), uint8, stored as ``images_<size>_<key>.npy`` in ``cache_dir``
next to a JSON manifest ``images_<size>_<key>.json`` (size, number of images, hash of the ordered
path list, bad paths). ``key`` is the hash of the ordered (absolute) paths, so a later build with
the same size and paths reuses the files without decoding; another size or path list builds a
new cache. Both files are written atomically (temporary name, then rename), the manifest last.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from blockident.errors import DataError
from blockident.io import atomic_write, atomic_write_text

MAX_REPORTED = 10  # bad paths listed in a BadImageError message


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
        digest = paths_hash(paths)
        cache_dir = Path(cache_dir)
        stem = f"images_{size}_{digest[:16]}"
        npy, manifest_file = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"

        manifest = _read_manifest(manifest_file)
        if not (manifest and npy.exists() and manifest.get("size") == size
                and manifest.get("n") == len(paths) and manifest.get("paths_hash") == digest):
            manifest = _decode_all(paths, size, digest, npy, manifest_file, skip_bad)
        bad = {int(i): p for i, p in manifest["bad"]}
        if bad and not skip_bad:
            raise BadImageError(list(bad.values()))
        array = np.load(npy, mmap_mode="r")
        return cls(array, paths, bad, npy)


def _read_manifest(file: Path) -> dict | None:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return None


def _decode_all(paths: list[Path], size: int, digest: str, npy: Path, manifest_file: Path,
                skip_bad: bool) -> dict:
    bad: list[tuple[int, str]] = []

    def write(tmp: str) -> None:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                        shape=(len(paths), size, size, 3))
        for i, p in enumerate(tqdm(paths, desc=f"caching images ({size}px)", unit="img")):
            try:
                arr[i] = load_image(p, size)
            except Exception:  # missing, truncated or not an image: Pillow raises many types
                arr[i] = 0
                bad.append((i, str(p)))
        if bad and not skip_bad:
            raise BadImageError([p for _, p in bad])
        arr.flush()
        del arr

    atomic_write(npy, write)
    manifest = {"size": size, "n": len(paths), "paths_hash": digest, "bad": bad}
    atomic_write_text(manifest_file, json.dumps(manifest, indent=1))
    return manifest
