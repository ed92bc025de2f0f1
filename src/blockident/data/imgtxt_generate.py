"""Stand-in for Multimodal3DIdent: ``blockident prepare imgtxt OUT_DIR``.

The real data set (Blender renders) cannot be downloaded here, so this draws the same kinds of
factors and writes them in exactly its layout (:mod:`blockident.data.multimodal3dident`), with
2D renders instead of 3D ones:

* image: one of 7 flat shapes (:data:`SHAPES`) centred in a cell of a 3 x 3 grid
  (``object_xpos`` column, ``object_ypos`` row, 0 = left / top), ``object_zpos`` = 0. The shape
  is tilted out of the image plane about its own vertical (``object_betarot``) and horizontal
  (``object_gammarot``) axis by up to 45 degrees (foreshortened and shaded by the tilt's sign),
  then rotated in the plane by ``object_alpharot`` mapped to [-90, 90] degrees. Object colour:
  hue ``object_color`` at full saturation and value. Background: hue
  ``(background_color - 1/2) / 2`` at saturation 0.6, value 0.4 (darker than every object).
  A spotlight on a semicircle above the scene (``spotlight_pos`` -> angle in [-90, 90] degrees)
  of hue ``(spotlight_color - 1/2) / 2`` lights the scene with a broad Gaussian falloff. The
  colour and spotlight mappings follow the original generator; every factor is uniform.
* text: one of 5 phrasings (``text_phrasing``) naming the shape, the position (``top-left``
  ... ``bottom-right``) and a colour word. The colour word is the one of 12 (:data:`COLORS`, hues
  k/12) nearest the object hue; with probability ``color_change_prob`` it is replaced by a
  uniformly drawn other colour word (the original instead names the colour in a randomly drawn
  palette): the caption's colour depends on the image's without determining it, i.e. style.
  ``object_color_index`` is the colour word's index, ``object_color_name`` the word.

Split ``train`` has ``samples`` samples, ``val`` and ``test`` ``eval_samples`` each. Everything
is a function of the config: the latents of split k are drawn from ``SeedSequence([seed, k])``
and images are rendered deterministically from them.
"""

from __future__ import annotations

import argparse
import colorsys
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from blockident.data.multimodal3dident import (
    CAPTIONS_FILE,
    IMAGES_DIR,
    LATENT_FILES,
    SPLITS,
    image_name,
)
from blockident.errors import ExistsError

SHAPES = ("circle", "triangle", "square", "star", "cross", "heart", "arrow")
XPOS_WORDS = ("left", "center", "right")
YPOS_WORDS = ("top", "middle", "bottom")
COLORS = ("red", "orange", "yellow", "lime", "green", "jade", "cyan", "azure", "blue", "violet",
          "magenta", "rose")  # colour word k names hue k / 12
PHRASINGS = (
    "A {color} {shape} is at the {ypos}-{xpos} of the image.",
    "The image shows a {shape} in {color} at the {ypos}-{xpos}.",
    "At the {ypos}-{xpos} there is a {color} {shape}.",
    "A {shape} colored {color} sits at the {ypos}-{xpos} of the picture.",
    "In the {ypos}-{xpos} of the scene we see a {color} object shaped like a {shape}.",
)
MAX_TILT = np.pi / 4  # out-of-plane tilt: foreshortening down to cos(45 deg) = 0.71
OBJECT_RADIUS = 0.15  # of the image side; a grid cell is 1/3 of it
SUPERSAMPLE = 4       # shapes are drawn at this multiple of the size, then box-filtered


@dataclass(frozen=True)
class GeneratorConfig:
    """``samples`` training samples, ``eval_samples`` (default ``samples // 10``, at least 1)
    each for ``val`` and ``test``, images of ``size`` x ``size`` pixels."""

    samples: int = 10_000
    eval_samples: int | None = None
    size: int = 64
    seed: int = 0
    color_change_prob: float = 0.5

    def __post_init__(self):
        if self.samples < 1 or (self.eval_samples is not None and self.eval_samples < 1):
            raise ValueError("every split needs at least one sample")
        if self.size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {self.size}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not 0.0 <= self.color_change_prob <= 1.0:
            raise ValueError(f"color_change_prob must lie in [0, 1], got {self.color_change_prob}")

    def split_sizes(self) -> dict[str, int]:
        n_eval = self.eval_samples if self.eval_samples is not None else max(1, self.samples // 10)
        return {"train": self.samples, "val": n_eval, "test": n_eval}


def _outline(shape: str) -> np.ndarray:
    """(P, 2) polygon of ``shape`` centred at 0 with largest radius 1 (x right, y down)."""
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    if shape == "circle":
        points = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == "triangle":
        a = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        points = np.stack([np.cos(a), np.sin(a)], 1)
    elif shape == "square":
        points = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    elif shape == "star":
        a = -np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        points = np.stack([r * np.cos(a), r * np.sin(a)], 1)
    elif shape == "cross":
        w = 0.33
        points = np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1],
                           [-w, w], [-1, w], [-1, -w], [-w, -w]])
    elif shape == "heart":
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        points = np.stack([x, y - 2.5], 1)
    elif shape == "arrow":
        points = np.array([[-1, -0.25], [0.1, -0.25], [0.1, -0.65], [1, 0], [0.1, 0.65],
                           [0.1, 0.25], [-1, 0.25]])
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return points / np.linalg.norm(points, axis=1).max()


OUTLINES = {shape: _outline(shape) for shape in SHAPES}


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value))


def render(latents: dict[str, float], size: int) -> np.ndarray:
    """uint8 (size, size, 3) image of one row of image latents (see the module docstring)."""
    centre = (np.array([latents["object_xpos"], latents["object_ypos"]]) + 0.5) * size / 3
    radius = OBJECT_RADIUS * size
    alpha = (latents["object_alpharot"] - 0.5) * np.pi
    tilt_x = (latents["object_betarot"] - 0.5) * 2 * MAX_TILT   # about the vertical axis
    tilt_y = (latents["object_gammarot"] - 0.5) * 2 * MAX_TILT  # about the horizontal axis
    rotation = np.array([[np.cos(alpha), -np.sin(alpha)], [np.sin(alpha), np.cos(alpha)]])
    foreshortening = np.array([np.cos(tilt_x), np.cos(tilt_y)])

    local = OUTLINES[SHAPES[int(latents["object_shape"])]] * foreshortening
    polygon = (local @ rotation.T * radius + centre) * SUPERSAMPLE
    canvas = Image.new("L", (size * SUPERSAMPLE,) * 2, 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in polygon], fill=255)
    mask = np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float64)[..., None] / 255.0

    pixels = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1) + 0.5  # (y, x, [x, y])
    u, v = np.moveaxis((pixels - centre) @ rotation / radius, -1, 0)  # object-local coordinates
    shading = np.clip(0.85 + 0.15 * (u * np.sin(tilt_x) + v * np.sin(tilt_y)) / np.sin(MAX_TILT),
                      0.7, 1.0)[..., None]
    obj = _hsv(latents["object_color"], 1.0, 1.0) * shading
    background = _hsv((latents["background_color"] - 0.5) / 2, 0.6, 0.4)
    scene = mask * obj + (1 - mask) * background

    angle = (latents["spotlight_pos"] - 0.5) * np.pi
    spot = size * np.array([0.5 + 0.5 * np.sin(angle), 0.5 - 0.5 * np.cos(angle)])
    falloff = np.exp(-((pixels - spot) ** 2).sum(-1) / (2 * (0.45 * size) ** 2))[..., None]
    light = 0.6 + 0.6 * falloff * _hsv((latents["spotlight_color"] - 0.5) / 2, 0.8, 1.0)
    return np.clip(np.rint(scene * light * 255), 0, 255).astype(np.uint8)


def sample_latents(n: int, rng: np.random.Generator,
                   color_change_prob: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(image latents, text latents) of ``n`` samples, columns as in Multimodal3DIdent."""
    image = pd.DataFrame({
        "object_shape": rng.integers(0, len(SHAPES), n),
        "object_xpos": rng.integers(0, 3, n),
        "object_ypos": rng.integers(0, 3, n),
        "object_zpos": np.zeros(n),
        "object_alpharot": rng.random(n),
        "object_betarot": rng.random(n),
        "object_gammarot": rng.random(n),
        "object_color": rng.random(n),
        "spotlight_pos": rng.random(n),
        "spotlight_color": rng.random(n),
        "background_color": rng.random(n),
    })
    nearest = np.rint(image["object_color"].to_numpy() * len(COLORS)).astype(int) % len(COLORS)
    changed = rng.random(n) < color_change_prob
    other = (nearest + rng.integers(1, len(COLORS), n)) % len(COLORS)
    color_index = np.where(changed, other, nearest)
    text = pd.DataFrame({
        "object_shape": image["object_shape"],
        "object_xpos": image["object_xpos"],
        "object_ypos": image["object_ypos"],
        "object_zpos": image["object_zpos"],
        "object_color_name": np.array(COLORS)[color_index],
        "object_color_index": color_index,
        "text_phrasing": rng.integers(0, len(PHRASINGS), n),
    })
    return image, text


def caption(text_latents: dict) -> str:
    """The sentence of one row of text latents ("a" before a vowel becomes "an")."""
    sentence = PHRASINGS[int(text_latents["text_phrasing"])].format(
        shape=SHAPES[int(text_latents["object_shape"])],
        color=text_latents["object_color_name"],
        xpos=XPOS_WORDS[int(text_latents["object_xpos"])],
        ypos=YPOS_WORDS[int(text_latents["object_ypos"])])
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", sentence)


def write_split(folder: Path, image: pd.DataFrame, text: pd.DataFrame, size: int) -> None:
    """Render and write one split in the Multimodal3DIdent layout."""
    n = len(image)
    (folder / IMAGES_DIR).mkdir(parents=True)
    (folder / CAPTIONS_FILE).parent.mkdir(parents=True)
    image.to_csv(folder / LATENT_FILES["image"], index=False)
    text.to_csv(folder / LATENT_FILES["text"], index=False)
    lines = [caption(row) for row in text.to_dict("records")]
    (folder / CAPTIONS_FILE).write_text("\n".join(lines), encoding="utf-8")  # no final newline
    rows = image.to_dict("records")
    for i, row in enumerate(tqdm(rows, desc=f"rendering {folder.name}", unit="img")):
        Image.fromarray(render(row, size)).save(folder / IMAGES_DIR / image_name(i, n))


def generate(out_dir: str | Path, config: GeneratorConfig, overwrite: bool = False) -> None:
    """Write every split of ``config`` into ``out_dir``. Existing split folders are an error,
    or replaced with ``overwrite``."""
    out_dir = Path(out_dir)
    existing = [out_dir / s for s in SPLITS if (out_dir / s).exists()]
    if existing and not overwrite:
        raise ExistsError(f"{', '.join(map(str, existing))} already exist(s); pass "
                          f"--overwrite to replace")
    for folder in existing:
        shutil.rmtree(folder)
    for k, (split, n) in enumerate(config.split_sizes().items()):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, k]))
        image, text = sample_latents(n, rng, config.color_change_prob)
        write_split(out_dir / split, image, text, config.size)


def main(argv: list[str]) -> int:
    defaults = GeneratorConfig()
    parser = argparse.ArgumentParser(
        prog="blockident prepare imgtxt", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, help="folder for the generated data set")
    parser.add_argument("--samples", type=int, default=defaults.samples,
                        help="training samples")
    parser.add_argument("--eval-samples", type=int, default=None,
                        help="samples of val and of test each (default: samples // 10)")
    parser.add_argument("--size", type=int, default=defaults.size, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (>= 0)")
    parser.add_argument("--color-change-prob", type=float, default=defaults.color_change_prob,
                        help="probability that the caption names another colour")
    parser.add_argument("--overwrite", action="store_true", help="replace existing splits")
    args = parser.parse_args(argv)
    try:
        config = GeneratorConfig(args.samples, args.eval_samples, args.size, args.seed,
                                 args.color_change_prob)
    except ValueError as error:
        parser.error(str(error))
    start = time.perf_counter()
    generate(args.out_dir, config, args.overwrite)
    sizes = ", ".join(f"{split} {n}" for split, n in config.split_sizes().items())
    print(f"{args.out_dir}: {sizes} samples of {config.size}x{config.size} px "
          f"(wrote in {time.perf_counter() - start:.1f} s)")
    return 0
