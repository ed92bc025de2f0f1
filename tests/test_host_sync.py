"""Training steps that never read device data on the host.

On a GPU a host read of device data (``.item()``, ``nonzero``, a tensor in an ``if``) waits for
every queued kernel, so the device idles while the host prepares the next step. Tensors on the
``meta`` device have shapes but no data, and such a read raises on them: a step that runs on
meta tensors makes none. torch has no autocast for meta tensors; the code under test only
switches autocast off, so the tests make ``torch.autocast`` a no-op.
"""

import contextlib

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

from blockident.data.augment import Augment
from blockident.engine import ContrastiveModule
from blockident.engine_objects import ObjectsModule
from blockident.losses import InfoNCE, LpInfoNCE, SimSiam, _SquaredDistanceLogSumExp
from blockident.models.heads import image_pair
from blockident.models.mlp import mlp_pair
from blockident.models.multimodal import imgtxt_pair

META = torch.device("meta")


@pytest.fixture(autouse=True)
def no_autocast(monkeypatch):
    monkeypatch.setattr(torch, "autocast", lambda *args, **kwargs: contextlib.nullcontext())


def train_step(module: ContrastiveModule, batch: dict[str, torch.Tensor]) -> None:
    """The step Lightning runs: loss, backward, gradient clipping, optimiser and schedule."""
    options = module.configure_optimizers()
    optimizer, scheduler = options["optimizer"], options["lr_scheduler"]["scheduler"]
    loss, _ = module._losses(batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), 2.0)
    optimizer.step()
    scheduler.step()


def test_a_host_read_of_meta_data_raises():
    x = torch.randn(64, 3, device=META, requires_grad=True)
    with pytest.raises(RuntimeError, match="meta"):
        bool((x > 0).any())
    with pytest.raises(NotImplementedError):  # the CPU loss's far-anchor branch: nonzero
        _SquaredDistanceLogSumExp.apply(x, x, 1.0)


def test_numerical_step_reads_nothing_on_the_host():
    module = ContrastiveModule(mlp_pair(15, 5, [10, 10]), LpInfoNCE(), max_steps=10).to(META)
    batch = {name: torch.randn(32, 15, device=META)
             for name in ("view1", "view2", "neg1", "neg2")}
    train_step(module, batch)


@pytest.mark.parametrize("backbone", ["convnet", "resnet"])
@pytest.mark.parametrize("loss", ["nt_xent", "simsiam"])
def test_image_step_with_augmentation_reads_nothing_on_the_host(backbone, loss):
    """SimCLR's augmentations (kornia's crop and blur among them) and the step."""
    augment = Augment(32, jitter=0.4, flip=True, resized_crop=(0.2, 1.0), grayscale=0.2,
                      blur=0.5).to(META).train()
    batch = {f"view{v}": augment(torch.empty(8, 3, 40, 40, dtype=torch.uint8, device=META))
             for v in (1, 2)}
    criterion = InfoNCE(0.1, within_view=True) if loss == "nt_xent" else SimSiam(8)
    module = ContrastiveModule(image_pair(backbone, hidden_size=16, encoding_size=8), criterion,
                               max_steps=10).to(META)
    train_step(module, batch)


def test_image_text_step_reads_nothing_on_the_host():
    module = ContrastiveModule(imgtxt_pair(50, hidden_size=16, encoding_size=8), InfoNCE(0.1),
                               max_steps=10).to(META)
    batch = {"view1": torch.randn(8, 3, 32, 32, device=META),
             "view2": torch.randint(0, 50, (8, 12), device=META)}
    train_step(module, batch)


def test_object_step_with_global_losses_reads_nothing_on_the_host():
    """ViT and slot attention with the global terms; the slot terms' Hungarian matching runs
    in scipy on the host (as in the original method) and is left out."""
    with initialize_config_module("blockident.conf", version_base="1.3"):
        cfg = compose("config", ["experiment=objects", "losses=global", "model.backbone.depth=1",
                                 "data.size=32"])
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg.pop("untrained")
    module = ObjectsModule(instantiate(model_cfg), instantiate(cfg.loss), max_steps=10).to(META)
    batch = {f"view{v}": torch.rand(8, 3, 32, 32, device=META) for v in (1, 2)}
    train_step(module, batch)
