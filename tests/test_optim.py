"""Optimiser/schedule configs and the SimSiam loss on the one engine."""

import math

import pytest
import torch

from blockident.engine import ContrastiveModule
from blockident.losses import SimSiam
from blockident.models.mlp import mlp_pair
from blockident.optim import configure, lr_factor


def lrs(cfg, steps, max_steps=10, batch_size=None):
    out = configure([torch.nn.Parameter(torch.zeros(1))], cfg, max_steps, batch_size)
    optimizer, scheduler = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert out["lr_scheduler"]["interval"] == "step"
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return optimizer, values


def test_default_is_adam_at_a_constant_rate():
    optimizer, values = lrs({"lr": 1e-3}, 5)
    assert type(optimizer) is torch.optim.Adam and values == [1e-3] * 5


def test_warmup_then_cosine_decay_with_adamw_weight_decay_and_batch_scaling():
    cfg = {"name": "adamw", "lr": 0.1, "weight_decay": 0.05, "schedule": "cosine",
           "warmup_steps": 4, "scale_batch": 256, "min_lr_ratio": 0.0}
    optimizer, values = lrs(cfg, 12, max_steps=12, batch_size=512)
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.param_groups[0]["weight_decay"] == 0.05
    assert values[:4] == pytest.approx([0.05, 0.1, 0.15, 0.2])  # 0.2 = 0.1 * 512 / 256
    assert values[4] == pytest.approx(0.2)
    assert values[8] == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert all(a >= b for a, b in zip(values[4:], values[5:], strict=False))
    assert lr_factor(12, 12, 4, "cosine") == pytest.approx(0.0)


def test_bad_names_are_errors():
    with pytest.raises(ValueError, match="optim.name"):
        lrs({"name": "sgd"}, 1)
    with pytest.raises(ValueError, match="optim.schedule"):
        lrs({"schedule": "step"}, 1)


def test_simsiam_stops_gradients_and_its_predictor_is_optimised():
    torch.manual_seed(0)
    loss = SimSiam(dim=8)
    z1, z2 = torch.randn(16, 8, requires_grad=True), torch.randn(16, 8, requires_grad=True)
    value = loss(z1, z2)
    assert -1 <= value.item() <= 1
    # the gradient reaching z2 is only through its own prediction p2, never as a target
    grad2, = torch.autograd.grad(value, z2, retain_graph=True)
    only_p2 = -0.5 * torch.nn.functional.cosine_similarity(
        loss.predictor(z2), z1.detach(), dim=1).mean()
    expected, = torch.autograd.grad(only_p2, z2)
    torch.testing.assert_close(grad2, expected)
    module = ContrastiveModule(mlp_pair(4, 8, [8]), loss, optim={"lr": 1e-3})
    optimised = {id(p) for group in module.configure_optimizers()["optimizer"].param_groups
                 for p in group["params"]}
    assert {id(p) for p in loss.predictor.parameters()} <= optimised
