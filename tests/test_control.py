"""Positive controls and the identified share."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from blockident.data.base import ReadoutSplit, ReadoutTask
from blockident.models.mlp import mlp_pair
from blockident.readouts.control import (
    control_groups,
    control_names,
    oracle_encodings,
    train_supervised,
)
from blockident.readouts.evaluate import encode_splits, readout_rows
from blockident.readouts.share import chance_levels, identified_share_rows, kind_summary

KINDS = {"sign": "content", "which": "content", "level": "style", "noise": "style"}
TYPES = {"sign": "binary", "which": "categorical", "level": "continuous", "noise": "binary"}


def _split(n: int, seed: int) -> ReadoutSplit:
    """Observations (n, 8) of which three factors are functions; ``noise`` is independent."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    factors = {"sign": (x[:, 0] > 0).astype(np.uint8), "which": x[:, 1:4].argmax(1),
               "level": np.tanh(x[:, 4] - x[:, 5]), "noise": rng.integers(0, 2, n)}
    return ReadoutSplit(inputs={"x": (1, torch.from_numpy(x))}, factors=factors, kinds=KINDS,
                        tasks=[ReadoutTask("x", "x", f) for f in KINDS], types=TYPES,
                        oracle={"x": np.stack([factors[f] for f in KINDS], 1)})


READOUT = OmegaConf.create({
    "standardize": True, "binary": ["logreg"], "seed": 0,
    "categorical": {"logreg": {"_target_": "sklearn.linear_model.LogisticRegression"}},
    "regressors": {"linear": {"_target_": "sklearn.linear_model.LinearRegression"}}})


def _scores(rows) -> dict[tuple[str, str], float]:
    table = pd.DataFrame(rows)
    headline = table[table.metric.isin(["balanced_accuracy", "accuracy", "r2"])]
    return {(r.encoding, r.factor): r.value for r in headline.itertuples()}


def test_supervised_control_reads_learnable_factors_and_not_noise(tmp_path):
    torch.manual_seed(0)
    control = train_supervised(
        mlp_pair(8, 4, [8, 8]), _split(2000, 0), tmp_path / "all.pt", steps=300, lr=3e-3,
        batch_size=128, trainer={"accelerator": "cpu", "enable_progress_bar": False})
    splits = {"train": _split(1000, 1), "test": _split(1000, 2)}
    splits, encodings = encode_splits(control, splits)
    scores = _scores(readout_rows(splits, encodings, READOUT)[0])
    assert scores[("x", "sign")] > 0.9       # balanced accuracy, chance 0.5
    assert scores[("x", "which")] > 0.8      # accuracy, chance 1/3
    assert scores[("x", "level")] > 0.8      # R2, chance 0
    assert abs(scores[("x", "noise")] - 0.5) < 0.1
    # an untrained network of the same architecture does not read them as well
    torch.manual_seed(0)
    untrained = mlp_pair(8, 4, [8, 8])
    control.encoders.load_state_dict(untrained.state_dict())
    before = _scores(readout_rows(*encode_splits(control, splits), READOUT)[0])
    assert before[("x", "level")] < scores[("x", "level")] - 0.1


def test_a_saved_control_is_reused_and_retrained_when_the_request_changes(tmp_path, caplog):
    caplog.set_level("INFO", "blockident")
    options = dict(lr=1e-3, batch_size=32, trainer={"accelerator": "cpu",
                                                    "enable_progress_bar": False})
    path = tmp_path / "all.pt"
    first = train_supervised(mlp_pair(8, 4, [8]), _split(100, 0), path, steps=5, **options)
    assert "training" in caplog.text
    caplog.clear()
    again = train_supervised(mlp_pair(8, 4, [8]), _split(100, 0), path, steps=5, **options)
    assert "training" not in caplog.text
    for a, b in zip(first.encoders.parameters(), again.encoders.parameters(), strict=True):
        assert torch.equal(a, b)
    train_supervised(mlp_pair(8, 4, [8]), _split(100, 0), path, steps=6, **options)
    assert "training" in caplog.text


def test_oracle_reads_every_factor_and_needs_latents():
    splits = {"train": _split(500, 1), "test": _split(500, 2)}
    scores = _scores(readout_rows(splits, oracle_encodings(splits), READOUT)[0])
    assert min(scores[("x", f)] for f in ("sign", "which", "level")) > 0.95
    splits["test"].oracle = {}
    with pytest.raises(ValueError, match="readout.control=oracle needs the true latents"):
        oracle_encodings(splits)


def test_control_names_and_groups():
    assert control_names(OmegaConf.create({"control": "supervised"})) == ["supervised"]
    assert control_names(OmegaConf.create({"control": ["oracle", "none"]})) == ["oracle"]
    assert control_names(OmegaConf.create({"control": "none"})) == []
    with pytest.raises(ValueError, match="unknown"):
        control_names(OmegaConf.create({"control": "supervized"}))
    groups = control_groups(_split(10, 0), "kind")
    assert {k: [t.factor for t in s.tasks] for k, s in groups.items()} == {
        "content": ["sign", "which"], "style": ["level", "noise"]}
    assert list(control_groups(_split(10, 0), "all")) == ["all"]


def _row(encoding, factor, kind, metric, value, readout="mlp"):
    return {"encoding": encoding, "factor": factor, "kind": kind, "readout": readout,
            "metric": metric, "value": value}


def test_identified_share_per_factor_and_kind():
    chance = {"a": ("balanced_accuracy", 0.5), "b": ("balanced_accuracy", 0.5),
              "c": ("balanced_accuracy", 0.5), "r": ("r2", 0.0)}
    values = {  # factor: (kind, trained, untrained, supervised)
        "a": ("content", 0.9, 0.6, 1.0), "b": ("style", 0.55, 0.6, 0.9),
        "c": ("style", 0.52, 0.5, 0.55), "r": ("style", 0.2, 0.1, 0.8)}
    rows = [_row(prefix + "frames", f, kind, chance[f][0], v)
            for f, (kind, *scores) in values.items()
            for prefix, v in zip(("", "untrained:", "supervised:"), scores, strict=True)]
    rows.append(_row("frames", "a", "content", "roc_auc", 0.99))  # not a headline metric
    table = pd.DataFrame(rows)
    shares = {r["factor"]: r["value"] for r in identified_share_rows(table, chance, margin=0.2)}
    assert shares["a"] == pytest.approx(0.8)
    assert shares["b"] == pytest.approx(0.125)
    assert math.isnan(shares["c"])          # control 0.55: within 0.2 of chance, unreadable
    assert shares["r"] == pytest.approx(0.25)
    kinds = kind_summary(table, chance, margin=0.2).set_index(["metric", "kind"])
    style = kinds.loc[("balanced_accuracy", "style")]
    assert style["factors"] == 1 and style["unreadable"] == "c"
    assert style["trained"] == pytest.approx(0.55) and style["supervised"] == pytest.approx(0.9)
    assert style["identified_share"] == pytest.approx(0.125)
    assert kinds.loc[("r2", "style"), "identified_share"] == pytest.approx(0.25)
    assert kinds.loc[("balanced_accuracy", "content"), "untrained"] == pytest.approx(0.6)


def test_chance_levels_follow_the_factor_type():
    chance = chance_levels(_split(300, 0))
    assert chance["sign"] == ("balanced_accuracy", 0.5)
    assert chance["which"] == ("accuracy", pytest.approx(1 / 3))
    assert chance["level"] == ("r2", 0.0)


def test_a_misspelt_control_fails_before_training(tmp_path, capsys):
    from blockident.cli import main

    run_dir = tmp_path / "run"
    assert main(["train", "experiment=numerical", f"run_dir={run_dir}",
                 "readout.control=supervized", "trainer.max_steps=2"]) == 2
    assert "readout.control: unknown ['supervized']" in capsys.readouterr().err
    assert not run_dir.exists()
