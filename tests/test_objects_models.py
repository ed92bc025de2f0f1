"""The object-centric model's parts: ViT, object functions, queries, ObjectModel."""

import pytest
import torch

from blockident.errors import ConfigError
from blockident.models.objects import GlobalEncoder, ObjectModel
from blockident.models.slots import (
    CrossAttentionDecoder,
    KMeansQueries,
    LearnedQueries,
    SampledQueries,
    SlotAttention,
)
from blockident.models.vit import ViT


def tiny_vit(**kw):
    return ViT(**{"image_size": 16, "patch_size": 4, "dim": 16, "depth": 1, "heads": 2, **kw})


@pytest.mark.parametrize("pooling", ["cls", "avg"])
@pytest.mark.parametrize("pos_every_block", [False, True])
def test_vit_returns_patch_tokens_and_pooled(pooling, pos_every_block):
    vit = tiny_vit(pooling=pooling, pos_every_block=pos_every_block, depth=2)
    tokens, pooled = vit(torch.randn(3, 3, 16, 16))
    assert tokens.shape == (3, 16, 16) and pooled.shape == (3, 16)
    if pooling == "avg":
        assert torch.allclose(pooled, tokens.mean(1), atol=1e-6)
    # another image size: the positional embedding follows the grid
    tokens, _ = vit(torch.randn(2, 3, 24, 16))
    assert tokens.shape == (2, 24, 16) and vit.grid(24, 16) == (6, 4)


def test_vit_rejects_impossible_shapes():
    with pytest.raises(ConfigError, match="heads"):
        tiny_vit(dim=10, heads=4)
    with pytest.raises(ConfigError, match="patch_size"):
        tiny_vit(image_size=18)
    with pytest.raises(ConfigError, match="pooling"):
        tiny_vit(pooling="max")


def test_slot_attention_competes_over_slots_and_is_equivariant_to_query_order():
    torch.manual_seed(0)
    fn = SlotAttention(dim=8, iters=2).eval()
    tokens, queries = torch.randn(2, 10, 8), torch.randn(2, 4, 8)
    slots, attn = fn(tokens, queries)
    assert slots.shape == (2, 4, 8) and attn.shape == (2, 4, 10)
    assert torch.allclose(attn.sum(1), torch.ones(2, 10), atol=1e-5)  # softmax over slots
    perm = torch.tensor([2, 0, 3, 1])
    slots_p, attn_p = fn(tokens, queries[:, perm])
    assert torch.allclose(slots_p, slots[:, perm], atol=1e-5)
    assert torch.allclose(attn_p, attn[:, perm], atol=1e-5)


def test_cross_attention_decoder_attends_over_tokens():
    fn = CrossAttentionDecoder(dim=8, depth=2, heads=2)
    slots, attn = fn(torch.randn(2, 10, 8), torch.randn(2, 3, 8))
    assert slots.shape == (2, 3, 8) and attn.shape == (2, 3, 10)
    assert torch.allclose(attn.sum(2), torch.ones(2, 3), atol=1e-5)  # softmax over tokens
    with pytest.raises(ConfigError):
        CrossAttentionDecoder(dim=6, heads=4)


def test_learned_queries_have_a_fixed_number():
    q = LearnedQueries(num=3, dim=8)
    assert q(torch.randn(5, 10, 8)).shape == (5, 3, 8)
    with pytest.raises(ConfigError, match="cannot make 4"):
        q(torch.randn(5, 10, 8), num=4)


@pytest.mark.parametrize("kind", ["gaussian", "mixture"])
def test_sampled_queries_reparameterised_in_training_fixed_in_eval(kind):
    q = SampledQueries(num=3, dim=8, kind=kind, components=2)
    tokens = torch.randn(4, 10, 8)
    drawn = q(tokens)
    assert drawn.shape == (4, 3, 8) and not torch.allclose(drawn, q(tokens))
    assert q(tokens, num=5).shape == (4, 5, 8)  # the number chosen at run time
    drawn.sum().backward()
    assert q.mu.grad.abs().sum() > 0 and q.log_sigma.grad.abs().sum() > 0
    q.eval()
    fixed = q(tokens)
    assert torch.equal(fixed, q(tokens[:2]).repeat(2, 1, 1))  # same for every image and call
    assert len(torch.unique(fixed[0], dim=0)) == 3  # distinct slots, not the means


def test_kmeans_queries_find_separated_clusters_without_gradient():
    torch.manual_seed(0)
    centres = torch.tensor([[10.0, 0], [0, 10.0], [-10.0, -10.0]])
    tokens = (centres.repeat_interleave(5, 0) + 0.1 * torch.randn(15, 2)).unsqueeze(0)
    tokens.requires_grad_(True)
    q = KMeansQueries(num=3, iters=10).eval()
    found = q(tokens)
    assert not found.requires_grad
    order = torch.cdist(centres, found[0]).argmin(1)
    assert sorted(order.tolist()) == [0, 1, 2]
    assert torch.allclose(found[0][order], centres, atol=0.2)
    assert q.train()(tokens, num=5).shape == (1, 5, 2)
    with pytest.raises(ConfigError, match="only 15 tokens"):
        q(tokens, num=16)


def tiny_model(architecture="two_branch", object_fn=None, queries=None):
    from functools import partial

    return ObjectModel(tiny_vit(), object_fn or partial(SlotAttention, iters=1),
                       queries or partial(LearnedQueries, num=3), architecture=architecture,
                       global_dim=6, proj_dim=5)


@pytest.mark.parametrize("architecture", ["global", "two_branch", "slots_global"])
def test_object_model_outputs(architecture):
    model = tiny_model(architecture)
    out = model(torch.randn(2, 3, 16, 16))
    assert out.global_.shape == (2, 6) and out.grid == (4, 4)
    assert model.project_global(out.global_).shape == (2, 5)
    if architecture == "global":
        assert out.slots is None and out.attn is None
        assert not hasattr(model, "object_fn")  # no unused parameters
        with pytest.raises(ConfigError):
            model.project_slots(torch.randn(2, 3, 16))
    else:
        assert out.slots.shape == (2, 3, 16) and out.attn.shape == (2, 3, 16)
        assert model.project_slots(out.slots).shape == (2, 3, 5)
    pair = model.pair()
    assert isinstance(pair.encoder1, GlobalEncoder) and pair.shared
    assert pair.encoder1.encoding_size == 6
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(pair(1, x), model(x).global_, atol=1e-6)
    assert pair.project(2, pair(2, x)).shape == (2, 5)


def test_object_model_rejects_a_bad_architecture_or_missing_parts():
    with pytest.raises(ConfigError, match="architecture"):
        tiny_model("slots_only")
    with pytest.raises(ConfigError, match="object function"):
        ObjectModel(tiny_vit(), architecture="two_branch")
    assert ObjectModel(tiny_vit(), architecture="global").encoding_size == 64
