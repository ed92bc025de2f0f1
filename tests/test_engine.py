import pytest
import torch

from blockident.engine import ContrastiveModule
from blockident.losses import InfoNCE, LpInfoNCE
from blockident.models.mlp import mlp_pair


def test_negatives_may_outnumber_positives():
    module = ContrastiveModule(mlp_pair(4, 2, [2]), LpInfoNCE())
    batch = {"view1": torch.randn(3, 4), "view2": torch.randn(3, 4),
             "neg1": torch.randn(5, 4), "neg2": torch.randn(5, 4)}
    z1, z2, n1, n2 = module._encode_views(batch)
    assert (z1.shape, n1.shape) == ((3, 2), (5, 2))
    assert torch.allclose(n2, module.encoders(2, batch["neg2"]), atol=1e-6)


def test_missing_negatives_is_a_clear_error():
    module = ContrastiveModule(mlp_pair(4, 2, [2]), LpInfoNCE())
    with pytest.raises(ValueError, match="data.negatives=true"):
        module._encode_views({"view1": torch.randn(3, 4), "view2": torch.randn(3, 4)})
    plain = ContrastiveModule(mlp_pair(4, 2, [2]), InfoNCE())
    assert len(plain._encode_views({"view1": torch.randn(3, 4), "view2": torch.randn(3, 4)})) == 2


def test_projection_head_feeds_the_loss_but_not_the_encodings():
    from blockident.models.heads import image_pair

    module = ContrastiveModule(image_pair("convnet", hidden_size=8, encoding_size=6,
                                          projection_dim=3), InfoNCE())
    x = torch.randn(4, 3, 16, 16)
    z1, z2 = module._encode_views({"view1": x, "view2": x.flip(-1)})
    assert z1.shape == (4, 3)
    assert module.encode(1, x).shape == (4, 6)
    module.loss(z1, z2).backward()
    head = module.encoders.encoder1.projection
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
