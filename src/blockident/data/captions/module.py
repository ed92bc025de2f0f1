"""Language-guided pairs as a data module: an image and the image of its nearest caption.

The images and captions are read from ``root`` in the RedCaps layout (:mod:`.format`), or a
stand-in is generated there first (:mod:`.generate`) when ``root`` is absent or empty. Images
are decoded once into the uint8 :class:`~blockident.data.images.ImageCache`. Instances are split
at random (seeded) into encoder training, readout training and readout test; the caption
neighbours (:mod:`blockident.pairs.captions`) are searched among encoder-training instances.

``pairing``: ``caption`` (LG: view 2 is a caption neighbour, drawn anew each epoch from the
top-k) or ``self`` (SimCLR: view 2 is the same image); either way both views pass ``augment``
(options of :class:`~blockident.data.augment.Augment`) independently, on the batch's device.
Readouts: the stand-in's factors (kind ``content`` when captions mention the factor, else
``style``) and, with ``eval_root`` (class subfolders, :mod:`blockident.data.folders`), factor
``class`` of input ``eval`` (kind ``eval``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from blockident.data.augment import Augment
from blockident.data.base import ReadoutSplit, ReadoutTask, StepStream, check_splits, save_splits
from blockident.data.captions.format import CACHE, read_captions, read_factors
from blockident.data.captions.generate import generate_captions
from blockident.data.folders import read_class_folders
from blockident.data.images import ImageCache
from blockident.errors import ConfigError, DataError
from blockident.pairs.captions import PAIRS_FILE, caption_pairs

PAIRINGS = ("caption", "self")
STATE_FILE = "caption_split.npz"
log = logging.getLogger(__name__)


class CaptionPairsData(L.LightningDataModule):
    """Batches ``view1``, ``view2``: uint8 (B, 3, size, size) images, augmented after transfer.

    ``pairs``: options of :func:`~blockident.pairs.captions.caption_pairs` (``model``, ``k``,
    ``scope``, ``threshold``, ``batch_size``). ``fractions``: shares of the instances for encoder
    training, readout training and readout test; ``readout_max``: at most this many per readout
    split; ``generate``: options of the stand-in generator; ``skip_bad``: leave bad instances
    out (counted in the log) instead of failing.
    """

    def __init__(self, root: str, pairing: str = "caption", pairs: dict | None = None,
                 augment: dict | None = None, size: int = 64, batch_size: int = 128,
                 fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                 readout_max: int | None = 5000, generate: dict | None = None,
                 skip_bad: bool = False, eval_root: str | None = None, val_batches: int = 2,
                 seed: int = 0):
        super().__init__()
        if pairing not in PAIRINGS:
            raise ConfigError(f"data.pairing must be one of {PAIRINGS}, got {pairing!r}")
        self.root, self.pairing, self.pairs_options = Path(root), pairing, dict(pairs or {})
        self.size, self.batch_size, self.fractions = size, batch_size, tuple(fractions)
        self.readout_max, self.generate, self.skip_bad = readout_max, dict(generate or {}), skip_bad
        self.eval_root = Path(eval_root) if eval_root else None
        self.val_batches, self.seed = val_batches, seed
        self.augment = Augment(size, **{"jitter": 0.0, "flip": False, **dict(augment or {})})
        self.images: ImageCache | None = None

    # -- data, splits and pairs -------------------------------------------------------------
    def prepare(self) -> None:
        if self.images is not None:
            return
        if not self.root.exists() or not any(self.root.iterdir()):
            generate_captions(self.root, **self.generate)
        data = read_captions(self.root, self.skip_bad)
        images = ImageCache.build(data.paths, self.size, self.root / CACHE.parent, self.skip_bad)
        good = np.array([i for i in range(len(data)) if i not in images.bad], dtype=np.int64)
        if images.bad:
            log.warning("%s: skipped %d unreadable image(s) (data.skip_bad=true)", self.root,
                        len(images.bad))
        self.data, self.images, self.rows = data.subset(good), images, good
        factors = read_factors(self.root)
        self.factors = factors
        self.values = factors.for_keys(self.data.keys) if factors else None
        order = np.random.default_rng([self.seed, 11]).permutation(len(self.data))
        bounds = np.cumsum(np.asarray(self.fractions) * len(order)).astype(int)
        self.splits = dict(zip(("encoder_train", "readout_train", "readout_test"),
                               map(np.sort, np.split(order, bounds)[:3]), strict=True))
        empty = [k for k, v in self.splits.items() if len(v) == 0]
        if empty:
            raise DataError(f"{self.root}: no instances in {', '.join(empty)} with "
                             f"data.fractions={list(self.fractions)}")
        train = self.data.subset(self.splits["encoder_train"])
        self.pairs = caption_pairs(train.captions, train.directories,
                                   cache_dir=self.root / CACHE.parent, **self.pairs_options)
        self.counts = (self.pairs.neighbours >= 0).sum(1)
        self.anchors = np.flatnonzero(self.counts > 0) if self.pairing == "caption" else \
            np.arange(len(train))
        if len(self.anchors) == 0:
            raise DataError(f"{self.root}: no encoder-training caption has a neighbour "
                             f"(pairs: {self.pairs_options})")

    def save_state(self, run_dir: Path) -> None:
        """``caption_split.npz`` (the instances of every split) and ``caption_pairs.json``."""
        self.prepare()
        save_splits(Path(run_dir) / STATE_FILE, self.splits)
        train_keys = [self.data.keys[i] for i in self.splits["encoder_train"]]
        self.pairs.save(Path(run_dir) / PAIRS_FILE, train_keys)

    def load_state(self, run_dir: Path) -> None:
        self.prepare()
        check_splits(Path(run_dir) / STATE_FILE, self.splits, self.root)

    # -- training ---------------------------------------------------------------------------
    def _image(self, index: np.ndarray) -> torch.Tensor:
        """uint8 (n, 3, size, size) images of instances ``index`` (rows of ``self.data``)."""
        return self.images.batch(self.rows[index])

    def partners(self, anchors: np.ndarray, epoch: int, stream: int = 0) -> np.ndarray:
        """Encoder-training positions of the view-2 partners of ``anchors`` in ``epoch``: a
        neighbour drawn uniformly from each anchor's top-k, the same all epoch long (``stream``
        1 draws validation batches apart from training)."""
        if self.pairing == "self":
            return anchors
        draw = np.random.default_rng([self.seed, 17, stream, epoch]).random(len(self.counts))
        rank = (draw[anchors] * self.counts[anchors]).astype(np.int64)
        return self.pairs.neighbours[anchors, rank]

    def batch_at(self, step: int, world: int = 1, rank: int = 0, stream: int = 0
                 ) -> dict[str, torch.Tensor]:
        """Batch of global ``step``: the next ``batch_size`` anchors of a seeded permutation per
        epoch (an epoch is one pass over the anchors), across ``world`` processes."""
        self.prepare()
        n = len(self.anchors)
        positions = (step * world + rank) * self.batch_size + np.arange(self.batch_size)
        epochs = positions // n
        anchors = np.empty(len(positions), np.int64)
        for epoch in np.unique(epochs):
            at = epochs == epoch
            perm = np.random.default_rng([self.seed, 19, stream, int(epoch)]).permutation(n)
            anchors[at] = self.anchors[perm[positions[at] % n]]
        partner = np.empty_like(anchors)
        for epoch in np.unique(epochs):
            at = epochs == epoch
            partner[at] = self.partners(anchors[at], int(epoch), stream)
        train = self.splits["encoder_train"]
        return {"view1": self._image(train[anchors]), "view2": self._image(train[partner])}

    def train_dataloader(self) -> DataLoader:
        self.prepare()
        world = self.trainer.world_size if self.trainer else 1
        rank = self.trainer.global_rank if self.trainer else 0
        stream = StepStream.of_trainer(lambda _, step: self.batch_at(step, world, rank),
                                       self.seed, self.trainer, with_step=True)
        return DataLoader(stream, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        self.prepare()
        return DataLoader([self.batch_at(i, stream=1) for i in range(self.val_batches)],
                          batch_size=None)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        self.augment.to(batch["view1"].device)
        if self.trainer is not None and self.trainer.training:
            return {k: self.augment.train()(v) for k, v in batch.items()}
        return {k: self.augment.normalize_only(v) for k, v in batch.items()}

    # -- readouts ---------------------------------------------------------------------------
    def _factor_split(self, index: np.ndarray) -> dict:
        """Inputs, factors, kinds, types and tasks of the stand-in's factors at ``index``."""
        f = self.factors
        names = [n for n in f.names if len(np.unique(self.values[:, f.names.index(n)])) > 1]
        return {"inputs": {"images": (1, self._image(index))},
                "factors": {n: self.values[index, f.names.index(n)] for n in names},
                "kinds": {n: "content" if n in f.mentioned else "style" for n in names},
                "types": {n: f.types[n] for n in names},
                "tasks": [ReadoutTask("images", "images", n) for n in names]}

    def _eval_parts(self) -> dict[str, dict]:
        """Per split, the ``eval`` input and its ``class`` factor from ``eval_root``."""
        sets, _ = read_class_folders(self.eval_root, self.seed)
        out = {}
        for split, part in sets.items():
            cache = ImageCache.build(part.paths, self.size, self.eval_root / CACHE.parent)
            out[split] = {"inputs": {"eval": (1, cache.batch(np.arange(len(cache))))},
                          "factors": {"class": part.labels}, "kinds": {"class": "eval"},
                          "types": {"class": "categorical"},
                          "tasks": [ReadoutTask("eval", "eval", "class")]}
        return out

    def _subset(self, stratum: str, limit: int | None, salt: int) -> np.ndarray:
        index = self.splits[stratum]
        if limit is not None and len(index) > limit:
            index = np.sort(np.random.default_rng([self.seed, salt]).choice(index, limit,
                                                                          replace=False))
        return index

    def readout_data(self) -> dict[str, ReadoutSplit]:
        """The stand-in's factors on seeded subsets (at most ``readout_max``) of the readout
        splits, and the ``eval_root`` set when given."""
        self.prepare()
        if self.factors is None and self.eval_root is None:
            raise ConfigError(f"{self.root} has no factors.json (not the stand-in): give a "
                             "labelled evaluation set, data.eval_root=DIR (class subfolders)")
        evals = self._eval_parts() if self.eval_root else {}
        out = {}
        for split, stratum in (("train", "readout_train"), ("test", "readout_test")):
            parts = [self._factor_split(self._subset(stratum, self.readout_max, 12))] \
                if self.factors else []
            parts += [evals[split]] if evals else []
            merged = {key: {} for key in ("inputs", "factors", "kinds", "types")}
            for part in parts:
                for key in merged:
                    merged[key] |= part[key]
            out[split] = ReadoutSplit(**merged, tasks=[t for p in parts for t in p["tasks"]],
                                      transforms={1: self.augment.normalize_only})
        return out

    def control_data(self) -> ReadoutSplit:
        """Encoder-training instances (at most ``readout_max`` x 4) with the stand-in's factors."""
        self.prepare()
        if self.factors is None:
            raise ConfigError(f"{self.root} has no factors to train the supervised control on; "
                             "set readout.control=none")
        index = self._subset("encoder_train", self.readout_max and 4 * self.readout_max, 13)
        return ReadoutSplit(**self._factor_split(index),
                            transforms={1: self.augment.normalize_only})

