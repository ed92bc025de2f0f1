import numpy as np
import pytest
import torch

from blockident.data.base import StepStream
from blockident.data.latents import LatentSizes, MultimodalLatents
from blockident.data.mixing import InvertibleMLP
from blockident.data.numerical import NumericalData


def sample(n=500, seed=0, **kw):
    latents = MultimodalLatents(LatentSizes(3, 4, 2), **kw)
    return latents.sample(n, torch.Generator().manual_seed(seed))


def test_groups_have_declared_sizes():
    z = sample()
    assert {k: v.shape for k, v in z.items()} == {
        "c": (500, 3), "s": (500, 4), "s~": (500, 4), "m1": (500, 2), "m2": (500, 2)}


@pytest.mark.parametrize("prob", [0.0, 0.5, 1.0])
def test_style_changes_with_given_probability(prob):
    z = sample(n=4000, style_change_prob=prob)
    changed = (z["s"] != z["s~"]).float().mean().item()
    assert abs(changed - prob) < 0.03


def test_modality_specific_latents_are_independent_draws():
    z = sample(n=4000)
    corr = np.corrcoef(z["m1"][:, 0], z["m2"][:, 0])[0, 1]
    assert abs(corr) < 0.05


def test_content_dependent_style_correlates_style_with_content():
    plain, dependent = sample(n=4000), sample(n=4000, content_dependent_style=True)

    def r2(z):
        x, y = np.c_[z["c"].numpy(), np.ones(len(z["c"]))], z["s"].numpy()
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        return 1 - ((y - x @ coef) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()

    assert r2(plain) < 0.01 < 0.3 < r2(dependent)


def test_statistical_dependence_draws_wishart_covariances():
    z = sample(n=20000, statistical_dependence=True)
    cov = np.cov(z["c"].numpy().T)
    assert np.abs(cov - np.eye(3)).max() > 0.5  # not the identity any more
    with pytest.raises(ValueError, match="style_change_prob"):
        sample(style_change_prob=1.5)


def test_original_wishart_shares_one_covariance_between_groups_of_equal_dimension():
    def chol(wishart):
        latents = MultimodalLatents(LatentSizes(3, 3, 2), statistical_dependence=True, seed=4,
                                    wishart=wishart)
        return {name: getattr(latents, f"chol_{name}") for name in ("c", "s", "a", "m1", "m2")}

    original, independent = chol("original"), chol("independent")
    assert torch.equal(original["c"], original["s"]) and torch.equal(original["c"], original["a"])
    assert torch.equal(original["m1"], original["m2"])
    assert not torch.equal(independent["c"], independent["s"])
    assert not torch.equal(independent["m1"], independent["m2"])
    with pytest.raises(ValueError, match="wishart"):
        chol("shared")


def test_mixing_is_invertible_and_seeded():
    f = InvertibleMLP(6, n_layers=3, seed=3)
    x = torch.randn(100, 6)
    assert torch.allclose(f.inverse(f(x)), x, atol=1e-4)
    assert torch.equal(f[0].weight, InvertibleMLP(6, 3, seed=3)[0].weight)
    assert not torch.equal(f[0].weight, InvertibleMLP(6, 3, seed=4)[0].weight)
    assert not any(p.requires_grad for p in f.parameters())


def test_views_share_content_only_through_mixing(tmp_path):
    data = NumericalData(content_dim=2, style_dim=2, modality_dim=1, seed=1)
    z = data.simulation.sample(50, torch.Generator().manual_seed(0))
    sim = data.simulation
    assert torch.allclose(sim.f1.inverse(z["x1"]), torch.cat([z["c"], z["s"], z["m1"]], 1),
                          atol=1e-4)
    assert torch.allclose(sim.f2.inverse(z["x2"]), torch.cat([z["c"], z["s~"], z["m2"]], 1),
                          atol=1e-4)
    shared = NumericalData(content_dim=2, style_dim=2, modality_dim=1, shared_mixing=True)
    assert shared.simulation.f1 is shared.simulation.f2


def test_saved_state_restores_the_same_simulation(tmp_path):
    a = NumericalData(content_dim=2, style_dim=2, modality_dim=1, seed=1,
                      content_dependent_style=True)
    a.save_state(tmp_path)
    b = NumericalData(content_dim=2, style_dim=2, modality_dim=1, seed=2,
                      content_dependent_style=True)
    b.load_state(tmp_path)
    x = torch.randn(10, 5)
    assert torch.equal(a.simulation.f1(x), b.simulation.f1(x))
    assert torch.equal(a.simulation.latents.B, b.simulation.latents.B)
    with pytest.raises(FileNotFoundError, match="simulation.pt"):
        b.load_state(tmp_path / "missing")


def test_stream_is_a_function_of_the_step():
    data = NumericalData(content_dim=2, style_dim=1, modality_dim=1, batch_size=4,
                         negatives=True)
    stream = StepStream(data._training_batch, seed=0)
    it = iter(stream)
    batches = [next(it) for _ in range(5)]
    assert set(batches[0]) == {"view1", "view2", "neg1", "neg2"}
    stream.start_step = 3
    resumed = next(iter(stream))
    assert torch.equal(resumed["view1"], batches[3]["view1"])
    other_rank = next(iter(StepStream(data._training_batch, seed=0, rank=1)))
    assert not torch.equal(other_rank["view1"], batches[0]["view1"])


def test_loader_workers_draw_the_same_batches_in_the_same_order():
    def first_batches(num_workers):
        data = NumericalData(content_dim=2, style_dim=1, modality_dim=1, batch_size=4,
                             negatives=True, num_workers=num_workers)
        loader = iter(data.train_dataloader())
        return [next(loader) for _ in range(5)]

    alone, with_workers = first_batches(0), first_batches(2)
    for a, b in zip(alone, with_workers, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(alone[0]["view1"], alone[1]["view1"])


def test_readout_data_has_every_group_and_the_permuted_control():
    data = NumericalData(content_dim=2, style_dim=2, modality_dim=1, readout_train=30,
                         readout_test=20)
    splits = data.readout_data()
    assert len(splits["train"].factors["c"]) == 30 and len(splits["test"].factors["c"]) == 20
    tasks = {(t.encoding, t.inputs, t.factor) for t in splits["train"].tasks}
    assert ("view1", "view1_permuted", "c'") in tasks and ("view2", "view2", "m1") in tasks
    train = splits["train"]
    x1p = train.inputs["view1_permuted"][1]
    restored = data.simulation.f1.inverse(x1p)[:, :2]
    assert torch.allclose(restored, torch.as_tensor(train.factors["c'"]), atol=1e-4)
    assert not np.allclose(train.factors["c'"], train.factors["c"])


def test_oracle_and_control_data_hold_the_latents_each_view_observes():
    data = NumericalData(content_dim=2, style_dim=3, modality_dim=1, readout_train=40,
                         readout_test=30, seed=0)
    split = data.readout_data()["train"]
    oracle = split.oracle["view1"]
    assert oracle.shape == (40, 2 + 3 + 1 + 6)  # c, s, m1 and the observation x1
    assert np.allclose(oracle[:, :2], split.factors["c"])
    assert np.allclose(oracle[:, 2:5], split.factors["s"])
    assert np.allclose(oracle[:, 6:], split.inputs["view1"][1].numpy())
    assert np.allclose(split.oracle["view2"][:, 2:5], split.factors["s~"])
    assert np.allclose(split.oracle["view1_permuted"][:, :2], split.factors["c'"])
    control = data.control_data()
    assert set(control.factors) == {"c", "s", "s~", "m1", "m2"}
    assert not np.allclose(control.factors["c"][:30], data.readout_data()["test"].factors["c"])
