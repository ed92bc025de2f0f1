"""Labelled image folders for evaluation: ``ROOT/<class>/<image>``.

:func:`read_class_folders` returns the train and test images with integer labels. When ROOT
holds ``train/`` and ``test/`` (each ``<class>/<image>``; a ``val/`` folder joins train, since
the probes cut their own validation split from train) those are used; otherwise every class's
images are split by seeded stratified sampling, ``test_fraction`` of each class to test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blockident.errors import DataError, MissingError

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class LabelledImages:
    """``paths`` (N,) image files and ``labels`` (N,) int64 indices into ``classes``."""

    paths: list[Path]
    labels: np.ndarray


def _scan(root: Path) -> dict[str, list[Path]]:
    out = {c.name: sorted(p for p in c.iterdir() if p.suffix.lower() in SUFFIXES)
           for c in sorted(root.iterdir()) if c.is_dir() and not c.name.startswith(".")}
    return {c: paths for c, paths in out.items() if paths}


def read_class_folders(root: Path | str, seed: int = 0, test_fraction: float = 0.3
                       ) -> tuple[dict[str, LabelledImages], list[str]]:
    """({"train": ..., "test": ...}, class names) of the folder ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise MissingError(f"{root}: no such folder of class subfolders")
    if (root / "train").is_dir() and (root / "test").is_dir():
        parts = {"train": _scan(root / "train"), "test": _scan(root / "test")}
        if (root / "val").is_dir():
            for c, paths in _scan(root / "val").items():
                parts["train"].setdefault(c, []).extend(paths)
    else:
        rng = np.random.default_rng([seed, 21])
        parts = {"train": {}, "test": {}}
        for c, paths in _scan(root).items():
            order = rng.permutation(len(paths))
            n_test = int(round(test_fraction * len(paths)))
            parts["test"][c] = [paths[i] for i in sorted(order[:n_test])]
            parts["train"][c] = [paths[i] for i in sorted(order[n_test:])]
    classes = sorted(set(parts["train"]) | set(parts["test"]))
    if len(classes) < 2:
        raise DataError(f"{root}: needs at least two class subfolders with images")
    out = {}
    for split, by_class in parts.items():
        pairs = [(p, classes.index(c)) for c in sorted(by_class) for p in by_class[c]]
        out[split] = LabelledImages([p for p, _ in pairs], np.array([y for _, y in pairs],
                                                                    dtype=np.int64))
    return out, classes
