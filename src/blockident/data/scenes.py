"""Generated videos in the BURST format: ``blockident prepare scenes OUT_DIR``.

TAO frames cannot be downloaded, so this renders small videos of moving, occluding objects and
writes them exactly as BURST ships its annotations (:mod:`blockident.data.burst` reads them):
``frames/<split>/<dataset>/<seq_name>/frameNNNN.jpg``, ``train.json``, ``val.json``,
``test.json``, ``categories.json``, and a manifest ``scenes.json`` (config, version) written
first as incomplete and rewritten as complete at the very end.

A category is a (shape, colour, pattern) triple; the first categories differ from each other in
at least two of the three (as long as there are at most 32). Each video has its own background
(plain, gradient or texture) and lighting, and a few tracks whose categories follow a Zipf law
(probability of the category of rank k proportional to ``k ** -zipf``). A track moves along a
straight line with a sinusoidal wobble at constant speed and slowly changes size; tracks are
painted back to front, so a track's mask is its visible pixels; a track without visible pixels
in a frame has no segmentation entry there. Everything is a function of the config: video ``i``
draws from ``SeedSequence([seed, i])``, its frame ``t`` (pixel noise, flicker) from
``SeedSequence([seed, i], spawn_key=(t,))``.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import shutil
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from blockident.data import rle
from blockident.data.burst import CATEGORIES_FILE, SPLITS, BurstAnnotations, read_burst
from blockident.errors import ConfigError, ExistsError
from blockident.io import atomic_write_text

VERSION = 1
MANIFEST = "scenes.json"
MANIFEST_FORMAT = "blockident-scenes"
FRAMES_DIR = "frames"
# everything the generator writes in OUT_DIR (cleared before a regeneration)
OWN_FILES = (FRAMES_DIR, *(f"{split}.json" for split in SPLITS), CATEGORIES_FILE, MANIFEST)
SPLIT_CYCLE = ("train", "train", "train", "val", "test")  # video i -> SPLIT_CYCLE[i % 5]
DATASETS = ("scenes_A", "scenes_B", "scenes_C")  # video i -> DATASETS[i % 3]
FPS = 30  # nominal; every generated frame is annotated

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon")
COLOURS = {  # saturated, hues far apart in this order
    "red": (230, 25, 25), "blue": (30, 70, 235), "yellow": (245, 220, 20),
    "green": (30, 185, 40), "magenta": (225, 30, 200), "cyan": (20, 210, 225),
    "orange": (250, 130, 10), "purple": (125, 40, 210),
}
PATTERNS = ("solid", "striped", "dotted", "checkered")
MAX_CATEGORIES = len(SHAPES) * len(COLOURS) * len(PATTERNS)


@dataclass(frozen=True)
class SceneConfig:
    """What to generate: ``videos`` videos of ``frames`` frames of ``size`` x ``size`` pixels.

    ``categories`` categories with Zipf exponent ``zipf``; ``min_tracks``..``max_tracks`` tracks
    per video (count ``n`` drawn with probability proportional to ``1 / (n - min_tracks + 1)``);
    object diameter uniform in ``object_size`` (fractions of the side); a track is annotated in
    a frame where it covers at least ``min_visible`` of the frame (and at least one pixel).
    """

    videos: int = 300
    frames: int = 20
    size: int = 64
    seed: int = 0
    categories: int = 20
    zipf: float = 1.0
    min_tracks: int = 1
    max_tracks: int = 4
    object_size: tuple[float, float] = (0.2, 0.4)
    jpeg_quality: int = 90
    min_visible: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "object_size", tuple(float(v) for v in self.object_size))
        checks = [
            (self.videos >= 1, f"videos must be >= 1, got {self.videos}"),
            (self.frames >= 1, f"frames must be >= 1, got {self.frames}"),
            (self.size >= 16, f"size must be >= 16 pixels, got {self.size}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (1 <= self.categories <= MAX_CATEGORIES,
             f"categories must be in 1..{MAX_CATEGORIES}, got {self.categories}"),
            (self.zipf >= 0, f"zipf must be >= 0, got {self.zipf}"),
            (0 <= self.min_tracks <= self.max_tracks and self.max_tracks >= 1,
             f"need 0 <= min_tracks <= max_tracks, max_tracks >= 1; got "
             f"{self.min_tracks}, {self.max_tracks}"),
            (len(self.object_size) == 2 and 0 < self.object_size[0] <= self.object_size[1] <= 1,
             f"object_size must be (low, high) with 0 < low <= high <= 1, got "
             f"{self.object_size}"),
            (0 <= self.min_visible < 1, f"min_visible must be in [0, 1), got {self.min_visible}"),
            (1 <= self.jpeg_quality <= 100,
             f"jpeg_quality must be in 1..100, got {self.jpeg_quality}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass(frozen=True)
class Category:
    """One object category: ``id`` (from 1) and its appearance."""

    id: int
    shape: str
    colour: str
    pattern: str

    @property
    def name(self) -> str:
        return f"{self.colour}_{self.pattern}_{self.shape}"

    @property
    def rgb(self) -> np.ndarray:
        """(3,) float main colour."""
        return np.asarray(COLOURS[self.colour], dtype=np.float64)

    @property
    def pattern_rgb(self) -> np.ndarray:
        """(3,) float colour of the pattern: a dark shade of a light colour, else a light tint."""
        rgb = self.rgb
        return 0.25 * rgb if rgb @ (0.299, 0.587, 0.114) > 110 else rgb + 0.75 * (255 - rgb)

    def json(self) -> dict:
        """LVIS-style entry of ``categories.json``."""
        text = f"a {self.colour} {self.pattern} {self.shape}"
        return {"id": self.id, "name": self.name, "synset": f"{self.name}.n.01",
                "synonyms": [self.name], "def": text}


@lru_cache
def category_list(n: int) -> tuple[Category, ...]:
    """The first ``n`` categories (ids 1..n), independent of everything else: greedily the
    (shape, colour, pattern) farthest in Hamming distance from those picked, ties going to the
    least used attribute values, then to the first in (shape, colour, pattern) order."""
    sizes = (len(SHAPES), len(COLOURS), len(PATTERNS))
    combos = np.stack(np.meshgrid(*map(np.arange, sizes), indexing="ij"), -1).reshape(-1, 3)
    distance = np.full(len(combos), 3)
    uses = [np.zeros(k, dtype=int) for k in sizes]
    free = np.ones(len(combos), dtype=bool)
    picked = []
    for _ in range(n):
        used = sum(u[combos[:, a]] for a, u in enumerate(uses))
        score = np.where(free, distance * 10 * MAX_CATEGORIES - used, -1)
        best = combos[int(np.argmax(score))]
        picked.append(best)
        free &= (combos != best).any(axis=1)
        distance = np.minimum(distance, (combos != best).sum(axis=1))
        for a, u in enumerate(uses):
            u[best[a]] += 1
    colours = list(COLOURS)
    return tuple(Category(i + 1, SHAPES[s], colours[c], PATTERNS[p])
                 for i, (s, c, p) in enumerate(picked))


@dataclass(frozen=True, eq=False)
class Track:
    """One object's path; lengths are fractions of the frame side, times in frames.

    Centre at frame t: ``centre + velocity * (t - t0) + wobble * sin(2 pi t / period + phase)``
    along the unit normal of ``velocity``; radius goes linearly from ``radius[0]`` at frame 0 to
    ``radius[1]`` at the last frame; ``angle`` (radians) rotates the shape and its pattern.
    """

    id: int
    category: Category
    centre: tuple[float, float]
    velocity: tuple[float, float]
    t0: float
    wobble: float
    period: float
    phase: float
    radius: tuple[float, float]
    angle: float

    def at(self, t: float, frames: int) -> tuple[float, float, float]:
        """(x, y, radius) at frame ``t`` of a ``frames``-frame video."""
        vx, vy = self.velocity
        speed = np.hypot(vx, vy)
        nx, ny = (-vy / speed, vx / speed) if speed > 0 else (0.0, 1.0)
        side = self.wobble * np.sin(2 * np.pi * t / self.period + self.phase)
        x = self.centre[0] + vx * (t - self.t0) + side * nx
        y = self.centre[1] + vy * (t - self.t0) + side * ny
        radius = np.interp(t, (0, max(frames - 1, 1)), self.radius)
        return float(x), float(y), float(radius)


@dataclass(frozen=True, eq=False)
class Video:
    """One generated video: ``background`` (S, S, 3) float in [0, 255] before ``lighting``;
    ``tracks`` back to front (the last one is nearest)."""

    config: SceneConfig
    index: int
    background: np.ndarray
    lighting: float
    tracks: tuple[Track, ...]

    @property
    def id(self) -> int:
        return self.index + 1

    @property
    def split(self) -> str:
        return SPLIT_CYCLE[self.index % len(SPLIT_CYCLE)]

    @property
    def dataset(self) -> str:
        return DATASETS[self.index % len(DATASETS)]

    @property
    def seq_name(self) -> str:
        return f"scene{self.index:05d}"

    @property
    def images(self) -> list[str]:
        return [f"frame{t:04d}.jpg" for t in range(self.config.frames)]


def zipf_probabilities(n: int, exponent: float) -> np.ndarray:
    """(n,) probabilities proportional to ``rank ** -exponent``, rank 1..n."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return weights / weights.sum()


def sample_video(config: SceneConfig, index: int) -> Video:
    """Video ``index`` of the set ``config`` describes (from ``SeedSequence([seed, index])``)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, index]))
    background = _background(rng, config.size)
    lighting = float(rng.uniform(0.6, 1.3))
    counts = np.arange(config.min_tracks, config.max_tracks + 1)
    n_tracks = int(rng.choice(counts, p=zipf_probabilities(len(counts), 1.0)))
    categories = category_list(config.categories)
    chosen = rng.choice(len(categories), size=n_tracks,
                        p=zipf_probabilities(len(categories), config.zipf))
    tracks = []
    for track_id, category in enumerate(chosen, start=1):
        direction = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0.005, 0.05)
        radius = rng.uniform(*config.object_size) / 2
        tracks.append(Track(
            id=track_id, category=categories[category],
            centre=tuple(rng.uniform(0.15, 0.85, size=2).tolist()),
            velocity=(speed * np.cos(direction), speed * np.sin(direction)),
            t0=float(rng.uniform(0, config.frames - 1)), wobble=float(rng.uniform(0, 0.08)),
            period=float(rng.uniform(8, 30)), phase=float(rng.uniform(0, 2 * np.pi)),
            radius=(radius, radius * float(rng.uniform(0.85, 1.15))),
            angle=float(rng.uniform(-np.pi / 18, np.pi / 18))))
    order = rng.permutation(n_tracks)
    return Video(config, index, background, lighting, tuple(tracks[i] for i in order))


def render_frame(video: Video, t: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Frame ``t`` of ``video``: the image (S, S, 3) uint8 and the visible mask (S, S) bool of
    every track covering at least ``min_visible`` of the frame (at least one pixel), by track id
    (ascending)."""
    size = video.config.size
    rng = np.random.default_rng(np.random.SeedSequence([video.config.seed, video.index],
                                                       spawn_key=(t,)))
    ys, xs = (np.mgrid[:size, :size] + 0.5) / size
    image = video.background.copy()
    label = np.zeros((size, size), dtype=np.int64)  # track id in front at each pixel, 0: none
    for track in video.tracks:
        x, y, radius = track.at(t, video.config.frames)
        cos, sin = np.cos(track.angle), np.sin(track.angle)
        dx, dy = (xs - x) / radius, (ys - y) / radius
        u, v = cos * dx + sin * dy, cos * dy - sin * dx
        inside = _shape(track.category.shape, u, v)
        if not inside.any():
            continue
        pattern = _pattern(track.category.pattern, u, v)[inside]
        image[inside] = np.where(pattern[:, None], track.category.pattern_rgb,
                                 track.category.rgb)
        label[inside] = track.id
    gain = video.lighting * (1 + rng.normal(0, 0.02))
    image = image * gain + rng.normal(0, 3, size=image.shape)
    least = max(1, int(np.ceil(video.config.min_visible * size * size)))
    ids, counts = np.unique(label[label > 0], return_counts=True)
    masks = {int(i): label == i for i, n in zip(ids, counts, strict=True) if n >= least}
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), masks


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float background: plain, a linear gradient, smooth noise or soft stripes
    between two muted colours."""
    colours = np.array([colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, 0.6),
                                            rng.uniform(0.25, 0.95)) for _ in range(2)]) * 255
    ys, xs = (np.mgrid[:size, :size] + 0.5) / size
    kind = rng.choice(("plain", "gradient", "noise", "stripes"))
    angle = rng.uniform(0, 2 * np.pi)
    along = xs * np.cos(angle) + ys * np.sin(angle)
    if kind == "plain":
        mix = np.zeros((size, size))
    elif kind == "gradient":
        mix = (along - along.min()) / (along.max() - along.min())
    elif kind == "noise":
        mix = _upsample(rng.uniform(size=(rng.integers(3, 9),) * 2), size)
    else:
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * along / rng.uniform(0.1, 0.3))
    return colours[0] * (1 - mix[..., None]) + colours[1] * mix[..., None]


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """(k, k) -> (size, size) by bilinear interpolation over the whole frame."""
    k = len(grid)
    position = np.linspace(0, k - 1, size)
    low = np.minimum(position.astype(int), k - 2)
    weights = np.zeros((size, k))
    weights[np.arange(size), low] = 1 - (position - low)
    weights[np.arange(size), low + 1] = position - low
    return weights @ grid @ weights.T


def _polygon(u: np.ndarray, v: np.ndarray, n: int, vertex: float, radius: float = 1.0):
    """Inside a regular ``n``-gon of circumradius ``radius`` with a vertex at angle ``vertex``."""
    sector = 2 * np.pi / n
    offset = np.mod(np.arctan2(v, u) - vertex, sector) - sector / 2
    return np.hypot(u, v) * np.cos(offset) <= radius * np.cos(np.pi / n)


def _shape(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(S, S) bool: inside ``shape`` in object coordinates (unit radius, v pointing down)."""
    r = np.hypot(u, v)
    if shape == "circle":
        return r <= 1
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.75
    if shape == "triangle":
        return _polygon(u, v, 3, -np.pi / 2, radius=1.1)
    if shape == "star":
        fraction = np.mod(np.arctan2(v, u) + np.pi / 2, 2 * np.pi / 5) / (2 * np.pi / 5)
        return r <= 0.45 + 0.6 * abs(2 * fraction - 1)
    if shape == "cross":
        return ((abs(u) <= 0.32) & (abs(v) <= 0.95)) | ((abs(v) <= 0.32) & (abs(u) <= 0.95))
    if shape == "ring":
        return (r <= 1) & (r >= 0.55)
    if shape == "diamond":
        return abs(u) / 0.75 + abs(v) <= 1.05
    if shape == "hexagon":
        return _polygon(u, v, 6, 0.0)
    raise ValueError(f"unknown shape {shape!r}")


def _pattern(pattern: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(S, S) bool: where the pattern colour replaces the main colour (object coordinates)."""
    if pattern == "solid":
        return np.zeros(u.shape, dtype=bool)
    if pattern == "striped":
        return np.floor((u + v) / (0.35 * np.sqrt(2))) % 2 == 1
    if pattern == "dotted":
        du, dv = u / 0.8 - np.round(u / 0.8), v / 0.8 - np.round(v / 0.8)
        return du**2 + dv**2 <= 0.3**2
    if pattern == "checkered":
        return (np.floor(u / 0.5) + np.floor(v / 0.5)) % 2 == 1
    raise ValueError(f"unknown pattern {pattern!r}")


def write_video(out_dir: Path, video: Video) -> dict:
    """Render and save every frame of ``video``; its BURST sequence object."""
    config = video.config
    folder = out_dir / FRAMES_DIR / video.split / video.dataset / video.seq_name
    folder.mkdir(parents=True, exist_ok=True)
    segmentations = []
    for t, name in enumerate(video.images):
        image, masks = render_frame(video, t)
        Image.fromarray(image).save(folder / name, format="JPEG", quality=config.jpeg_quality,
                                    subsampling=0)
        segmentations.append({str(track): {"rle": rle.encode(mask), "is_gt": True, "score": 1.0}
                              for track, mask in masks.items()})
    seen = {int(track) for frame in segmentations for track in frame}
    return {
        "id": video.id, "dataset": video.dataset, "seq_name": video.seq_name, "fps": FPS,
        "width": config.size, "height": config.size,
        "annotated_image_paths": video.images, "all_image_paths": video.images,
        "track_category_ids": {str(track.id): track.category.id
                               for track in sorted(video.tracks, key=lambda tr: tr.id)
                               if track.id in seen},
        "segmentations": segmentations,
        "neg_category_ids": [], "not_exhaustive_category_ids": [],
    }


def manifest(config: SceneConfig, complete: bool = True) -> dict:
    """The content of ``scenes.json`` for ``config``."""
    return {"format": MANIFEST_FORMAT, "version": VERSION, "complete": complete,
            "config": json.loads(json.dumps(asdict(config)))}


def read_manifest(out_dir: Path | str) -> dict | None:
    """``scenes.json`` of ``out_dir``; ``None`` if absent; FileExistsError if another program
    wrote it."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise ExistsError(f"{path}: not a manifest of the scene generator")
    return doc


def generate_scenes(out_dir: Path | str, config: SceneConfig, progress: bool = True) -> Path:
    """Write the data set ``config`` describes to ``out_dir``, which must hold none of
    :data:`OWN_FILES`; the complete manifest comes last. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    present = [name for name in OWN_FILES if (out_dir / name).exists()]
    if present:
        raise ExistsError(f"{out_dir}: already holds {', '.join(present)} "
                          "(ensure_scenes reuses or replaces a generated set)")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest(config, complete=False)))
    sequences: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for index in tqdm(range(config.videos), desc="scenes", unit="video", disable=not progress):
        video = sample_video(config, index)
        sequences[video.split].append(write_video(out_dir, video))
    categories = category_list(config.categories)
    atomic_write_text(out_dir / CATEGORIES_FILE, json.dumps([c.json() for c in categories]))
    names = {str(c.id): c.name for c in categories}
    for split, seqs in sequences.items():
        doc = {"split": split, "categories": names, "sequences": seqs}
        atomic_write_text(out_dir / f"{split}.json", json.dumps(doc))
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest(config)))
    return out_dir


def scenes_match(out_dir: Path | str, config: SceneConfig) -> bool:
    """Whether ``out_dir`` holds the complete set ``config`` describes (per its manifest)."""
    return read_manifest(out_dir) == manifest(config)


def ensure_scenes(out_dir: Path | str, config: SceneConfig, progress: bool = True) -> Path:
    """``out_dir`` holding the set ``config`` describes: reused if its manifest matches, else
    generated after removing the generator's files. Directories with BURST files but no
    manifest of the generator are left alone (FileExistsError)."""
    out_dir = Path(out_dir)
    if scenes_match(out_dir, config):
        return out_dir
    if read_manifest(out_dir) is None:
        present = [name for name in OWN_FILES if (out_dir / name).exists()]
        if present:
            raise ExistsError(f"{out_dir}: holds {', '.join(present)} but no {MANIFEST}; "
                              "not written by the scene generator, so not replaced")
    else:
        for name in OWN_FILES:  # the manifest last: an interrupted clear stays recognisable
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    return generate_scenes(out_dir, config, progress)


def category_summary(annotations: BurstAnnotations, top: int = 6) -> str:
    """Instances per category (rank, id, name, count, share) and the share of frames without
    objects and of frames showing exactly one of the ``top`` most frequent categories."""
    frequencies = annotations.category_frequencies()
    frequencies = frequencies.iloc[np.lexsort((frequencies.index, -frequencies.to_numpy()))]
    total = max(int(frequencies.sum()), 1)
    lines = [f"{'rank':>4} {'id':>4}  {'category':<28} {'instances':>9} {'share':>6}"]
    for rank, (category, count) in enumerate(frequencies.items(), start=1):
        name = annotations.categories.get(category, "?")
        lines.append(f"{rank:>4} {category:>4}  {name:<28} {count:>9} {count / total:>6.1%}")
    n_frames = max(annotations.n_frames, 1)
    is_top = np.isin(annotations.category, frequencies.index[:top])
    frames = annotations.entry_frame[is_top]
    distinct = np.bincount(frames, minlength=annotations.n_frames)
    instances = np.bincount(frames, weights=annotations.count[is_top],
                            minlength=annotations.n_frames)
    empty = np.mean(np.diff(annotations.offsets) == 0) if annotations.n_frames else 0.0
    lines += [
        f"frames: {annotations.n_frames}; without objects: {empty:.1%}",
        f"frames showing exactly one of the top-{top} categories: "
        f"{np.sum(distinct == 1) / n_frames:.1%} (exactly one instance of them: "
        f"{np.sum(instances == 1) / n_frames:.1%})",
    ]
    return "\n".join(lines)


OPTIONS = {  # SceneConfig field: (type, help) of `blockident prepare scenes --field`
    "videos": (int, "number of videos"), "frames": (int, "frames per video"),
    "size": (int, "frame side in pixels"), "seed": (int, "random seed (>= 0)"),
    "categories": (int, "number of categories"),
    "zipf": (float, "Zipf exponent of the category frequencies"),
    "min_tracks": (int, "fewest tracks in one video"),
    "max_tracks": (int, "most tracks in one video"),
    "object_size": (float, "object diameter range, fractions of the side"),
    "min_visible": (float, "smallest annotated visible area, a fraction of the frame"),
    "jpeg_quality": (int, "JPEG quality"),
}


def main(argv: list[str]) -> int:
    defaults = SceneConfig()
    parser = argparse.ArgumentParser(
        prog="blockident prepare scenes", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, help="folder for the generated data set")
    for option, (kind, text) in OPTIONS.items():
        parser.add_argument(f"--{option.replace('_', '-')}", type=kind,
                            nargs=2 if option == "object_size" else None,
                            default=getattr(defaults, option), help=f"{text} (%(default)s)")
    args = parser.parse_args(argv)
    try:
        config = SceneConfig(**{option: getattr(args, option) for option in OPTIONS})
    except ValueError as error:
        parser.error(str(error))
    start = time.perf_counter()
    reused = scenes_match(args.out_dir, config)
    ensure_scenes(args.out_dir, config)
    action = "reused" if reused else f"wrote in {time.perf_counter() - start:.1f} s"
    print(f"{args.out_dir}: {config.videos} videos x {config.frames} frames of "
          f"{config.size}x{config.size} px ({action})")
    print(category_summary(read_burst(args.out_dir)))
    return 0
