"""Readouts chosen by factor type, on encodings of a stand-in encoder."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from blockident.data.base import ReadoutSplit, ReadoutTask
from blockident.readouts.evaluate import encode_splits, headline, readout_rows

CFG = OmegaConf.create({
    "standardize": True, "only_content": False, "seed": 0, "binary": ["mlp", "logreg"],
    "mlp": {"max_epochs": 30},
    "regressors": {"linear": {"_target_": "sklearn.linear_model.LinearRegression"}},
    "categorical": {"logreg": {"_target_": "sklearn.linear_model.LogisticRegression"}},
})


class Identity:
    """Encodes x as itself (view 1) or its negative (view 2)."""

    device = torch.device("cpu")

    def encode(self, view, x, transform=None):
        x = transform(x) if transform else x
        return (x if view == 1 else -x).numpy()


def _split(seed, n=300):
    """x = (a, b, c, noise): a continuous, b a class in 0..2, c two present/absent labels."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.integers(0, 3, n)
    c = rng.integers(0, 2, (n, 2))
    x = torch.tensor(np.column_stack([a, b, c, rng.normal(size=n)]), dtype=torch.float32)
    factors = {"a": a, "b": b, "c0": c[:, 0], "c1": c[:, 1], "noise": rng.normal(size=n)}
    kinds = {"a": "content", "b": "content", "c0": "content", "c1": "style", "noise": "style"}
    types = {"b": "categorical", "c0": "binary", "c1": "binary"}
    tasks = [ReadoutTask(enc, enc, f) for enc in ("x", "neg") for f in factors]
    return ReadoutSplit({"x": (1, x), "neg": (2, x)}, factors, kinds, tasks, types)


@pytest.fixture(scope="module")
def results():
    splits, encodings = encode_splits(Identity(), {"train": _split(0), "test": _split(1)})
    return readout_rows(splits, encodings, CFG)


def test_each_factor_type_gets_its_readouts(results):
    rows, _ = results
    got = {(r["encoding"], r["factor"], r["readout"], r["metric"]) for r in rows}
    for enc in ("x", "neg"):
        assert {(enc, "a", "linear", "r2"), (enc, "noise", "linear", "r2"),
                (enc, "b", "logreg", "accuracy")} <= got
        for f in ("c0", "c1"):
            assert {(enc, f, r, "balanced_accuracy") for r in ("mlp", "logreg")} <= got
    assert not any(r["factor"] == "b" and r["metric"] == "r2" for r in rows)


def test_readable_factors_score_high_and_noise_low(results):
    rows, _ = results
    value = {(r["encoding"], r["factor"], r["readout"], r["metric"]): r["value"] for r in rows}
    assert value[("x", "a", "linear", "r2")] > 0.99
    assert value[("x", "noise", "linear", "r2")] < 0.05
    assert value[("neg", "c1", "logreg", "balanced_accuracy")] == 1.0
    assert value[("x", "b", "logreg", "accuracy")] > 0.9


def test_binary_predictions_are_saved_per_encoding_and_readout(results):
    _, predictions = results
    assert predictions["x/mlp"].shape == (300, 2)
    assert predictions["x/labels"].shape == (300, 2)
    assert list(predictions["neg/factors"]) == ["c0", "c1"]


def test_headline_means_per_kind(results):
    rows, _ = results
    means = headline(rows)
    style = [r["value"] for r in rows if r["encoding"] == "x" and r["readout"] == "logreg"
             and r["kind"] == "style" and r["metric"] == "balanced_accuracy"]
    assert means["readout/x/logreg/style_balanced_accuracy"] == pytest.approx(np.mean(style))


def test_only_content_and_missing_readouts():
    splits, encodings = encode_splits(Identity(), {"train": _split(0), "test": _split(1)})
    rows, _ = readout_rows(splits, encodings, OmegaConf.merge(CFG, {"only_content": True}))
    assert {r["kind"] for r in rows} == {"content"}
    no_binary = OmegaConf.merge(CFG, {"binary": []})
    with pytest.raises(ValueError, match="4 binary factors .* no 'binary'"):
        readout_rows(splits, encodings, no_binary)


def test_augmented_copies_repeat_the_training_factors():
    class AddOne(nn.Module):
        def forward(self, x):
            return x + 1

    splits, encodings = encode_splits(Identity(), {"train": _split(0), "test": _split(1)},
                                      AddOne(), copies=2)
    assert encodings["train"]["x"].shape == (900, 5)
    assert np.allclose(encodings["train"]["x"][300:600], encodings["train"]["x"][:300] + 1)
    neg = encodings["train"]["neg"]  # view 2 is not augmented, only repeated
    assert neg.shape == (900, 5) and np.array_equal(neg[600:], neg[:300])
    assert encodings["test"]["x"].shape == (300, 5)
    assert len(splits["train"].factors["a"]) == 900
