"""Generate a dSprites stand-in in the official npz layout (read by :mod:`.format`).

Same keys (``imgs``, ``latents_values``, ``latents_classes``; no ``metadata``), same latent grid
and row-major order: color 1 (value 1), shape 3 (square, ellipse, heart; values 1, 2, 3), scale
``linspace(0.5, 1, 6)``, orientation ``linspace(0, 2*pi, 40)``, posX and posY
``linspace(0, 1, 32)``. Images are 64x64 binary sprites drawn with numpy: the 3*6*40 = 720 base
sprites are rendered once in a 33x33 box and placed by integer shifts (posX moves along columns,
posY along rows, one pixel per grid step). The npz is deflated at level 1 (fast; the official one
is smaller). The official images cannot be regenerated pixel-exactly; the shapes, sizes and
positions only resemble them.
"""

from __future__ import annotations

import argparse
import time
import zipfile
from pathlib import Path

import numpy as np

from blockident.data.dsprites.format import FILENAME, IMAGE_SIZE
from blockident.io import atomic_write

GRID = (np.array([1.0]), np.array([1.0, 2.0, 3.0]), np.linspace(0.5, 1, 6),
        np.linspace(0, 2 * np.pi, 40), np.linspace(0, 1, 32), np.linspace(0, 1, 32))
SIZES = tuple(len(g) for g in GRID)
BOX = 33  # side of the box a base sprite is drawn in, pixels


def base_sprites() -> np.ndarray:
    """(3, 6, 40, BOX, BOX) bool: each shape at each scale and orientation, centred in the box."""
    half = BOX // 2
    v, u = np.mgrid[-half:half + 1, -half:half + 1] / half  # rows, columns in [-1, 1]
    scale = GRID[2][:, None, None, None]
    angle = GRID[3][None, :, None, None]
    x = (np.cos(angle) * u + np.sin(angle) * v) / scale  # rotate the sampling grid by -angle
    y = (-np.sin(angle) * u + np.cos(angle) * v) / scale
    square = np.maximum(np.abs(x), np.abs(y)) <= 0.68
    ellipse = (x / 0.95) ** 2 + (y / 0.5) ** 2 <= 1
    hx, hy = x * 1.4, -y * 1.4 + 0.15  # heart (x^2 + y^2 - 1)^3 <= x^2 y^3, lobes up
    heart = (hx ** 2 + hy ** 2 - 1) ** 3 - hx ** 2 * hy ** 3 <= 0
    return np.stack([square, ellipse, heart])


def _placed(sprite: np.ndarray) -> np.ndarray:
    """(32 * 32, 64, 64) uint8 0/1: ``sprite`` at every (posX, posY), posY fastest."""
    offsets = np.round(GRID[4] * (IMAGE_SIZE - BOX)).astype(int)
    columns = np.zeros((SIZES[4], BOX, IMAGE_SIZE), np.uint8)
    for i, x in enumerate(offsets):
        columns[i, :, x:x + BOX] = sprite
    out = np.zeros((SIZES[4], SIZES[5], IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for j, y in enumerate(offsets):
        out[:, j, y:y + BOX, :] = columns
    return out.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def generate_dsprites(path: Path | str, subsample: int | None = None, seed: int = 0) -> Path:
    """Write the stand-in npz to ``path`` (a ``.npz`` file, else a folder for :data:`FILENAME`).

    ``subsample=n`` keeps a random subset of ``n`` grid rows (drawn with ``seed``, kept in
    row-major order); by default the full grid of 737,280 rows. Images are rendered and written
    one base sprite (1,024 rows) at a time, so memory stays small. Returns the file written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path / FILENAME
    total = int(np.prod(SIZES))
    if subsample is None:
        rows = np.arange(total)
    elif not 0 < subsample <= total:
        raise ValueError(f"subsample must be in 1..{total}, got {subsample}")
    else:
        rows = np.sort(np.random.default_rng(seed).choice(total, subsample, replace=False))
    classes = np.stack(np.unravel_index(rows, SIZES), axis=1).astype(np.int64)
    values = np.stack([grid[c] for grid, c in zip(GRID, classes.T, strict=True)], axis=1)
    sprites = base_sprites().reshape(-1, BOX, BOX)
    per_sprite = SIZES[4] * SIZES[5]
    starts = np.searchsorted(rows, np.arange(len(sprites) + 1) * per_sprite)

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            with archive.open("imgs.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, {
                    "descr": "|u1", "fortran_order": False,
                    "shape": (len(rows), IMAGE_SIZE, IMAGE_SIZE)})
                for b, sprite in enumerate(sprites):
                    local = rows[starts[b]:starts[b + 1]] - b * per_sprite
                    if len(local):
                        f.write(np.ascontiguousarray(_placed(sprite)[local]).data)
            for key, array in (("latents_classes", classes), ("latents_values", values)):
                with archive.open(f"{key}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, array, allow_pickle=False)

    return atomic_write(path, write)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="blockident prepare dsprites", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help=f"npz file to write, or a folder for {FILENAME}")
    parser.add_argument("--subsample", type=int, default=None,
                        help="keep this many random rows of the grid (default: all 737,280)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsample")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        file = generate_dsprites(args.out, args.subsample, args.seed)
    except ValueError as error:
        parser.error(str(error))
    print(f"{file}: {args.subsample or int(np.prod(SIZES))} images of {IMAGE_SIZE}x{IMAGE_SIZE} "
          f"px, {file.stat().st_size / 1e6:.1f} MB (wrote in {time.perf_counter() - start:.1f} s)")
    return 0
