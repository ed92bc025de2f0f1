"""A CLEVR-with-masks stand-in in the public TFRecord format (read by :mod:`.format`).

``blockident prepare clevr OUT [--scenes N] [--seed S]`` writes
``OUT/clevr_with_masks_train.tfrecords`` (atomically) at the real 240x320 resolution. Each scene
is drawn with numpy (no renderer): a grey floor with a vertical gradient and 3-6 objects, each
one of 8 colours x 3 shapes (cube: a rotated square, sphere: a disc, cylinder: a rectangle with
elliptical caps) x 2 sizes x 2 materials (metal: darker with a white specular highlight; rubber:
matte, a soft diffuse gradient). Objects stand on the ground plane: ``x`` (left/right) and ``y``
(far -3 .. near +3) in [-3, 3], ``z`` their half height (0.7 large, 0.35 small), ``rotation`` in
degrees (visible on cubes only). A nearer object is larger, lower in the image and drawn later,
so it occludes the ones behind it; masks hold the visible pixels, and an object hidden entirely
has ``visibility`` 0 (the background, entity 0, has 1). ``pixel_coords`` are (column, row,
depth). Objects are placed inside the standard crop (rows 29:221, columns 64:256), so that they
survive it; a small far object still has a radius of 11 px (3.7 px after resizing to 64).

Scene i is drawn from ``SeedSequence([seed, i])``, so a file is the same for the same seed, and
the first n scenes do not depend on the scene count.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from blockident.data.clevr.format import (
    FILENAME,
    HEIGHT,
    MAX_OBJECTS,
    WIDTH,
    write_tfrecords,
)
from blockident.errors import ConfigError
from blockident.io import atomic_write_text

DEFAULT_SCENES = 2000
RECORD_FORMAT = "blockident-clevr-stand-in"
# CLEVR's colours (RGB), in the order of the codes 1..8 (format.COLORS)
RGB = np.array([[87, 87, 87], [173, 35, 35], [42, 75, 215], [29, 105, 20], [129, 74, 25],
                [129, 38, 192], [41, 208, 208], [255, 238, 51]], np.float32)
RADIUS = {1: 30.0, 2: 16.0}  # pixels at scale 1, by size code (1 large, 2 small)
HALF_HEIGHT = {1: 0.7, 2: 0.35}  # z by size code
MIN_OBJECTS, MAX_SCENE_OBJECTS = 3, 6


def _floor() -> np.ndarray:
    """(H, W, 3) float32 grey floor: lighter at the top (far), a slight vignette at the sides."""
    rows = np.linspace(150.0, 105.0, HEIGHT, dtype=np.float32)[:, None]
    cols = 1 - 0.12 * np.linspace(-1.0, 1.0, WIDTH, dtype=np.float32)[None, :] ** 2
    grey = rows * cols
    return np.repeat(grey[:, :, None], 3, axis=2) * np.array([1.0, 1.0, 1.03], np.float32)


FLOOR = _floor()


def _project(x: float, y: float, size: int) -> tuple[float, float, float, float]:
    """(column, row, depth, radius in pixels) of an object at ground position (x, y)."""
    near = (y + 3) / 6  # 0 far .. 1 near
    scale = 0.7 + 0.6 * near
    radius = RADIUS[size] * scale
    row = 80 + 115 * near - 0.5 * radius
    col = 160 + x / 3 * (92 - radius)  # the whole object inside the crop's columns 64:256
    return col, row, 12 - 1.5 * y, radius


def _inside(shape: int, u: np.ndarray, v: np.ndarray, angle: float) -> np.ndarray:
    """Pixels of a shape in coordinates (u, v) scaled by its radius."""
    if shape == 1:  # cube: a square rotated by ``angle``
        c, s = np.cos(angle), np.sin(angle)
        return np.maximum(np.abs(c * u + s * v), np.abs(-s * u + c * v)) <= 0.78
    if shape == 2:  # sphere
        return u * u + v * v <= 1
    # cylinder: a rectangle with elliptical caps at the top and the bottom
    body = (np.abs(u) <= 0.8) & (np.abs(v) <= 0.65)
    caps = (u / 0.8) ** 2 + ((np.abs(v) - 0.65) / 0.3) ** 2 <= 1
    return body | caps


def _shade(rgb: np.ndarray, material: int, shape: int, u: np.ndarray, v: np.ndarray
           ) -> np.ndarray:
    """(h, w, 3) colours of an object's pixels: matte rubber or shiny metal."""
    light = np.clip(-(u + v) / 1.6, -1, 1)  # lit from the top left
    if material == 1:  # rubber: a soft diffuse gradient
        out = rgb * (0.82 + 0.18 * light)[..., None]
    else:  # metal: darker body, strong gradient and a white specular highlight
        spec = np.exp(-((u + 0.35) ** 2 + (v + 0.4) ** 2) / 0.025)
        out = rgb * (0.55 + 0.35 * light)[..., None] + 230 * spec[..., None]
    if shape == 3:  # the top cap of a cylinder is lighter
        out = np.where(((u / 0.8) ** 2 + ((v + 0.65) / 0.3) ** 2 <= 1)[..., None],
                       out * 1.15 + 10, out)
    return out


def render_scene(seed: int, index: int) -> dict[str, np.ndarray]:
    """Scene ``index`` of ``seed`` with every feature of the format (see the module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    n = int(rng.integers(MIN_OBJECTS, MAX_SCENE_OBJECTS + 1))
    codes = {"color": rng.integers(1, 9, n), "shape": rng.integers(1, 4, n),
             "material": rng.integers(1, 3, n), "size": rng.integers(1, 3, n)}
    rotation = rng.uniform(0, 360, n)
    placed: list[tuple[float, float, float]] = []  # (column, row, radius) of placed objects
    ground = np.zeros((n, 2))
    for k in range(n):  # ground positions, centres apart (rejection, then give up)
        for _ in range(50):
            x, y = rng.uniform(-3, 3, 2)
            col, row, _, radius = _project(x, y, int(codes["size"][k]))
            if all((col - c) ** 2 + (row - r) ** 2 > (0.55 * (radius + q)) ** 2
                   for c, r, q in placed):
                break
        placed.append((col, row, radius))
        ground[k] = x, y

    image = FLOOR.copy()
    ids = np.zeros((HEIGHT, WIDTH), np.uint8)
    features = {name: np.zeros(MAX_OBJECTS, np.uint8) for name in codes}
    floats = {name: np.zeros(MAX_OBJECTS, np.float32)
              for name in ("x", "y", "z", "rotation", "visibility")}
    pixel_coords = np.zeros((MAX_OBJECTS, 3), np.float32)
    for k in np.argsort(ground[:, 1], kind="stable"):  # far (small y) first
        entity = k + 1
        x, y = ground[k]
        size, shape = int(codes["size"][k]), int(codes["shape"][k])
        col, row, depth, radius = _project(x, y, size)
        r0, r1 = max(int(row - radius) - 1, 0), min(int(row + radius) + 2, HEIGHT)
        c0, c1 = max(int(col - radius) - 1, 0), min(int(col + radius) + 2, WIDTH)
        v = (np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5 - row) / radius
        u = (np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5 - col) / radius
        u, v = np.broadcast_arrays(u, v)
        inside = _inside(shape, u, v, np.deg2rad(rotation[k]))
        colour = _shade(RGB[codes["color"][k] - 1], int(codes["material"][k]), shape, u, v)
        image[r0:r1, c0:c1][inside] = colour[inside]
        ids[r0:r1, c0:c1][inside] = entity
        for name in codes:
            features[name][entity] = codes[name][k]
        floats["x"][entity], floats["y"][entity] = x, y
        floats["z"][entity], floats["rotation"][entity] = HALF_HEIGHT[size], rotation[k]
        pixel_coords[entity] = col, row, depth
    present = np.bincount(ids.reshape(-1), minlength=MAX_OBJECTS) > 0
    floats["visibility"][:n + 1] = present[:n + 1]
    masks = (ids[None] == np.arange(MAX_OBJECTS, dtype=np.uint8)[:, None, None]) * np.uint8(255)
    return {"image": np.clip(image, 0, 255).astype(np.uint8), "mask": masks[..., None],
            **features, **floats, "pixel_coords": pixel_coords}


def scenes(count: int, seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Scenes 0..count-1 of ``seed``."""
    for index in range(count):
        yield render_scene(seed, index)


def generate_clevr(out: Path | str, scenes_count: int = DEFAULT_SCENES, seed: int = 0) -> Path:
    """Write ``scenes_count`` scenes to ``out`` (a ``.tfrecords`` file, else a folder for
    :data:`FILENAME`), atomically; returns the file."""
    if scenes_count < 1 or seed < 0:
        raise ConfigError(f"need scenes >= 1 and seed >= 0, got {scenes_count} and {seed}")
    out = Path(out)
    if out.suffix != ".tfrecords":
        out = out / FILENAME
    write_tfrecords(out, scenes(scenes_count, seed))
    atomic_write_text(record_path(out), json.dumps({"format": RECORD_FORMAT,
                                                    "scenes": scenes_count, "seed": seed}))
    return out


def record_path(file: Path) -> Path:
    """The generator's record beside a generated ``file``: what it holds (scenes, seed)."""
    return file.with_name(file.name + ".generated.json")


def generated_as(file: Path) -> dict | None:
    """``{"scenes": n, "seed": s}`` of a stand-in the generator wrote; None for other files
    (the real data set)."""
    try:
        doc = json.loads(record_path(file).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == RECORD_FORMAT else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="blockident prepare clevr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help=f"folder for {FILENAME} (or a .tfrecords file)")
    parser.add_argument("--scenes", type=int, default=DEFAULT_SCENES, help="number of scenes")
    parser.add_argument("--seed", type=int, default=0, help="random seed (>= 0)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        file = generate_clevr(args.out, args.scenes, args.seed)
    except ConfigError as error:
        parser.error(str(error))
    seconds = time.perf_counter() - start
    print(f"{file}: {args.scenes} scenes of {WIDTH}x{HEIGHT} px, "
          f"{file.stat().st_size / 1e6:.1f} MB (wrote in {seconds:.1f} s, "
          f"{args.scenes / seconds:.0f} scenes/s)")
    return 0
