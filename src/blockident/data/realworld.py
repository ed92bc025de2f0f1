"""Frames of BURST-format videos, paired when they show exactly the same content categories.

The pairs come from :mod:`blockident.pairs.categories` (options under ``pairs.*``); every frame
any pair uses is decoded once into a uint8 cache at the training resolution
(:class:`~blockident.data.images.ImageCache`). Strata: ``encoder_train`` pairs train the
encoder, ``held_out`` pairs give the validation loss, and both frames of every
``readout_train`` / ``readout_test`` pair are the readout data. Each content and each style
category is a binary factor: content labels are the pair's shared content set, style labels
each frame's own style categories.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from blockident.data.augment import Augment
from blockident.data.base import ReadoutSplit, ReadoutTask, StepStream
from blockident.data.burst import images_root_message, read_burst
from blockident.data.images import ImageCache
from blockident.errors import ConfigError, DataError, MissingError
from blockident.io import atomic_write, atomic_write_text
from blockident.logs import log
from blockident.pairs.categories import PairConfig, PairSet, build_pairs
from blockident.pairs.strata import STRATA

PAIRS_FILE = "pairs.json"
READOUT_STRATA = {"train": "readout_train", "test": "readout_test"}


class RealWorldData(L.LightningDataModule):
    """BURST-format data in ``root`` as pairs of frames; batches are uint8 (B, 3, size, size).

    ``pairs``: :class:`PairConfig` fields (``k``, ``n``, ``same_sequence``, ...).
    ``augment``: :class:`Augment` options (``jitter``, ``flip``, ``resized_crop``), applied to
    training batches on their device. ``cache_dir``: where the image cache lives (default
    ``root/.blockident_cache``). ``skip_bad_images``: drop the pairs of missing or unreadable
    frames instead of stopping. ``readout_max_pairs``: use at most this many pairs (a seeded
    subset) of each readout stratum. ``min_positives``, ``min_videos``: a category is read out
    only with at least this many positive frames, from this many videos, on both readout
    sides. ``generate``: options of
    :class:`blockident.data.scenes.SceneConfig`; when given, ``root`` is filled with procedural
    scenes first (once; reused while the options match).
    """

    def __init__(self, root: str, pairs: dict, size: int = 64, batch_size: int = 128,
                 augment: dict | None = None, cache_dir: str | None = None,
                 skip_bad_images: bool = False, val_batches: int = 4,
                 readout_max_pairs: int | None = None, min_positives: int = 5,
                 min_videos: int = 2, num_workers: int = 0, generate: dict | None = None,
                 seed: int = 0):
        super().__init__()
        self.root, self.size, self.batch_size = Path(root), size, batch_size
        self.pair_config = PairConfig(**dict(pairs))
        self.augment = Augment(size, **dict(augment or {}))
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / ".blockident_cache"
        self.skip_bad_images, self.val_batches = skip_bad_images, val_batches
        self.readout_max_pairs, self.num_workers = readout_max_pairs, num_workers
        self.min_positives, self.min_videos = min_positives, min_videos
        self.generate, self.seed = generate, seed
        self.pairs: PairSet | None = None
        self.stream: StepStream | None = None

    # -- pairs and images -----------------------------------------------------------------------
    def prepare(self) -> None:
        """Read the annotations, build the pairs and the image cache (once per instance)."""
        if self.pairs is not None:
            return
        if self.generate is not None:
            from blockident.data.scenes import SceneConfig, ensure_scenes

            ensure_scenes(self.root, SceneConfig(**dict(self.generate)))
        annotations = read_burst(self.root)
        if annotations.images_root is None:
            raise MissingError(images_root_message(self.root))
        self.pairs = build_pairs(annotations, self.pair_config)
        if len(self.pairs.style) == 0:
            raise ConfigError(f"{self.root}: pairs.k={self.pair_config.k} makes all "
                              f"{len(self.pairs.content)} observed categories content, so no "
                              "style is left to test; choose a smaller pairs.k")
        frames = np.unique(self.pairs.pairs)
        self.cache = ImageCache.build(annotations.image_paths(frames, absolute=True), self.size,
                                      self.cache_dir, skip_bad=self.skip_bad_images)
        self.row = np.full(annotations.n_frames, -1, dtype=np.int64)
        self.row[frames] = np.arange(len(frames))
        self.keep = np.ones(len(self.pairs.pairs), dtype=bool)
        if self.cache.bad:
            bad = np.isin(self.row[self.pairs.pairs], list(self.cache.bad)).any(axis=1)
            self.keep = ~bad
            log.info("skipping %d of %d pairs: %d missing or unreadable image(s)",
                     int(bad.sum()), len(bad), len(self.cache.bad))
        counts = {s: len(self.stratum_pairs(s)) for s in ("encoder_train", "held_out",
                                                          *READOUT_STRATA.values())}
        log.info("pairs per stratum: %s", ", ".join(f"{s} {n}" for s, n in counts.items()))
        empty = [s for s in ("encoder_train", *READOUT_STRATA.values()) if counts[s] == 0]
        if empty:
            raise DataError(f"{self.root}: no pairs in {', '.join(empty)} with "
                            f"{self.pair_config}; more videos, other pairs.k / pairs.n or "
                            "pairs.same_sequence=allow give more pairs")

    def stratum_pairs(self, stratum: str) -> np.ndarray:
        """(P, 2) cache rows of the usable pairs of ``stratum``."""
        chosen = self.keep & (self.pairs.pair_stratum == STRATA.index(stratum))
        return self.row[self.pairs.pairs[chosen]]

    def _fingerprint(self) -> dict:
        p = self.pairs
        digest = hashlib.sha256(np.ascontiguousarray(p.pairs).tobytes()).hexdigest()
        return {"pairs_sha256": digest, "pairs": int(len(p.pairs)),
                "content": p.content.tolist(), "style": p.style.tolist()}

    # -- state saved with the run ---------------------------------------------------------------
    def save_state(self, run_dir: Path) -> None:
        """``pairs.json`` (which pairs and categories the run used) and ``pairs.csv``."""
        self.prepare()
        table = self.pairs.table()
        atomic_write(Path(run_dir) / "pairs.csv", lambda tmp: table.to_csv(tmp, index=False))
        atomic_write_text(Path(run_dir) / PAIRS_FILE, json.dumps(self._fingerprint(), indent=1))

    def load_state(self, run_dir: Path) -> None:
        """Rebuild the pairs and check they are the ones the run was trained with."""
        path = Path(run_dir) / PAIRS_FILE
        if not path.exists():
            raise MissingError(f"{path}: the run's pair record is missing")
        self.prepare()
        saved, now = json.loads(path.read_text()), self._fingerprint()
        if saved != now:
            changed = [k for k in now if saved.get(k) != now[k]]
            raise DataError(f"{self.root}: the pairs differ from those recorded in {path} "
                            f"(changed: {', '.join(changed)}); did the annotations change?")

    # -- training -------------------------------------------------------------------------------
    def _batch(self, pairs: np.ndarray, generator: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(len(pairs), (self.batch_size,), generator=generator).numpy()
        return {"view1": self.cache.batch(pairs[idx, 0]), "view2": self.cache.batch(pairs[idx, 1])}

    def train_dataloader(self) -> DataLoader:
        self.prepare()
        train = self.stratum_pairs("encoder_train")
        self.stream = StepStream.of_trainer(lambda g: self._batch(train, g), self.seed,
                                            self.trainer)
        return DataLoader(self.stream, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        self.prepare()
        held_out = self.stratum_pairs("held_out")
        if len(held_out) == 0:
            return DataLoader([], batch_size=None)
        generator = torch.Generator().manual_seed(self.seed + 7919)
        return DataLoader([self._batch(held_out, generator) for _ in range(self.val_batches)],
                          batch_size=None)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Augment training batches, only normalise validation batches (on their device)."""
        training = self.trainer is not None and self.trainer.training
        self.augment.to(batch["view1"].device).train(training)
        return {k: self.augment(v) for k, v in batch.items()}

    # -- readouts -------------------------------------------------------------------------------
    def category_names(self, role: str) -> list[str]:
        ids = self.pairs.content if role == "content" else self.pairs.style
        names = self.pairs.annotations.categories
        return [names.get(int(c), f"category_{c}") for c in ids]

    def _labelled(self, stratum: str, max_pairs: int | None,
                  rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """Both frames of (at most ``max_pairs``, a seeded subset of) the pairs of ``stratum``:
        (R,) cache rows, category name -> (R,) presence, (R,) sequence index of each frame."""
        pairs = self.stratum_pairs(stratum)
        if max_pairs is not None and len(pairs) > max_pairs:
            pairs = pairs[np.sort(rng.choice(len(pairs), max_pairs, False))]
        rows = pairs.reshape(-1)
        frames = np.flatnonzero(self.row >= 0)[rows]  # cache rows are sorted frame indices
        factors = {}
        for role in ("content", "style"):
            labels = self.pairs.multi_hot(frames, role)
            factors |= dict(zip(self.category_names(role), labels.T, strict=True))
        return rows, factors, self.pairs.annotations.frame_seq[frames]

    def _split(self, rows: np.ndarray, factors: dict, kinds: dict) -> ReadoutSplit:
        return ReadoutSplit(
            inputs={"frames": (1, self.cache.batch(rows))}, factors=factors, kinds=kinds,
            tasks=[ReadoutTask("frames", "frames", name) for name in kinds],
            types=dict.fromkeys(kinds, "binary"), transforms={1: self.augment.normalize_only})

    def _kinds(self) -> dict[str, str]:
        return {name: role for role in ("content", "style") for name in self.category_names(role)}

    def readout_data(self) -> dict[str, ReadoutSplit]:
        """Both frames of each readout pair as ``frames`` (view 1); a binary factor per category.

        A category with fewer than ``min_positives`` positive frames or ``min_videos`` videos
        with a positive frame on either side (train, test) is left out (``excluded``).
        """
        self.prepare()
        rng = np.random.default_rng([self.seed, 3])
        kinds = self._kinds()
        labelled = {split: self._labelled(stratum, self.readout_max_pairs, rng)
                    for split, stratum in READOUT_STRATA.items()}
        excluded = {}
        for name in kinds:
            counts = {split: (int(factors[name].sum()), len(np.unique(seqs[factors[name] > 0])))
                      for split, (_, factors, seqs) in labelled.items()}
            if any(p < self.min_positives or v < self.min_videos for p, v in counts.values()):
                excluded[name] = ", ".join(f"{split} {p} frames in {v} videos"
                                           for split, (p, v) in counts.items())
        if excluded:
            log.info("%d of %d categories left out of the readouts (fewer than %d positive "
                     "frames or %d videos on a side): %s", len(excluded), len(kinds),
                     self.min_positives, self.min_videos,
                     "; ".join(f"{k} ({v})" for k, v in excluded.items()))
        kinds = {k: v for k, v in kinds.items() if k not in excluded}
        splits = {}
        for split, (rows, factors, _) in labelled.items():
            splits[split] = self._split(rows, {k: factors[k] for k in kinds}, kinds)
            splits[split].excluded = excluded
        return splits

    def control_data(self) -> ReadoutSplit:
        """Both frames of every encoder-training pair with every category's presence: what the
        supervised positive control learns from."""
        self.prepare()
        rows, factors, _ = self._labelled("encoder_train", None, np.random.default_rng(0))
        return self._split(rows, factors, self._kinds())
