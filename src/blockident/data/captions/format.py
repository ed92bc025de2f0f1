"""The RedCaps / Conceptual-Captions layout: images with one JSON caption file each.

Layout::

    ROOT/<directory>/<instance>.jpg     the image (also .jpeg / .png)
    ROOT/<directory>/<instance>.json    {"caption": "...", ...}; other keys are ignored

RedCaps names its directories ``<subreddit>_<year>_<id>``. :func:`read_captions` builds the
dictionary ``{directory: {instance: [relative image path, caption]}}`` once and caches it in
``ROOT/.blockident_cache/captions.json`` (a :mod:`blockident.data.cache` entry: ``blockident
prepare cache --clear ROOT`` drops it), reused while no directory's size and modification time
have changed (adding or removing a file changes them; editing a caption in place does not). An image
without JSON (or the reverse), a JSON without ``caption``, an empty caption or an unreadable
JSON is a :class:`FormatError` naming the file; with ``skip_bad`` such instances are left out
and counted instead. Unreadable images are found when decoding (:mod:`.module`).

The generated stand-in (:mod:`.generate`) adds ``ROOT/factors.json``, the factors that made each
image; :func:`read_factors` reads it (public data has none).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blockident.data import cache
from blockident.errors import DataError
from blockident.io import atomic_write_text

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CACHE = Path(".blockident_cache") / "captions.json"
FACTORS_FILE = "factors.json"
log = logging.getLogger(__name__)


class FormatError(DataError):
    """A folder does not have the caption layout; the message names the file."""


@dataclass
class CaptionSet:
    """N image/caption instances in a fixed order (sorted by directory, then instance).

    ``keys``: (directory, instance) per instance; ``paths``: image paths (absolute);
    ``captions``: caption strings; ``skipped``: bad instances left out with ``skip_bad``.
    """

    root: Path
    keys: list[tuple[str, str]]
    paths: list[Path]
    captions: list[str]
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def directories(self) -> list[str]:
        return [d for d, _ in self.keys]

    def subset(self, index: np.ndarray) -> CaptionSet:
        return CaptionSet(self.root, [self.keys[i] for i in index],
                          [self.paths[i] for i in index], [self.captions[i] for i in index])


def _caption(path: Path) -> str:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise FormatError(f"{path}: not a readable JSON file ({error})") from error
    if not isinstance(record, dict) or "caption" not in record:
        raise FormatError(f"{path}: no 'caption' key")
    caption = record["caption"]
    if not isinstance(caption, str) or not caption.strip():
        raise FormatError(f"{path}: empty caption")
    return caption.strip()


def _directory(folder: Path, skip_bad: bool) -> tuple[dict[str, list[str]], int]:
    """{instance: [relative image path, caption]} of one directory, and the skipped count."""
    images, jsons = {}, {}
    for path in folder.iterdir():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images[path.stem] = path
        elif path.suffix == ".json":
            jsons[path.stem] = path
    out, skipped = {}, 0
    for instance in sorted(images.keys() | jsons.keys()):
        try:
            if instance not in jsons:
                raise FormatError(f"{images[instance]}: image without {instance}.json")
            if instance not in images:
                raise FormatError(f"{jsons[instance]}: caption without an image "
                                  f"({'/'.join(IMAGE_SUFFIXES)})")
            caption = _caption(jsons[instance])
        except FormatError as error:
            if not skip_bad:
                raise
            log.warning("skipped: %s", error)
            skipped += 1
            continue
        out[instance] = [f"{folder.name}/{images[instance].name}", caption]
    return out, skipped


def read_index(root: Path | str, skip_bad: bool = False) -> tuple[dict, int]:
    """``({directory: {instance: [relative path, caption]}}, skipped)``, built once and cached
    (a :mod:`blockident.data.cache` entry stamped with every directory)."""
    root = Path(root)
    if not root.is_dir():
        raise FormatError(f"{root}: not a directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    path = root / CACHE
    settings = {"skip_bad": skip_bad, "directories": [f.name for f in folders]}
    stamps = [cache.stamp(f) for f in folders]
    saved = cache.read(path, settings)
    if saved is not None and not cache.changed(stamps, saved["stamps"]):
        doc = json.loads(path.read_text())
        return doc["index"], doc["skipped"]
    index, skipped = {}, 0
    for folder in folders:
        entries, bad = _directory(folder, skip_bad)
        skipped += bad
        if entries:
            index[folder.name] = entries
    if not index:
        raise FormatError(f"{root}: no <directory>/<instance>.jpg + .json pairs")
    atomic_write_text(path, json.dumps({"skipped": skipped, "index": index}))
    cache.write(path, settings, stamps)
    return index, skipped


def read_captions(root: Path | str, skip_bad: bool = False) -> CaptionSet:
    """Every instance under ``root`` (see the module docstring); logs the skipped count."""
    root = Path(root)
    index, skipped = read_index(root, skip_bad)
    if skipped:
        log.warning("%s: skipped %d bad instance(s) (data.skip_bad=true)", root, skipped)
    keys = [(d, i) for d in sorted(index) for i in sorted(index[d])]
    return CaptionSet(root, keys, [root / index[d][i][0] for d, i in keys],
                      [index[d][i][1] for d, i in keys], skipped)


@dataclass
class CaptionFactors:
    """The stand-in's factors: ``values`` (N, F) per instance of ``keys``; ``types`` name ->
    ``categorical`` | ``continuous``; ``mentioned``: the factors the captions describe;
    ``classes``: categorical factor -> its class names (values are indices into them)."""

    names: list[str]
    keys: list[tuple[str, str]]
    values: np.ndarray
    types: dict[str, str]
    mentioned: list[str]
    classes: dict[str, list[str]]

    def for_keys(self, keys: list[tuple[str, str]]) -> np.ndarray:
        """(len(keys), F) values of the instances ``keys`` (a KeyError names a missing one)."""
        row = {k: r for r, k in enumerate(self.keys)}
        return self.values[[row[k] for k in keys]]


def read_factors(root: Path | str) -> CaptionFactors | None:
    """The factors of a generated stand-in in ``root``, or None for data without them."""
    path = Path(root) / FACTORS_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        names = list(record["factors"])
        return CaptionFactors(
            names, [tuple(k) for k in record["keys"]],
            np.asarray(record["values"], dtype=np.float64).reshape(-1, len(names)),
            {n: f["type"] for n, f in record["factors"].items()},
            [n for n, f in record["factors"].items() if f["mentioned"]],
            {n: f["classes"] for n, f in record["factors"].items() if "classes" in f})
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FormatError(f"{path}: not a factor record of the captions stand-in "
                          f"({error})") from error
