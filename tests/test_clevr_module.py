"""CLEVR with masks: the data module (batches, readouts, object data) and presence labels."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from blockident.data.clevr.format import FILENAME
from blockident.data.clevr.generate import generate_clevr
from blockident.data.clevr.module import (
    ClevrData,
    ObjectSplit,
    presence_labels,
    presence_names,
)
from blockident.errors import DataError

SCENES = 40  # test split: 6 scenes, halves of 3


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return generate_clevr(tmp_path_factory.mktemp("clevr"), SCENES, seed=0).parent


def _module(root, **options):
    cfg = OmegaConf.load("src/blockident/conf/data/clevr.yaml")
    cfg.merge_with({"root": str(root), "scenes": SCENES, "seed": 0, "batch_size": 8, "size": 32,
                    "min_positives": 1, **options})
    return instantiate(cfg)


def test_generates_the_stand_in_when_missing(tmp_path):
    data = ClevrData(root=str(tmp_path / "new"), scenes=20, size=16, batch_size=4)
    data.prepare()
    assert (tmp_path / "new" / FILENAME).is_file()
    assert len(data.data) == 20 and len(data.train_images) == 14
    assert {k: len(v) for k, v in data.splits.items()} == {"readout_train": 1,
                                                          "readout_test": 2}
    # a stand-in of another size is made again; a file the generator did not write is kept
    again = ClevrData(root=str(tmp_path / "new"), scenes=40, size=16, batch_size=4)
    again.prepare()
    assert len(again.data) == 40
    (tmp_path / "new" / FILENAME).with_name(FILENAME + ".generated.json").unlink()
    real = ClevrData(root=str(tmp_path / "new"), scenes=20, size=16, batch_size=4)
    real.prepare()
    assert len(real.data) == 40


def test_training_batches_two_augmented_views(root):
    data = _module(root)
    assert isinstance(data, ClevrData)
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"view1", "view2"}
    for view in batch.values():
        assert view.shape == (8, 3, 32, 32) and view.dtype == torch.uint8
    assert torch.equal(batch["view1"], batch["view2"])  # the same scenes ...
    data.trainer = SimpleNamespace(training=True, global_rank=0, global_step=0)
    torch.manual_seed(0)
    views = data.on_after_batch_transfer(batch, 0)
    assert views["view1"].shape == (8, 3, 32, 32) and views["view1"].dtype == torch.float32
    assert not torch.allclose(views["view1"], views["view2"])  # ... augmented independently
    again = next(iter(_module(root).train_dataloader()))
    assert torch.equal(again["view1"], batch["view1"])  # batches follow the seed


def test_validation_batches_are_fixed(root):
    first = list(_module(root).val_dataloader())
    second = list(_module(root).val_dataloader())
    assert len(first) == 2
    for a, b in zip(first, second, strict=True):
        assert a["view1"].dtype == torch.float32 and a["view1"].shape == (8, 3, 32, 32)
        assert torch.equal(a["view1"], b["view1"]) and torch.equal(a["view2"], b["view2"])
        assert not torch.equal(a["view1"], a["view2"])
    data = _module(root)
    passed = data.on_after_batch_transfer(first[0], 0)  # no trainer: evaluation
    assert torch.equal(passed["view1"], first[0]["view1"])


def test_presence_labels_of_a_hand_made_scene():
    attributes = {name: np.zeros((2, 11), np.uint8) for name in ("color", "shape", "size",
                                                                 "material")}
    # scene 0: entity 1 a large red metal cube (visible), entity 2 a small blue rubber sphere
    # (hidden), entity 3 a small cyan metal cylinder (visible); scene 1: no objects
    for entity, (size, color, material, shape) in {1: (1, 2, 2, 1), 2: (2, 3, 1, 2),
                                                   3: (2, 7, 2, 3)}.items():
        for name, code in zip(("size", "color", "material", "shape"),
                              (size, color, material, shape), strict=True):
            attributes[name][0, entity] = code
    visible = np.zeros((2, 11), bool)
    visible[0, [0, 1, 3]] = True  # the background is visible too, but it is no object
    obj = ObjectSplit(images=np.zeros((2, 3, 4, 4), np.uint8), masks=np.zeros((2, 4, 4),
                      np.uint8), visible=visible, attributes=attributes, index=np.arange(2))
    names, labels = presence_labels(obj)
    assert len(names) == 96 and names == presence_names() and len(set(names)) == 96
    assert labels.shape == (2, 96) and labels.dtype == np.uint8
    present = {names[j] for j in np.flatnonzero(labels[0])}
    assert present == {"present_large_red_metal_cube", "present_small_cyan_metal_cylinder"}
    assert labels[1].sum() == 0


def test_object_data_and_readouts(root, tmp_path):
    data = _module(root)
    train, test = data.object_data("train"), data.object_data("test")
    assert len(train) + len(test) == 6 and not set(train.index) & set(test.index)
    assert train.images.shape == (len(train), 3, 32, 32) and train.images.dtype == np.uint8
    assert train.masks.shape == (len(train), 32, 32) and train.visible.shape == (len(train), 11)
    for i in range(len(train)):  # visible objects: exactly the entities on the mask
        on_mask = np.zeros(11, bool)
        on_mask[np.unique(train.masks[i])] = True
        on_mask[0] = False
        np.testing.assert_array_equal(train.visible[i], on_mask)
    assert set(train.attributes) == {"color", "shape", "size", "material", "x", "y", "z",
                                     "rotation"}
    splits = data.readout_data()
    names, labels = presence_labels(train)
    for part, obj in (("train", train), ("test", test)):
        split = splits[part]
        mode, images = split.inputs["image"]
        assert mode == 1 and images.dtype == torch.uint8 and images.shape == (len(obj), 3, 32, 32)
        assert split.transforms[1](images[:2]).dtype == torch.float32
        np.testing.assert_array_equal(split.factors["num_objects"], obj.visible.sum(1))
        assert split.factor_type("num_objects") == "continuous"
        assert all(split.factor_type(n) == "binary" for n in split.factors if n != "num_objects")
        assert set(split.kinds.values()) == {"content"}
        assert {t.factor for t in split.tasks} == set(split.factors)
    included = [n for n in names if n in splits["train"].factors]
    excluded = splits["train"].excluded
    assert set(included) | set(excluded) == set(names) and not set(included) & set(excluded)
    for n in included:
        np.testing.assert_array_equal(splits["train"].factors[n], labels[:, names.index(n)])
        assert splits["train"].factors[n].sum() >= 1 and splits["test"].factors[n].sum() >= 1
    assert all("positives" in why for why in excluded.values())
    control = data.control_data()
    assert set(control.factors) == set(splits["train"].factors)

    data.save_state(tmp_path)
    _module(root).load_state(tmp_path)
    with pytest.raises(DataError, match="sample splits differ"):
        _module(root, seed=1).load_state(tmp_path)


def test_too_few_scenes(tmp_path):
    generate_clevr(tmp_path, 3, seed=0)
    with pytest.raises(DataError, match="leave no scenes"):
        ClevrData(root=str(tmp_path), scenes=3, size=16).prepare()
