"""ObjectsModule (training, encodings, slots) and the composed configs of the object model."""

from functools import partial

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

from blockident.engine_objects import ObjectsModule
from blockident.errors import ConfigError
from blockident.models.mlp import mlp_pair
from blockident.models.objects import ObjectModel
from blockident.models.slots import (
    CrossAttentionDecoder,
    KMeansQueries,
    LearnedQueries,
    SampledQueries,
    SlotAttention,
)
from blockident.models.vit import ViT
from blockident.object_losses import ObjectLosses


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is fastest, and far faster on a busy machine (no
    oversubscription); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


OBJECT_FNS = {"slot_attention": partial(SlotAttention, iters=1),
              "cross_attention": partial(CrossAttentionDecoder, depth=1, heads=2)}
QUERIES = {"learned": partial(LearnedQueries, num=3),
           "sample": partial(SampledQueries, num=3, kind="mixture", components=2),
           "kmeans": partial(KMeansQueries, num=3, iters=2)}


def tiny(architecture="two_branch", object_fn="slot_attention", queries="learned"):
    vit = ViT(image_size=8, patch_size=4, dim=8, depth=1, heads=2, mlp_ratio=1)
    return ObjectModel(vit, OBJECT_FNS[object_fn], QUERIES[queries], architecture=architecture,
                       global_dim=4, proj_dim=4)


def loss_for(architecture):
    return ObjectLosses({"ctr": 1.0} if architecture == "global"
                        else {"ctr": 1.0, "ctr_img": 0.5, "ctr_all": 0.5, "sim_img": 0.1})


class Batches(torch.utils.data.Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.batches = [{"view1": torch.rand(4, 3, 8, 8, generator=g),
                         "view2": torch.rand(4, 3, 8, 8, generator=g)} for _ in range(n)]

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


class Recorder(L.Callback):
    def __init__(self):
        self.logged = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.logged.append({k: float(v) for k, v in trainer.callback_metrics.items()})


CASES = [("global", "slot_attention", "learned")] + [
    (a, f, q) for a in ("two_branch", "slots_global") for f in OBJECT_FNS for q in QUERIES]


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
@pytest.mark.parametrize("architecture,object_fn,queries", CASES)
def test_three_training_steps_give_finite_losses(architecture, object_fn, queries):
    torch.manual_seed(0)
    module = ObjectsModule(tiny(architecture, object_fn, queries), loss_for(architecture),
                           lr=1e-3, max_steps=3)
    before = [p.detach().clone() for p in module.parameters()]
    recorder = Recorder()
    trainer = L.Trainer(max_steps=3, accelerator="cpu", logger=False, callbacks=[recorder],
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(module, torch.utils.data.DataLoader(Batches(3), batch_size=None))
    assert len(recorder.logged) == 3
    terms = set(loss_for(architecture).weights)
    for logged in recorder.logged:
        assert {"train/loss"} | {f"train/{t}" for t in terms} <= set(logged)
        assert all(np.isfinite(v) for v in logged.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


@pytest.mark.parametrize("architecture", ["global", "two_branch", "slots_global"])
def test_encode_gives_global_representations_and_object_outputs_slots(architecture):
    module = ObjectsModule(tiny(architecture, queries="sample"), loss_for(architecture))
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    z = module.encode(1, x.float() / 255, batch_size=2)
    assert z.shape == (5, 4) and module.training  # the mode is restored
    assert np.allclose(z, module.encode(2, x.float() / 255))  # deterministic in eval mode
    slots, attn = module.object_outputs(x, batch_size=2)
    if architecture == "global":
        assert slots is None and attn is None
        return
    assert slots.shape == (5, 3, 8) and attn.shape == (5, 3, 2, 2)
    again, _ = module.object_outputs(x.float() / 255, batch_size=4)
    assert np.allclose(slots, again, atol=1e-5)  # uint8 scaled; same queries in every chunk
    more, attn = module.object_outputs(x, transform=lambda c: c.float() / 255, num_slots=4)
    assert more.shape == (5, 4, 8) and attn.shape == (5, 4, 2, 2)
    assert isinstance(module.model, ObjectModel)
    # the model's weights are stored once
    assert not any(k.startswith("model.") for k in module.state_dict())


def test_objects_module_rejects_other_models_and_slotless_object_losses():
    with pytest.raises(ConfigError, match="ObjectModel"):
        ObjectsModule(mlp_pair(4, 2, [2]), loss_for("two_branch"))
    with pytest.raises(ConfigError, match="need slots"):
        ObjectsModule(tiny("global"), loss_for("two_branch"))
    model = tiny()
    assert ObjectsModule(model.pair(), loss_for("two_branch")).model is model


def _compose(*overrides):
    with initialize_config_module("blockident.conf", version_base="1.3"):
        cfg = compose("config", ["experiment=objects", *overrides])
    OmegaConf.set_struct(cfg, False)
    cfg.model.pop("untrained")  # as the runner does
    return cfg


def test_configs_compose_with_nested_group_overrides():
    cfg = _compose("model/backbone=vit_small", "model.backbone.depth=6", "model.backbone.heads=8",
                   "model.object_fn.iters=5", "model/queries=kmeans",
                   "model.backbone.image_size=32", "model.architecture=slots_global")
    assert cfg.model.backbone.dim == 384 and cfg.model.backbone.patch_size == 16
    assert cfg.model.backbone.depth == 6 and cfg.model.backbone.heads == 8
    model = instantiate(cfg.model)
    assert model.architecture == "slots_global" and model.object_fn.iters == 5
    assert len(model.backbone.blocks) == 6 and isinstance(model.queries, KMeansQueries)
    assert model.object_fn.to_q.in_features == 384  # the backbone's width reached the parts


@pytest.mark.parametrize("overrides,weights", [
    ([], {"ctr": 1.0, "ctr_img": 1.0}),
    (["losses=global"], {"ctr": 1.0}),
    (["losses.ctr_img=0.5", "losses.ctr_all=0.25"], {"ctr": 1.0, "ctr_all": 0.25, "ctr_img": 0.5}),
    (["losses=sim"], {"sim": 1.0, "sim_img": 1.0}),
])
def test_loss_weights_come_from_the_losses_group(overrides, weights):
    cfg = _compose(*overrides)
    assert instantiate(cfg.loss).weights == weights


def test_default_configs_build_a_module_that_runs():
    cfg = _compose("model/object_fn=cross_attention", "model/queries=sample",
                   "model.backbone.depth=1", "model.backbone.image_size=16",
                   "model.backbone.patch_size=8")
    module = ObjectsModule(instantiate(cfg.model), instantiate(cfg.loss), max_steps=1)
    batch = {"view1": torch.rand(2, 3, 16, 16), "view2": torch.rand(2, 3, 16, 16)}
    module.log = lambda *a, **k: None  # outside a Trainer
    assert torch.isfinite(module.training_step(batch, 0))
