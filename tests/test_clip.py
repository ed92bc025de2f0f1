"""CLIP vision backbone on tiny random checkpoints written to disk; the image model configs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

import blockident.conf
from blockident.data.augment import IMAGENET_MEAN, IMAGENET_STD
from blockident.errors import DependencyError
from blockident.models.clip import ClipVision
from blockident.models.heads import image_pair
from blockident.models.pair import EncoderPair

VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
              image_size=32, patch_size=8)
TEXT = dict(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
            vocab_size=64, bos_token_id=0, eos_token_id=1, pad_token_id=1)
PROCESSOR_MEAN = (0.3, 0.5, 0.7)
PROCESSOR_STD = (0.2, 0.3, 0.4)
MODEL_CONF = Path(blockident.conf.__file__).parent / "model"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    """"vision": a CLIPVisionModel with a preprocessor_config.json of non-default statistics;
    "bare": the same weights without it; "full": a CLIPModel checkpoint."""
    root = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(**VISION)).save_pretrained(root / "vision")
    shutil.copytree(root / "vision", root / "bare")
    (root / "vision" / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": PROCESSOR_MEAN, "image_std": PROCESSOR_STD, "crop_size": 32}))
    CLIPModel(CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=8)
              ).save_pretrained(root / "full")
    return {name: root / name for name in ("vision", "bare", "full")}


def _raw_pooled(path: Path, x: torch.Tensor) -> torch.Tensor:
    """Pooled output of the unwrapped Hugging Face tower on CLIP-normalised ``x``."""
    tower = CLIPVisionModel.from_pretrained(path, local_files_only=True)
    return tower(pixel_values=x).pooler_output


def _normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def test_clip_vision_shapes(dirs):
    model = ClipVision(dirs["vision"])
    assert model.feature_dim == 32 and model.image_size == 32
    assert model(torch.randn(3, 3, 64, 64)).shape == (3, 32)
    native = ClipVision(dirs["vision"], interpolate_pos_encoding=True)
    assert native(torch.randn(3, 3, 64, 64)).shape == (3, 32)


@pytest.mark.parametrize(("name", "mean", "std"), [
    ("vision", PROCESSOR_MEAN, PROCESSOR_STD), ("bare", OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)])
@pytest.mark.parametrize("size", [32, 64])
@torch.no_grad()
def test_clip_vision_renormalises(dirs, name, mean, std, size):
    torch.manual_seed(1)
    image = torch.rand(2, 3, size, size)
    clip_input = _normalise(image, mean, std)
    if size != 32:
        clip_input = F.interpolate(clip_input, size=(32, 32), mode="bilinear",
                                   align_corners=False, antialias=True)
    expected = _raw_pooled(dirs[name], clip_input)
    got = ClipVision(dirs[name])(_normalise(image, IMAGENET_MEAN, IMAGENET_STD))
    assert torch.allclose(got, expected, atol=1e-5)
    # the statistics matter: feeding the ImageNet-normalised image directly differs
    if size == 32:
        assert not torch.allclose(_raw_pooled(dirs[name], _normalise(image, IMAGENET_MEAN,
                                                                     IMAGENET_STD)),
                                  expected, atol=1e-3)


@torch.no_grad()
def test_clip_vision_from_full_clip_checkpoint(dirs):
    full = CLIPModel.from_pretrained(dirs["full"], local_files_only=True)
    image = torch.rand(2, 3, 32, 32)
    expected = full.vision_model(
        pixel_values=_normalise(image, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)).pooler_output
    got = ClipVision(dirs["full"])(_normalise(image, IMAGENET_MEAN, IMAGENET_STD))
    assert got.shape == (2, 32)
    assert torch.allclose(got, expected, atol=1e-5)


def test_clip_vision_freeze(dirs):
    model = ClipVision(dirs["bare"], freeze=True)
    assert not any(p.requires_grad for p in model.parameters())
    assert all(p.requires_grad for p in ClipVision(dirs["bare"]).parameters())


def test_image_pair_clip_gradients(dirs):
    pair = image_pair("clip", path=dirs["vision"], hidden_size=16, encoding_size=5)
    assert isinstance(pair.encoder1.backbone, ClipVision) and pair.shared
    z = pair(1, torch.randn(4, 3, 64, 64))
    assert z.shape == (4, 5)
    z.square().sum().backward()
    encoder = pair.encoder1
    for module in (encoder.head, encoder.backbone.tower):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_clip_errors(dirs, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        ClipVision(missing)
    with pytest.raises(ValueError, match=f"{tmp_path}.*config.json"):
        ClipVision(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match=f"{tmp_path}.*'bert'"):
        ClipVision(tmp_path)
    with pytest.raises(ValueError, match="path"):
        image_pair("resnet", path=dirs["vision"])
    with pytest.raises(ValueError, match="path"):
        image_pair("convnet", path=dirs["vision"])
    with pytest.raises(ValueError, match="path"):
        image_pair("clip")
    with pytest.raises(ValueError, match="weights"):
        image_pair("clip", path=dirs["vision"], weights=tmp_path / "w.pth")


@pytest.mark.parametrize("name", ["convnet", "resnet18", "resnet34", "clip"])
def test_model_configs_instantiate(dirs, name):
    cfg = OmegaConf.load(MODEL_CONF / f"{name}.yaml")
    if name == "clip":
        cfg.path = str(dirs["vision"])
    pair = instantiate(cfg)
    assert isinstance(pair, EncoderPair)
    assert pair.encoder1.encoding_size == cfg.encoding_size == 64
    assert pair(2, torch.randn(2, 3, 64, 64)).shape == (2, cfg.encoding_size)


def test_without_transformers_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as when not installed
    with pytest.raises(DependencyError, match=r"pip install 'blockident\[clip\]'"):
        ClipVision(tmp_path)
