"""Read the public dSprites file (``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``).

The npz holds ``imgs`` (N, 64, 64) uint8 with values 0/1, ``latents_values`` (N, 6) float64 and
``latents_classes`` (N, 6) int64, factors in the order of :data:`FACTORS`; the official file holds
the full 1x3x6x40x32x32 grid (N = 737,280) in row-major order. ``metadata`` is a pickled dict and
is never read. A file with fewer rows (a subsample of the grid, any order) is accepted too.

``imgs`` is 2.9 GB uncompressed, so it is read lazily: the first call of the loader extracts the
``imgs.npy`` member once to a cache file (``<npz name>.imgs.npy`` beside the npz, or in
``cache_dir``) and memory-maps it; later reads reuse it while the npz keeps its size and
modification time (:mod:`blockident.data.cache`).
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blockident.data import cache
from blockident.data.factors import FactorDataset
from blockident.errors import DataError, MissingError
from blockident.io import atomic_write

FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
FACTORS = ("color", "shape", "scale", "orientation", "posX", "posY")
IMAGE_SIZE = 64


@dataclass(eq=False)
class DSprites:
    """A read dSprites file.

    ``data``: the factor dataset (grids, ``shape`` categorical, ``orientation`` periodic 2*pi;
    a subsample lacking some class of a factor has only the values present in that grid);
    ``classes`` (N, 6) int64: each row's class index per factor; ``sizes`` (6,): classes per
    factor; ``rows``: int64 array of shape ``sizes`` holding the row of each class tuple, -1 where
    the file lacks it (see :func:`grid_rows`).
    """

    data: FactorDataset
    classes: np.ndarray
    sizes: tuple[int, ...]
    rows: np.ndarray

    def row_of(self, classes: np.ndarray) -> np.ndarray:
        """(n,) int64 rows holding the class tuples ``classes`` (n, 6); -1 where absent."""
        return self.rows[tuple(np.asarray(classes, dtype=np.int64).T)]


def grid_rows(dataset_classes: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
    """int64 array of shape ``sizes``: the row of ``dataset_classes`` (N, F) per class tuple, or -1.

    Raises ValueError if a class is out of range or two rows share a class tuple.
    """
    classes = np.asarray(dataset_classes, dtype=np.int64)
    if np.any(classes < 0) or np.any(classes >= np.asarray(sizes)):
        raise DataError(f"class indices outside the grid {tuple(sizes)}")
    rows = np.full(sizes, -1, dtype=np.int64)
    flat = np.ravel_multi_index(tuple(classes.T), sizes)
    rows.reshape(-1)[flat] = np.arange(len(classes))
    found = rows.reshape(-1)[flat]
    if np.any(found != np.arange(len(classes))):
        row = int(np.flatnonzero(found != np.arange(len(classes)))[0])
        raise DataError(f"rows {row} and {int(found[row])} have the same classes "
                        f"{classes[row].tolist()}")
    return rows


def find_file(path: Path | str) -> Path:
    """The npz file ``path``, or the single ``dsprites*.npz`` in the folder ``path``."""
    path = Path(path)
    if not path.is_dir():
        if not path.is_file():
            raise MissingError(f"{path}: no such dSprites file or folder")
        return path
    found = sorted(path.glob("dsprites*.npz"))
    if len(found) != 1:
        raise MissingError(f"{path}: expected one dsprites*.npz file, found "
                           f"{[p.name for p in found]}")
    return found[0]


def read_dsprites(path: Path | str, cache_dir: Path | str | None = None) -> DSprites:
    """Read and validate the dSprites npz ``path`` (or the folder holding it).

    Images are not read here; ``data.load(indices)`` returns uint8 (n, 64, 64, 1) with values
    0/255, extracting ``imgs`` to the cache on first use (see the module docstring). Raises
    ValueError naming the file and key for a missing key, a wrong shape or dtype, disagreeing row
    counts, a class index with two values, or a full-size file not in row-major order.
    """
    file = find_file(path)

    def fail(key: str, message: str) -> ValueError:
        return ValueError(f"{file}: {key}: {message}")

    if not zipfile.is_zipfile(file):
        raise DataError(f"{file}: not an npz (zip) archive")
    with np.load(file, allow_pickle=False) as npz:
        for key in ("imgs", "latents_values", "latents_classes"):
            if key not in npz.files:
                raise fail(key, f"missing (keys present: {npz.files})")
        values, classes = npz["latents_values"], npz["latents_classes"]
    for key, array, dtype in (("latents_values", values, np.float64),
                              ("latents_classes", classes, np.int64)):
        if array.ndim != 2 or array.shape[1] != len(FACTORS) or array.dtype != dtype:
            raise fail(key, f"expected (N, {len(FACTORS)}) {np.dtype(dtype)}, "
                            f"got {array.shape} {array.dtype}")
    shape, dtype = _member_header(file, "imgs.npy")
    if shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or len(shape) != 3 or dtype != np.uint8:
        raise fail("imgs", f"expected (N, {IMAGE_SIZE}, {IMAGE_SIZE}) uint8, got {shape} {dtype}")
    if not shape[0] == len(values) == len(classes):
        raise fail("imgs", f"row counts disagree: imgs {shape[0]}, latents_values "
                           f"{len(values)}, latents_classes {len(classes)}")
    if len(classes) == 0 or classes.min() < 0:
        raise fail("latents_classes", "no rows or a negative class index")

    sizes = tuple(int(s) for s in classes.max(axis=0) + 1)
    grids = {}
    for j, name in enumerate(FACTORS):
        grid = np.full(sizes[j], np.nan)
        grid[classes[:, j]] = values[:, j]
        clash = grid[classes[:, j]] != values[:, j]
        if np.any(clash):
            k = int(classes[np.argmax(clash), j])
            raise fail("latents_values", f"class {k} of factor {name!r} has two values "
                                         f"{sorted(set(values[classes[:, j] == k, j]))[:2]}")
        grid = grid[~np.isnan(grid)]  # a subsample may lack some classes
        if np.any(np.diff(grid) <= 0):
            raise fail("latents_values", f"values of factor {name!r} do not increase with "
                                         f"its class index: {grid.tolist()}")
        grids[name] = grid

    if len(classes) == np.prod(sizes):
        order = np.ravel_multi_index(tuple(classes.T), sizes)
        if np.any(order != np.arange(len(classes))):
            row = int(np.argmax(order != np.arange(len(classes))))
            raise fail("latents_classes", f"the full grid {sizes} is not in row-major order: "
                                          f"row {row} has classes {classes[row].tolist()}, "
                                          f"expected {list(np.unravel_index(row, sizes))}")
    try:
        rows = grid_rows(classes, sizes)
    except ValueError as error:
        raise fail("latents_classes", str(error)) from None

    folder = Path(cache_dir) if cache_dir is not None else file.parent
    data = FactorDataset(FACTORS, values, _ImageLoader(file, folder / f"{file.name}.imgs.npy"),
                         grids=grids, categorical=frozenset({"shape"}),
                         periodic={"orientation": 2 * np.pi})
    return DSprites(data, classes, sizes, rows)


def _member_header(file: Path, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the npy header of zip member ``member``, without reading the data."""
    with zipfile.ZipFile(file) as archive, archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise DataError(f"{file}: {member}: unsupported npy version {version}")
        shape, _, dtype = read(f)
    return shape, dtype


class _ImageLoader:
    """``loader(indices)`` -> uint8 (n, 64, 64, 1), 0/255, from a memory-mapped cache of imgs."""

    def __init__(self, file: Path, cache: Path):
        self.file, self.cache, self.imgs = file, cache, None

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        if self.imgs is None:
            self.imgs = np.load(self._extract(), mmap_mode="r")
        imgs = self.imgs[np.asarray(indices, dtype=np.int64)]
        if imgs.size and imgs.max() > 1:
            raise DataError(f"{self.file}: imgs: values must be 0/1, found {imgs.max()}")
        return (imgs * np.uint8(255))[..., None]

    def _extract(self) -> Path:
        """The extracted ``imgs.npy``: a :mod:`blockident.data.cache` entry keyed on the npz."""
        stamps = [cache.stamp(self.file)]
        entry = cache.read(self.cache, {"member": "imgs.npy"})
        if entry is not None and not cache.changed(stamps, entry["stamps"]):
            return self.cache
        with zipfile.ZipFile(self.file) as archive:

            def write(tmp: str) -> None:
                with archive.open("imgs.npy") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 24)

            atomic_write(self.cache, write)
        cache.write(self.cache, {"member": "imgs.npy"}, stamps)
        return self.cache
