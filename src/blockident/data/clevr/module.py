"""CLEVR with masks as a data module: two augmentations of one scene; object readouts.

The TFRecord file is read from ``root`` (the file or its folder), or a stand-in of ``scenes``
scenes is generated there first (:mod:`.generate`, seed 0; reused while the file exists). The
file is converted once into a uint8 cache (:func:`~blockident.data.clevr.format.read_clevr`)
and split in record order: 70 % train (encoder training, images only), 15 % val, 15 % test
(with masks and attributes). The test scenes are split at random (seeded) into two halves,
readout-train and readout-test (:meth:`ClevrData.object_data`).

Training batches hold ``view1`` and ``view2``: the same uint8 (B, 3, size, size) train images,
augmented independently on the batch's device (:class:`~blockident.data.augment.Augment`:
random resized crop, horizontal flip, colour jitter). Validation batches are augmented once,
with a fixed seed, when the loader is made.

Readouts (scene level, input ``image``): the 96 binary factors ``present_<size>_<color>_
<material>_<shape>`` (an object with these attributes is visible; :func:`presence_labels`) and
``num_objects`` (the count of visible objects), all of kind ``content`` (both views show the
same scene). A presence factor with fewer than ``min_positives`` positives or negatives in
either half is left out (``excluded``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from blockident.data.augment import Augment
from blockident.data.base import ReadoutSplit, ReadoutTask, StepStream, check_splits, save_splits
from blockident.data.clevr.format import (
    COLORS,
    FILENAME,
    MATERIALS,
    MAX_OBJECTS,
    SHAPES,
    SIZES,
    Clevr,
    read_clevr,
)
from blockident.data.clevr.generate import DEFAULT_SCENES, generate_clevr, generated_as
from blockident.errors import ConfigError, DataError
from blockident.logs import log

STATE_FILE = "clevr_split.npz"
PARTS = {"train": "readout_train", "test": "readout_test"}
OBJECT_ATTRIBUTES = ("color", "shape", "size", "material", "x", "y", "z", "rotation")
GENERATE_SEED = 0  # the stand-in is the same for every run seed


def presence_names() -> list[str]:
    """The 96 presence factors ``present_<size>_<color>_<material>_<shape>``, in this order
    (size slowest, shape fastest)."""
    return [f"present_{s}_{c}_{m}_{h}"
            for s, c, m, h in itertools.product(SIZES, COLORS, MATERIALS, SHAPES)]


@dataclass
class ObjectSplit:
    """Scenes with their objects (entity 0 is the background; 1..10 the objects).

    ``images``: uint8 (N, 3, size, size); ``masks``: uint8 (N, size, size) entity id per pixel;
    ``visible``: bool (N, 11), an object that exists, is not hidden (``visibility`` > 0) and
    covers at least one pixel of the cropped, resized mask; ``attributes``: name -> (N, 11)
    arrays, ``color``, ``shape``, ``size``, ``material`` as uint8 codes (0: no object; code k is
    name k - 1 of :data:`~blockident.data.clevr.format.CATEGORIES`) and ``x``, ``y``, ``z``,
    ``rotation`` as float32; ``index``: the scenes' positions in the test split.
    """

    images: np.ndarray
    masks: np.ndarray
    visible: np.ndarray
    attributes: dict[str, np.ndarray]
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def presence_labels(obj: ObjectSplit) -> tuple[list[str], np.ndarray]:
    """(names, uint8 (N, 96)): whether a visible object of each size x colour x material x shape
    is in each scene (names and order of :func:`presence_names`)."""
    a = obj.attributes
    codes = [np.asarray(a[name], np.int64) for name in ("size", "color", "material", "shape")]
    valid = np.asarray(obj.visible, bool) & np.all([c > 0 for c in codes], axis=0)
    combo = (((codes[0] - 1) * len(COLORS) + codes[1] - 1) * len(MATERIALS)
             + codes[2] - 1) * len(SHAPES) + codes[3] - 1
    names = presence_names()
    labels = np.zeros((len(valid), len(names)), np.uint8)
    rows, cols = np.nonzero(valid)
    labels[rows, combo[rows, cols]] = 1
    return names, labels


class ClevrData(L.LightningDataModule):
    """Batches ``view1``, ``view2``: uint8 (B, 3, size, size) train images, augmented after
    transfer.

    ``root``: the TFRecord file or its folder; ``scenes``: scenes of the stand-in generated
    there when it holds none (or a stand-in of another size; a file the generator did not
    write is used as it is); ``cache_dir``: where the converted cache goes (default
    ``.blockident_cache`` beside the file); ``readout_train``, ``readout_test``: at most this
    many scenes per readout half (seeded subsets; None: all); ``min_positives``: presence
    factors with fewer positives (or negatives) in a half are left out; ``flip``, ``crop_area``
    (area range of the random resized crop; None: none), ``jitter`` (colour jitter strength; 0:
    none), ``hue`` (its hue shift; 0 keeps the object colours, which are read out):
    the augmentation; ``val_batches``: fixed validation batches from the val split.
    """

    def __init__(self, root: str = "data/generated/clevr", scenes: int = DEFAULT_SCENES,
                 cache_dir: str | None = None, size: int = 64, batch_size: int = 128,
                 readout_train: int | None = None, readout_test: int | None = None,
                 min_positives: int = 5, flip: bool = True,
                 crop_area: tuple[float, float] | None = (0.3, 1.0), jitter: float = 0.4,
                 hue: float = 0.0, val_batches: int = 2, seed: int = 0):
        super().__init__()
        if size < 8 or batch_size < 1 or scenes < 1:
            raise ConfigError(f"need data.size >= 8, data.batch_size >= 1, data.scenes >= 1; got "
                              f"{size}, {batch_size}, {scenes}")
        self.root, self.scenes = Path(root), scenes
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.readout_max = {"train": readout_train, "test": readout_test}
        self.min_positives, self.val_batches = min_positives, val_batches
        self.augment = Augment(size, jitter=jitter, hue=hue, flip=flip,
                               resized_crop=tuple(crop_area) if crop_area else None)
        self.data: Clevr | None = None
        self._objects: dict[str, ObjectSplit] = {}  # readout half -> its scenes (object_data)

    # -- data and splits --------------------------------------------------------------------
    def prepare(self) -> None:
        if self.data is not None:
            return
        file = self.root if self.root.is_file() or self.root.suffix == ".tfrecords" \
            else self.root / FILENAME
        made = generated_as(file)
        if not file.exists() or (made is not None and made["scenes"] != self.scenes):
            if file.exists():  # a stand-in of another size: made again, not used stale
                log.info("%s: a stand-in of %d scenes; generating %d", file, made["scenes"],
                         self.scenes)
            generate_clevr(file, self.scenes, GENERATE_SEED)
        self.data = read_clevr(file, self.size, self.cache_dir)
        self.train_images = self.data.split("train")
        tested = self.data.bounds["test"][1] - self.data.bounds["test"][0]
        order = np.random.default_rng([self.seed, 21]).permutation(tested)
        halves = {"readout_train": order[:tested // 2], "readout_test": order[tested // 2:]}
        for part, stratum in PARTS.items():
            limit = self.readout_max[part]
            if limit is not None and len(halves[stratum]) > limit:
                halves[stratum] = halves[stratum][:limit]  # a seeded subset: order is random
        self.splits = {k: np.sort(v) for k, v in halves.items()}
        empty = [k for k, v in {"train": self.train_images, "val": self.data.split("val"),
                                **self.splits}.items() if len(v) == 0]
        if empty:
            raise DataError(f"{self.data.source}: {len(self.data)} scenes leave no scenes in "
                            f"{', '.join(empty)} (70/15/15 % in record order, the test scenes "
                            "halved for the readouts)")

    def save_state(self, run_dir: Path) -> None:
        """``clevr_split.npz``: the test scenes of each readout half, checked when evaluating."""
        self.prepare()
        save_splits(Path(run_dir) / STATE_FILE, self.splits)

    def load_state(self, run_dir: Path) -> None:
        self.prepare()
        check_splits(Path(run_dir) / STATE_FILE, self.splits, self.data.source)

    # -- training ---------------------------------------------------------------------------
    def _batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        index = torch.randint(len(self.train_images), (self.batch_size,), generator=generator)
        images = torch.from_numpy(self.train_images[np.sort(index.numpy())])
        return {"view1": images, "view2": images}

    def train_dataloader(self) -> DataLoader:
        self.prepare()
        self.stream = StepStream.of_trainer(self._batch, self.seed, self.trainer)
        return DataLoader(self.stream, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        """``val_batches`` batches of val scenes, each view augmented once with a fixed seed."""
        self.prepare()
        val = self.data.split("val")
        batches = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 7919)
            augment = self.augment.train()
            for b in range(self.val_batches):
                index = (b * self.batch_size + np.arange(self.batch_size)) % len(val)
                images = torch.from_numpy(val[np.sort(index)])
                batches.append({"view1": augment(images), "view2": augment(images)})
        return DataLoader(batches, batch_size=None)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        self.augment.to(batch["view1"].device)
        if self.trainer is not None and self.trainer.training:
            return {k: self.augment.train()(v) for k, v in batch.items()}
        return {k: self.augment.normalize_only(v) if v.dtype == torch.uint8 else v
                for k, v in batch.items()}

    # -- objects and readouts ---------------------------------------------------------------
    def object_data(self, part: str) -> ObjectSplit:
        """The scenes of readout half ``part`` (``train`` or ``test``) with their objects, read
        once (readouts, control and object evaluation share them; do not modify them)."""
        if part not in PARTS:
            raise ConfigError(f"part must be one of {sorted(PARTS)}, got {part!r}")
        self.prepare()
        if part in self._objects:
            return self._objects[part]
        index = self.splits[PARTS[part]]
        first = self.data.bounds["test"][0]
        masks = np.asarray(self.data.test_masks[index])
        a = self.data.test_attributes
        covered = np.zeros((len(index), MAX_OBJECTS), bool)  # entities with a pixel
        covered[np.arange(len(index))[:, None], masks.reshape(len(index), -1)] = True
        visible = (a["visibility"][index] > 0) & (a["shape"][index] > 0) & covered
        self._objects[part] = ObjectSplit(
            images=np.asarray(self.data.images[first + index]), masks=masks, visible=visible,
            attributes={n: np.asarray(a[n][index]) for n in OBJECT_ATTRIBUTES}, index=index)
        return self._objects[part]

    def _labelled(self, obj: ObjectSplit, names: list[str] | None = None) -> ReadoutSplit:
        presence_all, labels = presence_labels(obj)
        factors = dict(zip(presence_all, labels.T, strict=True))
        factors["num_objects"] = obj.visible.sum(1).astype(np.float64)
        names = list(factors) if names is None else names
        return ReadoutSplit(
            inputs={"image": (1, torch.from_numpy(obj.images))},
            factors={n: factors[n] for n in names}, kinds=dict.fromkeys(names, "content"),
            types={n: "continuous" if n == "num_objects" else "binary" for n in names},
            tasks=[ReadoutTask("image", "image", n) for n in names],
            transforms={1: self.augment.normalize_only},
            grids={"num_objects": np.arange(MAX_OBJECTS, dtype=np.float64)}
            if "num_objects" in names else {})

    def _excluded(self) -> dict[str, str]:
        """Presence factors with too few positives or negatives in a readout half -> why."""
        counts = {part: presence_labels(self.object_data(part))[1] for part in PARTS}
        excluded = {}
        for j, name in enumerate(presence_names()):
            pos = {part: int(labels[:, j].sum()) for part, labels in counts.items()}
            neg = {part: len(labels) - pos[part] for part, labels in counts.items()}
            if min(*pos.values(), *neg.values()) < self.min_positives:
                excluded[name] = (f"fewer than {self.min_positives} positives or negatives: "
                                  + ", ".join(f"{p} {pos[p]} of {pos[p] + neg[p]}" for p in PARTS))
        return excluded

    def readout_data(self) -> dict[str, ReadoutSplit]:
        """The readout-train and readout-test halves of the test scenes, input ``image``."""
        self.prepare()
        excluded = self._excluded()
        names = [n for n in (*presence_names(), "num_objects") if n not in excluded]
        out = {}
        for part in PARTS:
            out[part] = self._labelled(self.object_data(part), names)
            out[part].excluded = excluded
        return out

    def control_data(self) -> ReadoutSplit:
        """The readout-train half with the same factors: what the supervised control learns
        from (the train split has no attributes)."""
        self.prepare()
        names = [n for n in (*presence_names(), "num_objects") if n not in self._excluded()]
        return self._labelled(self.object_data("train"), names)
