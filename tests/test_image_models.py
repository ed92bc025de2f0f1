"""Image encoders: shapes, torchvision state-dict format, weight loading, heads and pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from blockident.cli import main
from blockident.models.convnet import convnet
from blockident.models.heads import EncoderHead, image_pair
from blockident.models.resnet import LAYERS, ResNet, resnet

# A few keys of torchvision's resnet18/34 state dicts with their shapes.
TORCHVISION_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.weight": (64,),
    "bn1.running_mean": (64,),
    "bn1.num_batches_tracked": (),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.1.bn2.running_var": (64,),
    "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.0.downsample.1.bias": (128,),
    "layer3.0.downsample.1.running_mean": (256,),
    "layer4.0.downsample.0.weight": (512, 256, 1, 1),
    "layer4.1.conv2.weight": (512, 512, 3, 3),
    "fc.weight": (1000, 512),
    "fc.bias": (1000,),
}
PARAMS = {18: 11_689_512, 34: 21_797_672}
LAST_KEYS = {18: "layer4.1.bn2.weight", 34: "layer4.2.bn2.weight"}
BLOCKS_ABSENT = {18: "layer3.2.conv1.weight", 34: "layer3.6.conv1.weight"}


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", [18, 34])
def test_resnet_torchvision_state_dict(depth):
    full = ResNet(LAYERS[depth], num_classes=1000)
    state = full.state_dict()
    for key, shape in TORCHVISION_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    assert LAST_KEYS[depth] in state
    assert BLOCKS_ABSENT[depth] not in state
    assert "layer1.0.downsample.0.weight" not in state
    assert _n_params(full) == PARAMS[depth]
    backbone = resnet(depth)
    assert _n_params(backbone) == PARAMS[depth] - (512 * 1000 + 1000)
    assert set(backbone.state_dict()) == {k for k in state if not k.startswith("fc.")}
    assert backbone.feature_dim == 512


@pytest.mark.parametrize("depth", [18, 34])
def test_resnet_output_shape(depth):
    out = resnet(depth).eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 512)


@pytest.mark.parametrize("size", [(16, 16), (32, 48), (64, 64)])
def test_convnet_output_shape(size):
    model = convnet()
    assert model.feature_dim == 256
    assert model(torch.randn(2, 3, *size)).shape == (2, 256)
    assert convnet((8, 16)).feature_dim == 16


def _perturb_bn(model: nn.Module) -> None:
    """Give BatchNorm layers non-default statistics so loading is visible in eval outputs."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)


def test_resnet_loads_weights_file(tmp_path):
    torch.manual_seed(0)
    source = ResNet(LAYERS[18], num_classes=1000)
    _perturb_bn(source)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    loaded = resnet(18, weights=str(path)).eval()
    fresh = resnet(18).eval()
    x = torch.randn(2, 3, 32, 32)
    source.fc = nn.Identity()
    with torch.no_grad():
        expected = source.eval()(x)
        assert torch.allclose(loaded(x), expected, atol=1e-5)
        assert not torch.allclose(fresh(x), expected, atol=1e-3)


@pytest.fixture(scope="module")
def resnet18_state():
    return ResNet(LAYERS[18], num_classes=1000).state_dict()


def test_resnet_renamed_key_raises(tmp_path, resnet18_state):
    state = dict(resnet18_state)
    state["layer1.0.conv_1.weight"] = state.pop("layer1.0.conv1.weight")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as info:
        resnet(18, weights=path)
    message = str(info.value)
    assert str(path) in message
    assert "layer1.0.conv1.weight" in message and "layer1.0.conv_1.weight" in message


def test_resnet_wrong_shape_raises(tmp_path, resnet18_state):
    state = dict(resnet18_state)
    state["layer2.0.bn1.weight"] = torch.ones(7)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"layer2\.0\.bn1\.weight") as info:
        resnet(18, weights=path)
    assert str(path) in str(info.value)


def test_resnet_depth_mismatch_raises(tmp_path, resnet18_state):
    path = tmp_path / "r18.pth"
    torch.save(resnet18_state, path)
    with pytest.raises(ValueError, match=r"layer3\.2\.conv1\.weight"):
        resnet(34, weights=path)
    with pytest.raises(ValueError, match="depth"):
        resnet(50)


def test_encoder_head_and_projection():
    head = EncoderHead(convnet((8, 16)), hidden_size=32, encoding_size=5)
    z = head(torch.randn(3, 3, 32, 32))
    assert z.shape == (3, 5)
    assert head.project(z) is z
    projected = EncoderHead(convnet((8, 16)), 32, 5, projection_dim=7)
    z = projected(torch.randn(3, 3, 32, 32))
    assert z.shape == (3, 5)
    assert projected.project(z).shape == (3, 7)
    linears = [m for m in projected.projection.modules() if isinstance(m, nn.Linear)]
    assert [lin.out_features for lin in linears] == [5, 7]


@pytest.mark.parametrize("shared", [True, False])
def test_image_pair_sharing(shared):
    pair = image_pair(hidden_size=16, encoding_size=4, shared_encoder=shared)
    assert pair.shared == shared
    n_encoder = _n_params(pair.encoder1)
    assert _n_params(pair) == (1 if shared else 2) * n_encoder
    x = torch.randn(2, 3, 64, 64)
    assert pair(1, x).shape == pair(2, x).shape == (2, 4)


def test_image_pair_resnet_with_weights(tmp_path, resnet18_state):
    path = tmp_path / "r18.pth"
    torch.save(resnet18_state, path)
    pair = image_pair("resnet", depth=18, weights=path, hidden_size=16, encoding_size=3,
                      projection_dim=6, shared_encoder=False)
    assert not pair.shared
    for encoder in (pair.encoder1, pair.encoder2):
        for key, value in encoder.backbone.state_dict().items():
            assert torch.equal(value, resnet18_state[key])
    z = pair.eval()(2, torch.randn(2, 3, 32, 32))
    assert z.shape == (2, 3)
    assert pair.encoder2.project(z).shape == (2, 6)
    with pytest.raises(ValueError, match="backbone"):
        image_pair("vit")
    with pytest.raises(ValueError):
        image_pair("convnet", weights=path)


def test_without_a_head_the_encoding_is_the_backbone_features():
    pair = image_pair("convnet", hidden_size=None)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(pair(1, x), pair.encoder1.backbone(x))
    assert pair.encoder1.encoding_size == pair.encoder1.backbone.feature_dim == 256


def test_a_pretrained_resnet_is_read_out_as_it_is(tmp_path):
    """An encoder trained elsewhere: torchvision-format weights, no head, nothing trained."""
    weights = tmp_path / "resnet18.pth"
    torch.save(resnet(18).state_dict(), weights)
    run_dir = tmp_path / "run"
    assert main(["run", "experiment=dsprites", f"data.root={tmp_path / 'd'}", f"run_dir={run_dir}",
                 "data.generate.subsample=2000", "data.size=32", "data.readout_max=60",
                 "model=resnet18", f"model.weights={weights}", "model.hidden_size=null",
                 "model.untrained=true", "readout.baseline=false", "readout.control=none",
                 "readout.whole=[mcc]", "~readout.regressors.mlp", "~readout.categorical.mlp",
                 "trainer.enable_progress_bar=false"]) == 0
    encodings = np.load(run_dir / "evaluations" / "step_0" / "encodings_test.npz")["images"]
    assert encodings.shape == (60, 512)
