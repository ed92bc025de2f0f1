"""Generate a captioned stand-in in the RedCaps layout (read by :mod:`.format`).

Each image (``size`` x ``size`` RGB JPEG) shows one flat shape on a plain background. Factors:
``colour`` (6) and ``shape`` (5) of the object, which every caption names ("a photo of a red
star"), and ``background`` (5 colours), ``size`` (5 levels), ``pos_x`` and ``pos_y`` (the centre,
in [0, 1]), which no caption mentions. ``factors.json`` records every factor per instance, its
type and whether captions mention it, so readouts get kind ``content`` (mentioned) or ``style``.
Instances go to directories ``<subreddit>_<year>_<id>`` at random. The set is written under a
temporary name and renamed to ``OUT`` when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from blockident.data.captions.format import FACTORS_FILE
from blockident.errors import ConfigError, ExistsError

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220),
           "yellow": (235, 215, 20), "purple": (140, 40, 170), "orange": (245, 130, 20)}
SHAPES = ("square", "circle", "triangle", "cross", "diamond")
BACKGROUNDS = {"black": (15, 15, 15), "white": (240, 240, 240), "grey": (128, 128, 128),
               "sand": (200, 180, 140), "teal": (40, 110, 110)}
SIZES = (0.12, 0.16, 0.2, 0.24, 0.28)  # half-width of the shape, share of the image side
TEMPLATES = ("a {c} {s}", "a photo of a {c} {s}", "my {c} {s}", "look at this {c} {s}!",
             "{c} {s} i found today", "the {s} is {c}", "a simple {c} {s}",
             "{s}, {c}, nothing else")
SUBREDDITS = ("pics", "itookapicture", "mildlyinteresting")
YEARS = (2019, 2020)
SHARDS = 2  # directories per subreddit and year


def shape_mask(shape: str, side: int, cx: float, cy: float, half: float) -> np.ndarray:
    """(side, side) bool: ``shape`` of half-width ``half`` centred at (cx, cy), all in pixels."""
    y, x = np.mgrid[0:side, 0:side] + 0.5
    u, v = (x - cx) / half, (y - cy) / half
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.85
    if shape == "circle":
        return u ** 2 + v ** 2 <= 1
    if shape == "triangle":
        return (v <= 0.8) & (v >= 2 * abs(u) - 1.2)
    if shape == "cross":
        return (np.minimum(abs(u), abs(v)) <= 0.3) & (np.maximum(abs(u), abs(v)) <= 1)
    if shape == "diamond":
        return abs(u) + abs(v) <= 1
    raise ValueError(f"unknown shape {shape!r}")


def render(colour: int, shape: int, background: int, size: int, pos: tuple[float, float],
           side: int) -> np.ndarray:
    """(side, side, 3) uint8 image of one instance (class indices into the tables above)."""
    image = np.empty((side, side, 3), np.uint8)
    image[:] = list(BACKGROUNDS.values())[background]
    half = SIZES[size] * side
    mask = shape_mask(SHAPES[shape], side, pos[0] * side, pos[1] * side, half)
    image[mask] = list(COLOURS.values())[colour]
    return image


def _factors_record(keys, values) -> dict:
    classes = {"colour": list(COLOURS), "shape": list(SHAPES), "background": list(BACKGROUNDS),
               "size": [str(s) for s in SIZES]}
    factors = {name: {"type": "categorical", "mentioned": name in ("colour", "shape"),
                      "classes": classes[name]} for name in classes}
    factors |= {name: {"type": "continuous", "mentioned": False} for name in ("pos_x", "pos_y")}
    return {"factors": factors, "keys": keys, "values": values.tolist()}


def generate_captions(out: Path | str, n: int = 3000, side: int = 64, seed: int = 0) -> Path:
    """Write ``n`` instances to the new folder ``out`` (see the module docstring)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExistsError(f"{out}: exists and is not empty")
    if n < 1 or side < 16:
        raise ConfigError(f"need n >= 1 and side >= 16, got n={n}, side={side}")
    rng = np.random.default_rng(seed)
    colour, shape = rng.integers(len(COLOURS), size=n), rng.integers(len(SHAPES), size=n)
    background, size = rng.integers(len(BACKGROUNDS), size=n), rng.integers(len(SIZES), size=n)
    margin = max(SIZES) + 0.02
    pos = rng.uniform(margin, 1 - margin, size=(n, 2))
    template = rng.integers(len(TEMPLATES), size=n)
    directories = [f"{s}_{y}_{k}" for s in SUBREDDITS for y in YEARS for k in range(SHARDS)]
    directory = rng.integers(len(directories), size=n)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    keys = []
    try:
        for i in range(n):
            folder = tmp / directories[directory[i]]
            folder.mkdir(parents=True, exist_ok=True)
            instance = f"{i:06d}"
            Image.fromarray(render(colour[i], shape[i], background[i], size[i], pos[i], side)
                            ).save(folder / f"{instance}.jpg", quality=95)
            caption = TEMPLATES[template[i]].format(c=list(COLOURS)[colour[i]],
                                                    s=SHAPES[shape[i]])
            (folder / f"{instance}.json").write_text(json.dumps({
                "caption": caption, "subreddit": directories[directory[i]].rsplit("_", 2)[0]}))
            keys.append([directories[directory[i]], instance])
        values = np.column_stack([colour, shape, background, size, pos]).astype(float)
        (tmp / FACTORS_FILE).write_text(json.dumps(_factors_record(keys, values)))
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="blockident prepare captions", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to create")
    parser.add_argument("--n", type=int, default=3000, help="instances (default 3000)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        generate_captions(args.out, args.n, args.size, args.seed)
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    print(f"{args.out}: {args.n} captioned images of {args.size}x{args.size} px "
          f"({time.perf_counter() - start:.1f} s)")
    return 0
