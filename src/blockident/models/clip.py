"""CLIP vision tower from a local Hugging Face ``transformers`` directory, as an image backbone.

The directory is what ``save_pretrained`` writes for a ``CLIPVisionModel`` or a full
``CLIPModel`` (only its vision weights are used), optionally with the
``preprocessor_config.json`` whose ``image_mean``/``image_std`` the tower was trained with.
Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from blockident.data.augment import IMAGENET_MEAN, IMAGENET_STD
from blockident.errors import DataError, DependencyError, MissingError

CLIP_MODEL_TYPES = ("clip", "clip_vision_model")


def _check_directory(path: Path) -> None:
    """Raise naming ``path`` unless it is a directory holding a CLIP ``config.json``."""
    if not path.is_dir():
        raise MissingError(f"CLIP model directory {path} does not exist")
    config = path / "config.json"
    if not config.is_file():
        raise DataError(f"{path} holds no config.json; expected a CLIP model saved with "
                        "save_pretrained")
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type not in CLIP_MODEL_TYPES:
        raise DataError(f"{config} is not a CLIP config: model_type {model_type!r}, expected "
                        f"one of {CLIP_MODEL_TYPES}")


def _transformers():
    """The ``transformers`` package (the ``clip`` extra), or an error naming the extra.
    Importing the model code takes seconds: only pay for it when a tower is built."""
    try:
        import transformers
        import transformers.image_utils
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] != "transformers":
            raise
        raise DependencyError("model=clip needs the transformers package, which is not "
                              "installed: pip install 'blockident[clip]'") from error
    return transformers


def _clip_statistics(path: Path) -> tuple[list[float], list[float]]:
    """(mean, std) per channel from ``path/preprocessor_config.json``, else OpenAI CLIP's."""
    defaults = _transformers().image_utils
    file = path / "preprocessor_config.json"
    processor = json.loads(file.read_text()) if file.is_file() else {}
    return (list(processor.get("image_mean", defaults.OPENAI_CLIP_MEAN)),
            list(processor.get("image_std", defaults.OPENAI_CLIP_STD)))


class ClipVision(nn.Module):
    """CLIP vision tower: ImageNet-normalised (N, 3, H, W) -> pooled output (N, hidden_size).

    Inputs are re-normalised from ImageNet's statistics to CLIP's. By default they are then
    resized (bilinear, antialiased) to the tower's ``config.image_size``, the resolution its
    position embeddings were trained at; small training images (64x64) would otherwise give a
    grid of only a few patches (2x2 for ViT-B/32). ``interpolate_pos_encoding=True`` instead
    keeps the input resolution and interpolates the position embeddings: cheaper, for images
    large enough to hold many patches. ``freeze`` turns off gradients for the whole tower.
    The weights are loaded in float32 whatever dtype they were saved in.
    """

    def __init__(self, path: str | Path, interpolate_pos_encoding: bool = False,
                 freeze: bool = False):
        super().__init__()
        vision_model = _transformers().CLIPVisionModel
        path = Path(path)
        _check_directory(path)
        self.tower = vision_model.from_pretrained(path, local_files_only=True,
                                                     dtype=torch.float32)
        self.feature_dim = int(self.tower.config.hidden_size)
        self.image_size = int(self.tower.config.image_size)
        self.interpolate_pos_encoding = interpolate_pos_encoding
        if freeze:
            self.tower.requires_grad_(False)
        clip_mean, clip_std = _clip_statistics(path)
        # x_clip = (x_imagenet * imagenet_std + imagenet_mean - clip_mean) / clip_std
        imagenet_mean, imagenet_std, clip_mean, clip_std = (
            torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1)
            for v in (IMAGENET_MEAN, IMAGENET_STD, clip_mean, clip_std))
        self.register_buffer("scale", imagenet_std / clip_std, persistent=False)
        self.register_buffer("shift", (imagenet_mean - clip_mean) / clip_std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.scale + self.shift
        if not self.interpolate_pos_encoding and x.shape[-2:] != (self.image_size,) * 2:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True)
        out = self.tower(pixel_values=x, interpolate_pos_encoding=self.interpolate_pos_encoding)
        return out.pooler_output
