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
