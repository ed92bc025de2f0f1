"""Latent-factor experiments as a data module: pairs from a sampler on a factor dataset.

The source (``dsprites`` or ``3dident``) is read from ``root`` in its public layout, or a
stand-in is generated there first (once; reused while the file exists). Samples are split at
random (seeded) into encoder training, readout training and readout test; the pair sampler
(:mod:`blockident.pairs.samplers`) only pairs encoder-training samples with each other. Every
non-constant factor is read out: categorical grid factors by classification (accuracy), the
others by regression (R2); its kind is ``content`` when the pairs share it, else ``style``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from blockident.data.augment import Augment
from blockident.data.base import ReadoutSplit, ReadoutTask, StepStream, check_splits, save_splits
from blockident.data.factors import FactorDataset
from blockident.errors import ConfigError, DataError
from blockident.pairs.samplers import GridSteps, NearestRendered, ResampleStyle

SAMPLERS = {"grid_steps": GridSteps, "resample_style": ResampleStyle,
            "nearest_rendered": NearestRendered}
STATE_FILE = "factor_split.npz"


def read_source(source: str, root: Path, generate: dict, size: int) -> FactorDataset:
    """The factor dataset of ``source`` in ``root``, generated there first if absent; 3DIdent
    images are decoded once at side ``size`` into ``root/.blockident_cache``."""
    if source == "dsprites":
        from blockident.data.dsprites.format import FILENAME, read_dsprites
        from blockident.data.dsprites.generate import generate_dsprites

        if not (root.is_file() or list(root.glob("dsprites*.npz"))):
            generate_dsprites(root / FILENAME, **generate)
        return read_dsprites(root).data
    if source == "3dident":
        from blockident.data.threedident.format import read_3dident
        from blockident.data.threedident.generate import generate_3dident

        if not root.exists():
            generate_3dident(root, **generate)
        return read_3dident(root, split="train", size=size, cache_dir=root / ".blockident_cache")
    raise ConfigError(f"data.source must be 'dsprites' or '3dident', got {source!r}")


class FactorPairsData(L.LightningDataModule):
    """Pairs of a latent-factor source; batches are uint8 (B, 3, H, W) images.

    ``pairs``: ``rule`` (a key of :data:`SAMPLERS`), ``content`` (factor names the two views
    share) and the sampler's other options. ``fractions``: shares of the samples for encoder
    training, readout training and readout test (the rest is unused); ``size``: image side the
    encoder sees (images are resized to it); ``readout_max``: at most
    this many samples per readout split. ``generate``: options of the source's stand-in
    generator, used when ``root`` holds no data.
    """

    def __init__(self, source: str, root: str, pairs: dict, size: int = 64, batch_size: int = 128,
                 fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 readout_max: int | None = 5000, generate: dict | None = None,
                 val_batches: int = 2, seed: int = 0):
        super().__init__()
        pairs = dict(pairs)
        rule = pairs.pop("rule")
        if rule not in SAMPLERS:
            raise ConfigError(f"pairs.rule must be one of {sorted(SAMPLERS)}, got {rule!r}")
        self.sampler = SAMPLERS[rule](**pairs)
        self.content = list(pairs["content"])
        self.source, self.root, self.size, self.batch_size = source, Path(root), size, batch_size
        self.fractions, self.readout_max = tuple(fractions), readout_max
        self.generate, self.val_batches, self.seed = dict(generate or {}), val_batches, seed
        self.augment = Augment(size, jitter=0.0, flip=False)  # uint8 -> normalised floats
        self.data: FactorDataset | None = None

    # -- data and splits --------------------------------------------------------------------
    def prepare(self) -> None:
        if self.data is not None:
            return
        self.data = read_source(self.source, self.root, self.generate, self.size)
        order = np.random.default_rng([self.seed, 11]).permutation(len(self.data))
        bounds = np.cumsum(np.asarray(self.fractions) * len(order)).astype(int)
        train, readout_train, readout_test = np.split(order, bounds)[:3]
        self.splits = {"encoder_train": np.sort(train), "readout_train": np.sort(readout_train),
                       "readout_test": np.sort(readout_test)}
        empty = [k for k, v in self.splits.items() if len(v) == 0]
        if empty:
            raise DataError(f"{self.root}: no samples in {', '.join(empty)} with "
                            f"data.fractions={list(self.fractions)}")
        self.train = self.data.subset(self.splits["encoder_train"])

    def save_state(self, run_dir: Path) -> None:
        """``factor_split.npz``: the samples of every split, checked when evaluating."""
        self.prepare()
        save_splits(Path(run_dir) / STATE_FILE, self.splits)

    def load_state(self, run_dir: Path) -> None:
        self.prepare()
        check_splits(Path(run_dir) / STATE_FILE, self.splits, self.root)

    # -- training ---------------------------------------------------------------------------
    def _images(self, data: FactorDataset, index: np.ndarray) -> torch.Tensor:
        """uint8 (n, 3, H, W) images (grey ones repeated over the channels)."""
        x = torch.from_numpy(np.ascontiguousarray(data.load(index))).permute(0, 3, 1, 2)
        return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x

    def _batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
        anchors = rng.integers(0, len(self.train), 2 * self.batch_size)
        partner = self.sampler(self.train, anchors, rng)
        keep = np.flatnonzero(partner >= 0)[:self.batch_size]
        if len(keep) == 0:
            raise ConfigError(f"pairs.rule found no partner for any of {len(anchors)} anchors; "
                              "is every style factor constant?")
        return {"view1": self._images(self.train, anchors[keep]),
                "view2": self._images(self.train, partner[keep])}

    def train_dataloader(self) -> DataLoader:
        self.prepare()
        self.stream = StepStream.of_trainer(self._batch, self.seed, self.trainer)
        return DataLoader(self.stream, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        self.prepare()
        generator = torch.Generator().manual_seed(self.seed + 7919)
        return DataLoader([self._batch(generator) for _ in range(self.val_batches)],
                          batch_size=None)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        self.augment.to(batch["view1"].device)
        return {k: self.augment.normalize_only(v) for k, v in batch.items()}

    # -- readouts ---------------------------------------------------------------------------
    def _labelled(self, index: np.ndarray) -> ReadoutSplit:
        data = self.data
        names = [n for n in data.names if len(np.unique(data.column(n))) > 1]
        kinds = {n: "content" if n in self.content else "style" for n in names}
        types = {n: "categorical" if n in data.categorical else "continuous" for n in names}
        factors = {n: data.column(n)[index] for n in names}
        grids = {n: data.grids[n] for n in names if n in data.grids and types[n] != "categorical"}
        return ReadoutSplit(inputs={"images": (1, self._images(data, index))}, factors=factors,
                            kinds=kinds, types=types, grids=grids, periodic=data.periodic,
                            tasks=[ReadoutTask("images", "images", n) for n in names],
                            transforms={1: self.augment.normalize_only})

    def readout_data(self) -> dict[str, ReadoutSplit]:
        """Seeded subsets (at most ``readout_max``) of the readout-training and test samples."""
        self.prepare()
        rng = np.random.default_rng([self.seed, 12])
        out = {}
        for split, stratum in (("train", "readout_train"), ("test", "readout_test")):
            index = self.splits[stratum]
            if self.readout_max is not None and len(index) > self.readout_max:
                index = np.sort(rng.choice(index, self.readout_max, replace=False))
            out[split] = self._labelled(index)
        return out

    def control_data(self) -> ReadoutSplit:
        """Encoder-training samples (at most ``readout_max`` x 4) with every factor."""
        self.prepare()
        index = self.splits["encoder_train"]
        if self.readout_max is not None and len(index) > 4 * self.readout_max:
            index = np.sort(np.random.default_rng([self.seed, 13]).choice(
                index, 4 * self.readout_max, replace=False))
        return self._labelled(index)
