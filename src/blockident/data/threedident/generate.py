"""A 3DIdent stand-in in the published layout, rendered with numpy (no Blender, no GL).

Each image shows a striped ellipsoid (semi-axes 2.2, 1.4, 0.9; a pale cap at its -z end, which
faces the camera at rest, so that the sign of every rotation shows) ray-traced analytically in
front of a plain background, seen by a pinhole camera at the origin looking along +z. The ten
raw latents, uniform in [-1, 1], drive:

- ``pos_x``, ``pos_y``: the object's centre right / up in the image;
- ``pos_z``: its depth (further away looks smaller);
- ``rot_alpha``, ``rot_beta``, ``rot_gamma``: Euler angles about x, y, z (R = Rz Ry Rx, as
  Blender's XYZ order);
- ``spotlight_pos``: the direction of the diffuse light, from the left over the top to the right;
- ``object_hue``, ``spotlight_hue``, ``background_hue``: hues (saturation 1, 0.8, 0.6) of the
  object, of the light that tints its lit side, and of the background.

``latents.npy`` holds the raw latents in the renderer's units, as cl-ica's non-periodic 3DIdent
generator maps them: positions x 3, angles x pi/2 (radians; a hue angle h is the hue h / 2pi).
Every split is written into a temporary folder and renamed when complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from blockident.data.threedident.format import FACTORS, IMAGES, LATENTS, RAW_LATENTS, image_name
from blockident.errors import ConfigError, ExistsError

AXES = np.array([2.2, 1.4, 0.9])  # semi-axes of the ellipsoid
DEPTH = 10.0  # camera-to-object distance at pos_z = 0
SHIFT = 0.7  # shift of the object's centre per unit of position
TAN_HALF_FOV = 0.5
AMBIENT, DIFFUSE = 0.3, 0.8
SUPERSAMPLE = 2  # rays per pixel side, averaged (antialiasing)
BATCH_RAYS = 1 << 20  # rays traced at once


def to_physical(raw: np.ndarray) -> np.ndarray:
    """(N, 10) raw latents in [-1, 1] -> the renderer's units: positions x 3, angles x pi/2."""
    scale = np.where(np.arange(len(FACTORS)) < 3, 3.0, np.pi / 2)
    return (raw * scale).astype(raw.dtype)


def _hsv_to_rgb(hue: np.ndarray, saturation: float) -> np.ndarray:
    """(...,) hues in turns, value 1 -> (..., 3) RGB in [0, 1]."""
    k = (np.array([5.0, 3.0, 1.0], np.float32) + 6 * hue[..., None]) % 6
    return 1 - saturation * np.clip(np.minimum(k, 4 - k), 0, 1)


def _rotations(alpha: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """(B, 3, 3) rotations Rz(gamma) Ry(beta) Rx(alpha)."""
    ca, sa, cb, sb, cg, sg = (f(x) for x in (alpha, beta, gamma) for f in (np.cos, np.sin))
    zero, one = np.zeros_like(alpha), np.ones_like(alpha)
    rx = np.stack([one, zero, zero, zero, ca, -sa, zero, sa, ca], -1).reshape(-1, 3, 3)
    ry = np.stack([cb, zero, sb, zero, one, zero, -sb, zero, cb], -1).reshape(-1, 3, 3)
    rz = np.stack([cg, -sg, zero, sg, cg, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def _render_batch(latents: np.ndarray, side: int) -> np.ndarray:
    """(B, 10) latents in physical units -> float32 (B, side, side, 3) in [0, 1], a ray a pixel."""
    latents = latents.astype(np.float32)
    grid = (np.arange(side, dtype=np.float32) + 0.5) / side * 2 - 1
    v, u = np.meshgrid(grid, grid, indexing="ij")  # row 0 is the top of the image
    rays = np.stack([u * TAN_HALF_FOV, -v * TAN_HALF_FOV, np.ones_like(u)], -1).reshape(-1, 3)
    centre = np.stack([SHIFT * latents[:, 0], SHIFT * latents[:, 1], DEPTH + latents[:, 2]], -1)
    rot = _rotations(latents[:, 3], latents[:, 4], latents[:, 5])
    axes = AXES.astype(np.float32)
    # in the object frame scaled to the unit sphere: origin o (B, 3), directions d (B, P, 3)
    o = (-centre[:, None] @ rot)[:, 0] / axes
    d = (rays @ rot) / axes
    a = (d * d).sum(-1)
    b = 2 * (d @ o[..., None])[..., 0]
    disc = b * b - 4 * a * ((o * o).sum(-1, keepdims=True) - 1)
    image = np.repeat(_hsv_to_rgb(latents[:, 9] / (2 * np.pi), 0.6)[:, None], len(rays), 1)
    k, r = np.nonzero(disc > 0)  # image and ray of every hit
    t = (-b[k, r] - np.sqrt(disc[k, r])) / (2 * a[k, r])
    p = o[k] + t[:, None] * d[k, r]  # hit points on the unit sphere (H, 3)
    normal = (rot[k] @ (p / axes)[:, :, None])[:, :, 0]
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    theta = latents[k, 6]
    light = np.stack([np.sin(theta), np.cos(theta), -np.ones_like(theta)], -1) * 0.5**0.5
    lambert = np.maximum((normal * light).sum(-1), 0)[:, None]
    stripes = np.where(np.sin(5 * np.pi * p[:, :1]) > 0, 1.0, 0.55)
    albedo = _hsv_to_rgb(latents[k, 7] / (2 * np.pi), 1.0)
    albedo = np.where(p[:, 2:] < -0.8, 0.5 + 0.5 * albedo, albedo * stripes)
    tint = _hsv_to_rgb(latents[k, 8] / (2 * np.pi), 0.8)
    image[k, r] = np.clip(albedo * (AMBIENT + DIFFUSE * lambert * tint), 0, 1)
    return image.reshape(len(latents), side, side, 3)


def render(latents: np.ndarray, size: int) -> np.ndarray:
    """(N, 10) latents in physical units (:func:`to_physical`) -> uint8 (N, size, size, 3)."""
    side = size * SUPERSAMPLE
    batch = max(1, BATCH_RAYS // side**2)
    out = np.empty((len(latents), size, size, 3), np.uint8)
    for start in range(0, len(latents), batch):
        part = _render_batch(latents[start:start + batch], side)
        part = part.reshape(len(part), size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean((2, 4))
        out[start:start + batch] = np.round(part * 255)
    return out


def _write_split(folder: Path, raw: np.ndarray, size: int, overwrite: bool) -> None:
    """Render and write one split into a temporary folder, then rename it to ``folder``."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes the folder private
        (tmp / IMAGES).mkdir()
        physical = to_physical(raw)
        np.save(tmp / RAW_LATENTS, raw)
        np.save(tmp / LATENTS, physical)
        images = render(physical, size)
        for i, image in enumerate(images):
            Image.fromarray(image).save(tmp / IMAGES / image_name(i, len(raw)))
        if overwrite and folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def generate_3dident(root: str | Path, n_train: int, n_test: int, size: int = 64, seed: int = 0,
                     overwrite: bool = False) -> Path:
    """Write ``root/train`` (``n_train`` samples) and ``root/test`` (``n_test``; none when 0)
    in the 3DIdent layout with ``size x size`` images; returns ``root``. Latents are uniform in
    [-1, 1] (float32), drawn from ``seed`` and the split. Existing splits raise
    :class:`FileExistsError` unless ``overwrite``."""
    if n_train < 1 or n_test < 0 or size < 1 or seed < 0:
        raise ConfigError(f"need n_train >= 1, n_test >= 0, size >= 1, seed >= 0; got {n_train}, "
                          f"{n_test}, {size}, {seed}")
    root = Path(root)
    splits = {"train": n_train, "test": n_test} if n_test else {"train": n_train}
    existing = [root / s for s in splits if (root / s).exists()]
    if existing and not overwrite:
        raise ExistsError(f"{', '.join(map(str, existing))} already exist(s); pass --overwrite")
    root.mkdir(parents=True, exist_ok=True)
    for k, (split, n) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, k])
        raw = rng.uniform(-1, 1, (n, len(FACTORS))).astype(np.float32)
        _write_split(root / split, raw, size, overwrite)
    return root


def main(argv: list[str]) -> int:
    """``blockident prepare 3dident OUT [--train N] [--test N] [--size 64] [--seed 0]``."""
    parser = argparse.ArgumentParser(
        prog="blockident prepare 3dident", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, help="folder for train/ and test/")
    parser.add_argument("--train", type=int, default=10000, help="training samples")
    parser.add_argument("--test", type=int, default=1000, help="test samples (0: none)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed (>= 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing splits")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        generate_3dident(args.out_dir, args.train, args.test, args.size, args.seed,
                         args.overwrite)
    except ConfigError as error:
        parser.error(str(error))
    seconds = time.perf_counter() - start
    n = args.train + args.test
    for split, count in (("train", args.train), ("test", args.test)):
        if count:
            print(f"{args.out_dir / split}: {count} images of {args.size}x{args.size} px")
    print(f"wrote {n} images in {seconds:.1f} s ({n / seconds:.0f} images/s)")
    return 0
