"""Batched image augmentation with kornia, on whatever device the batch lives on.

:class:`Augment` maps uint8 (B, 3, H, W) to float (B, 3, size, size): scale to [0, 1], random
resized crop (optional) or a plain resize to ``size``, horizontal flip (p = 0.5), colour jitter
(p = 0.8), optionally random greyscale and Gaussian blur (SimCLR's full set),
ImageNet normalisation. In eval mode (``module.eval()``) or via
:meth:`Augment.normalize_only` only the deterministic steps run. Randomness comes from torch's
global RNG, so ``torch.manual_seed`` makes it reproducible.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Augment(nn.Module):
    """uint8 (B, 3, H, W) -> float (B, 3, size, size).

    ``jitter``: brightness/contrast/saturation strength of the colour jitter (applied with
    p = 0.8; 0 disables it), ``hue``: its hue shift (default ``jitter / 4``; 0 keeps colours
    recognisable). ``resized_crop``: (min, max) area scale of a random resized crop, or None for
    a plain resize. ``grayscale``, ``blur``: probabilities of random greyscale and of a Gaussian
    blur (kernel about a tenth of ``size``, sigma 0.1-2), 0 disables them. ``normalize``:
    subtract the ImageNet mean and divide by its std, else the output stays in [0, 1].
    """

    def __init__(self, size: int, *, jitter: float = 0.4, hue: float | None = None,
                 flip: bool = True, resized_crop: tuple[float, float] | None = None,
                 grayscale: float = 0.0, blur: float = 0.0, normalize: bool = True):
        super().__init__()
        self.size = size
        self.normalize = normalize
        ops: list[nn.Module] = []
        if resized_crop is not None:
            ops.append(K.RandomResizedCrop((size, size), scale=tuple(resized_crop)))
        if flip:
            ops.append(K.RandomHorizontalFlip(p=0.5))
        if jitter > 0:
            hue = jitter / 4 if hue is None else hue
            ops.append(K.ColorJitter(jitter, jitter, jitter, hue, p=0.8))
        if grayscale > 0:
            ops.append(K.RandomGrayscale(p=grayscale))
        if blur > 0:
            kernel = max(3, size // 10 // 2 * 2 + 1)
            ops.append(K.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=blur))
        self.random = nn.Sequential(*ops)
        self.crops = resized_crop is not None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def _to_float(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got shape {tuple(x.shape)}")
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                             antialias=True)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        if not self.normalize:
            return x
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def normalize_only(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic evaluation transform: [0, 1], resize to ``size``, normalise."""
        return self._normalize(self._resize(self._to_float(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.normalize_only(x)
        x = self._to_float(x)
        if not self.crops:
            x = self._resize(x)
        x = self.random(x)
        return self._normalize(x.clamp(0.0, 1.0))
