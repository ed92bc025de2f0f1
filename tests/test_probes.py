"""Linear probe (L-BFGS sweep) and few-shot prototypes on frozen features."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from blockident.readouts.probes import FewShot, LinearProbe, fit_logistic, stratified_split


def blobs(n=300, classes=4, dim=6, spread=1.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(classes, size=n)
    centres = rng.normal(scale=3, size=(classes, dim))
    return centres[y] + spread * rng.normal(size=(n, dim)), y


def test_lbfgs_logistic_regression_agrees_with_sklearn():
    x, y = blobs(n=200, classes=3, spread=2.0)
    c = 0.05
    ours = fit_logistic(torch.as_tensor(x), torch.as_tensor(y), 3, lam=1 / (c * len(x)))
    theirs = LogisticRegression(C=c, tol=1e-10, max_iter=10000).fit(x, y)
    w, b = (t.numpy() for t in ours)
    prob = torch.softmax(torch.as_tensor(x @ w + b), 1).numpy()
    np.testing.assert_allclose(prob, theirs.predict_proba(x), atol=1e-4)
    # both are identified up to a constant per feature / intercept shift over the classes
    np.testing.assert_allclose(w - w.mean(1, keepdims=True), theirs.coef_.T
                               - theirs.coef_.T.mean(1, keepdims=True), atol=1e-3)


def test_probe_scores_separable_classes_and_both_solvers_agree():
    x, y = blobs(n=600, spread=0.5)
    x, y, xt, yt = x[:400], y[:400], x[400:], y[400:]
    ours = LinearProbe()(x, y, xt, yt)
    assert ours["top1"] > 0.97 and ours["mean_per_class"] > 0.97
    assert LinearProbe(solver="sklearn")(x, y, xt, yt) == pytest.approx(ours, abs=0.02)


def test_probe_sweep_picks_a_strong_penalty_for_noise_and_refines_it():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(120, 30)), rng.integers(2, size=120)
    probe, tried = LinearProbe(), []
    fit = probe.fit_predict
    probe.fit_predict = lambda x, y, lam, xt: tried.append(np.log10(lam)) or fit(x, y, lam, xt)
    lam = probe.select(x, y)
    assert lam >= 10 ** -1.5  # pure noise: the validation split prefers heavy shrinkage
    assert tried[:7] == pytest.approx(probe.coarse)
    centre = tried[7] - probe.fine[0]  # the fine grid surrounds a coarse value, lam near it
    assert centre == pytest.approx(round(centre)) and round(centre) in probe.coarse
    assert tried[7:] == pytest.approx([centre + d for d in probe.fine])
    assert abs(np.log10(lam) - centre) <= 0.5


def test_stratified_split_keeps_every_class_in_both_parts():
    y = np.array([0] * 10 + [1] * 5 + [2] * 2)
    train, val = stratified_split(y, 0.2, seed=0)
    assert sorted(np.concatenate([train, val])) == list(range(len(y)))
    assert np.bincount(y[val]).tolist() == [2, 1, 1]
    assert set(y[train]) == {0, 1, 2}


def test_mean_per_class_weights_classes_equally():
    x = np.r_[np.zeros((90, 1)), np.ones((10, 1))]
    y = np.r_[np.zeros(90, int), np.ones(10, int)]
    probe = LinearProbe()
    probe.select = lambda *a: 1e6  # a penalty so strong that every sample gets the majority
    scores = probe(x, y, x, y)
    assert scores["top1"] == pytest.approx(0.9) and scores["mean_per_class"] == 0.5


def test_fewshot_episodes_are_seeded_and_prototypes_classify():
    x, y = blobs(n=600, classes=8, spread=0.3)
    shot = FewShot(episodes=200, seed=3)
    first = shot.episode_indices(y)
    assert first.shape == (200, 5, 20) and (shot.episode_indices(y) == first).all()
    assert all(len(set(y[e[w]])) == 1 for e in first[:20] for w in range(5))
    assert all(len(set(y[e[:, 0]])) == 5 for e in first[:20])
    good = shot(None, None, x, y)
    assert good["top1"] > 0.95 and 0 <= good["accuracy_ci95"] < 0.02
    noise = shot(None, None, np.random.default_rng(0).normal(size=x.shape), y)
    assert abs(noise["top1"] - 0.2) < 0.03 and noise["accuracy_ci95"] > 0.005
    assert np.isnan(FewShot(ways=9)(None, None, x, y)["top1"])  # only 8 classes
