"""Multimodal3DIdent image/caption pairs as a Lightning data module.

View 1 is the image (uint8 (B, 3, size, size) from an :class:`ImageCache` of each split,
normalised on the device), view 2 its caption as token ids (B, L) over a vocabulary built from
the training captions and saved with the run (``vocab.json``), so evaluation encodes captions
exactly as training did. Every non-constant factor of both modalities
(:func:`~blockident.data.multimodal3dident.readout_factors`) is read out of both encodings.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from blockident.data.augment import Augment
from blockident.data.base import ReadoutSplit, ReadoutTask, StepStream
from blockident.data.images import ImageCache
from blockident.data.multimodal3dident import Split, load, readout_factors
from blockident.data.text import Vocabulary
from blockident.errors import ConfigError, DataError, MissingError
from blockident.logs import log

VOCAB_FILE = "vocab.json"
ENCODINGS = ("image", "text")  # readout encodings: of view 1 and of view 2


class ImgTxtData(L.LightningDataModule):
    """Multimodal3DIdent-format data in ``root``; batches ``view1`` images, ``view2`` captions.

    ``size``: image side (images are decoded once into ``cache_dir``, default
    ``root/.blockident_cache``); ``skip_bad_images``: leave out samples whose image cannot be
    read instead of stopping. ``max_length``: longest token sequence (captions are cut; default:
    the longest caption of each split). ``min_freq``: words rarer than this in the training
    captions are unknown. ``augment``: :class:`Augment` options (``jitter``, ``resized_crop``)
    for training images, off by default; flips are refused, they would swap left and right.
    ``val_batches``: fixed validation batches from ``val``. Readouts are fitted on a seeded
    subset of ``readout_train`` samples (all with None) of split ``readout_source``
    (``train`` or ``val``) and scored on ``readout_test`` samples of ``test``.
    """

    def __init__(self, root: str, size: int = 64, batch_size: int = 128,
                 max_length: int | None = None, min_freq: int = 1, augment: dict | None = None,
                 cache_dir: str | None = None, skip_bad_images: bool = False,
                 val_batches: int = 2, readout_source: str = "train",
                 readout_train: int | None = 5000, readout_test: int | None = None,
                 seed: int = 0):
        super().__init__()
        options = dict(augment or {})
        if options.pop("flip", False):
            raise ConfigError("augment.flip would swap left and right in the image but not in "
                              "the caption; it is not supported")
        if readout_source not in ("train", "val"):
            raise ConfigError(f"readout_source must be 'train' or 'val', got {readout_source!r}")
        self.root, self.size, self.batch_size = Path(root), size, batch_size
        self.max_length, self.min_freq = max_length, min_freq
        self.augment = Augment(size, **{"jitter": 0.0, **options, "flip": False})
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / ".blockident_cache"
        self.skip_bad_images, self.val_batches = skip_bad_images, val_batches
        self.readout_sizes = {"train": (readout_source, readout_train),
                              "test": ("test", readout_test)}
        self.seed = seed
        self.splits: dict[str, Split] | None = None
        self._vocab: Vocabulary | None = None
        self._tokens: dict[str, torch.Tensor] = {}
        self.stream: StepStream | None = None

    # -- data -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check and load every split and build its image cache (once per instance)."""
        if self.splits is not None:
            return
        splits = load(self.root)
        self.caches = {name: ImageCache.build(s.image_paths, self.size, self.cache_dir,
                                              skip_bad=self.skip_bad_images)
                       for name, s in splits.items()}
        self.usable = {name: np.setdiff1d(np.arange(len(s)), list(self.caches[name].bad))
                       for name, s in splits.items()}
        for name, cache in self.caches.items():
            if cache.bad:
                log.info("%s: leaving out %d samples with missing or unreadable images",
                         self.root / name, len(cache.bad))
            if len(self.usable[name]) == 0:
                raise DataError(f"{self.root / name}: no sample with a readable image")
        self.splits = splits

    @property
    def vocab(self) -> Vocabulary:
        """The run's vocabulary: loaded by :meth:`load_state`, else built from ``train``."""
        if self._vocab is None:
            self.prepare()
            self._vocab = Vocabulary.build(self.splits["train"].captions, self.min_freq)
        return self._vocab

    def tokens(self, split: str) -> torch.Tensor:
        """Token ids (N, L) of every caption of ``split``."""
        if split not in self._tokens:
            self.prepare()
            self._tokens[split] = self.vocab.encode(self.splits[split].captions, self.max_length)
        return self._tokens[split]

    def model_kwargs(self) -> dict:
        return {"vocab_size": len(self.vocab)}

    # -- state saved with the run -----------------------------------------------------------------
    def save_state(self, run_dir: Path) -> None:
        """Write the vocabulary to ``run_dir/vocab.json``."""
        self.vocab.save(Path(run_dir) / VOCAB_FILE)

    def load_state(self, run_dir: Path) -> None:
        """Use the vocabulary saved in ``run_dir``."""
        path = Path(run_dir) / VOCAB_FILE
        if not path.exists():
            raise MissingError(f"{path}: the run's vocabulary is missing")
        self._vocab, self._tokens = Vocabulary.load(path), {}

    # -- training ---------------------------------------------------------------------------------
    def _batch(self, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` distinct samples of ``split`` (all of them if fewer)."""
        usable = self.usable[split]
        idx = usable[torch.randperm(len(usable), generator=generator)[:self.batch_size].numpy()]
        return {"view1": self.caches[split].batch(idx), "view2": self.tokens(split)[idx]}

    def train_dataloader(self) -> DataLoader:
        self.prepare()
        self.stream = StepStream.of_trainer(lambda g: self._batch("train", g), self.seed,
                                            self.trainer)
        return DataLoader(self.stream, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        self.prepare()
        generator = torch.Generator().manual_seed(self.seed + 7919)
        return DataLoader([self._batch("val", generator) for _ in range(self.val_batches)],
                          batch_size=None)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Images to normalised floats (augmented in training when configured), on device."""
        training = self.trainer is not None and self.trainer.training
        self.augment.to(batch["view1"].device).train(training)
        return {**batch, "view1": self.augment(batch["view1"])}

    # -- readouts ---------------------------------------------------------------------------------
    def readout_data(self) -> dict[str, ReadoutSplit]:
        """``image`` (view 1) and ``text`` (view 2) encodings of the same samples; factors
        ``<modality>.<column>`` with kinds and types from the factor table, each read out of
        both encodings."""
        self.prepare()
        rng = np.random.default_rng([self.seed, 5])
        return {name: self._labelled(split, n, rng) for name, (split, n) in
                self.readout_sizes.items()}

    def _labelled(self, split: str, n: int | None, rng: np.random.Generator) -> ReadoutSplit:
        """``image`` and ``text`` inputs of (at most ``n``, a seeded subset of) the usable
        samples of ``split``, with every factor of both modalities."""
        factors = readout_factors()
        idx = self.usable[split]
        if n is not None and len(idx) > n:
            idx = np.sort(rng.choice(idx, n, replace=False))
        latents = self.splits[split].latents
        return ReadoutSplit(
            inputs={"image": (1, self.caches[split].batch(idx)),
                    "text": (2, self.tokens(split)[idx])},
            factors={f.key: latents[f.modality][f.name].to_numpy()[idx] for f in factors},
            kinds={f.key: f.kind for f in factors}, types={f.key: f.type for f in factors},
            tasks=[ReadoutTask(e, e, f.key) for e in ENCODINGS for f in factors],
            transforms={1: self.augment.normalize_only})

    def control_data(self) -> ReadoutSplit:
        """Every usable training sample with every factor: what the supervised control learns
        from."""
        self.prepare()
        return self._labelled("train", None, np.random.default_rng(0))

