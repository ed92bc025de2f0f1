"""Latent-factor experiments: the data module on a dSprites stand-in, and a run end to end."""

import numpy as np
import pandas as pd
import pytest
import torch

from blockident.cli import main
from blockident.data.factor_pairs import FactorPairsData


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("dsprites")


def _data(root, **pairs):
    return FactorPairsData("dsprites", str(root), {"rule": "resample_style",
                                                   "content": ["shape", "scale"], **pairs},
                           batch_size=32, readout_max=100, generate={"subsample": 4000})


def test_batches_pair_encoder_training_samples_that_share_the_content(root):
    data = _data(root)
    data.prepare()
    assert sum(len(v) for v in data.splits.values()) == 4000
    assert not set(data.splits["encoder_train"]) & set(data.splits["readout_test"])
    rng = np.random.default_rng(0)
    anchors = rng.integers(0, len(data.train), 500)
    partner = data.sampler(data.train, anchors, rng)
    for name in ("shape", "scale"):
        column = data.train.column(name)
        assert (column[anchors] == column[partner]).all()
    assert (data.train.column("posX")[anchors] != data.train.column("posX")[partner]).any()
    batch = data._batch(torch.Generator().manual_seed(0))
    assert batch["view1"].shape == (32, 3, 64, 64) and batch["view1"].dtype == torch.uint8


def test_readout_data_reads_every_varying_factor_with_its_kind_and_type(root):
    splits = _data(root).readout_data()
    test = splits["test"]
    assert set(test.factors) == {"shape", "scale", "orientation", "posX", "posY"}  # not color
    assert test.kinds == {"shape": "content", "scale": "content", "orientation": "style",
                          "posX": "style", "posY": "style"}
    assert test.types["shape"] == "categorical" and test.types["posX"] == "continuous"
    assert test.inputs["images"][1].shape == (100, 3, 64, 64)


def test_a_bad_rule_or_content_is_named(root):
    with pytest.raises(ValueError, match="pairs.rule must be one of"):
        _data(root, rule="nearest")
    data = _data(root, content=["colour"])
    data.prepare()
    with pytest.raises(ValueError, match=r"unknown factors \['colour'\]"):
        data._batch(torch.Generator().manual_seed(0))


def test_dsprites_experiment_runs_with_grid_steps(root, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["run", "experiment=dsprites", f"data.root={root}", f"run_dir={run_dir}",
                 "data.generate.subsample=4000", "data.pairs.rule=grid_steps",
                 "data.pairs.content=[shape]", "data.batch_size=16", "data.readout_max=150",
                 "trainer.max_steps=4", "trainer.val_check_interval=4", "checkpoint_every=4",
                 "model.hidden_size=16", "readout.control_steps=4",
                 "trainer.enable_progress_bar=false", "~readout.regressors.mlp",
                 "~readout.categorical.mlp"]) == 0
    results = pd.read_csv(run_dir / "results.csv")
    assert set(results.encoding) == {"images", "untrained:images", "supervised:images"}
    assert set(results[results.metric == "accuracy"].factor) == {"shape"}
    assert {"scale", "orientation", "posX", "posY"} <= set(results[results.metric == "r2"].factor)
    assert (run_dir / "factor_split.npz").exists()
    on_grid = results[results.metric == "grid_accuracy"]
    assert set(on_grid.factor) == {"scale", "orientation", "posX", "posY"}
    assert on_grid.value.between(0, 1).all()
    whole = results[results.factor == "*"]
    assert set(zip(whole.readout, whole.metric, strict=True)) == {
        ("mcc", "pearson"), ("mcc", "spearman"), ("dci", "disentanglement"),
        ("dci", "completeness"), ("dci", "informativeness")}


def test_3dident_experiment_runs_on_its_stand_in(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["run", "experiment=3dident", f"data.root={tmp_path / '3dident'}",
                 f"run_dir={run_dir}", "data.generate.n_train=300", "data.generate.size=32",
                 "data.size=32", "data.batch_size=16", "data.readout_max=30",
                 "trainer.max_steps=3", "trainer.val_check_interval=3", "checkpoint_every=3",
                 "model.hidden_size=16", "readout.control_steps=3",
                 "trainer.enable_progress_bar=false", "~readout.regressors.mlp"]) == 0
    results = pd.read_csv(run_dir / "results.csv")
    kinds = results[results.factor != "*"].drop_duplicates("factor").set_index("factor")["kind"]
    assert len(kinds) == 10 and kinds["pos_x"] == "content" and kinds["rot_alpha"] == "style"


def test_the_recorded_splits_are_checked_when_evaluating(root, tmp_path):
    _data(root).save_state(tmp_path)
    _data(root).load_state(tmp_path)  # the same splits: accepted
    other = FactorPairsData("dsprites", str(root), {"rule": "resample_style", "content": ["shape"]},
                            readout_max=100, generate={"subsample": 4000}, seed=1)
    with pytest.raises(ValueError, match="sample splits differ"):
        other.load_state(tmp_path)
    with pytest.raises(FileNotFoundError, match="sample splits are missing"):
        _data(root).load_state(tmp_path / "elsewhere")
