"""Batched image augmentation, on whatever device the batch lives on.

:class:`Augment` maps uint8 (B, 3, H, W) to float (B, 3, size, size): scale to [0, 1], random
resized crop (optional) or a plain resize to ``size``, horizontal flip (p = 0.5), colour jitter
(p = 0.8), optionally random greyscale and Gaussian blur (SimCLR's full set),
ImageNet normalisation. In eval mode (``module.eval()``) or via
:meth:`Augment.normalize_only` only the deterministic steps run. Randomness comes from torch's
global RNG, so ``torch.manual_seed`` makes it reproducible.

The colour steps (jitter, greyscale), the uint8 -> float scaling and the normalisation are one
affine map per image (:mod:`blockident.data.color`), applied in one batched matrix product and
one clamp; the crop and the blur stay kornia's, with their random parameters drawn on the CPU.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

from blockident.data.color import ColorJitter, color_transform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _OnHost:
    """A kornia augmentation that ``Module.to`` does not move (it is no submodule): its random
    generator stays on the CPU, and kornia copies each draw's parameters to the batch's device
    without blocking. Moved to a GPU, the generator would draw there and kornia's crop would
    copy each draw back to the host: a wait for the GPU on every batch."""

    def __init__(self, op: nn.Module):
        self.op = op

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Augment(nn.Module):
    """uint8 (B, 3, H, W) -> float (B, 3, size, size).

    ``jitter``: brightness/contrast/saturation strength of the colour jitter (applied with
    p = 0.8; 0 disables it), ``hue``: its hue shift in turns (default ``jitter / 4``, at most
    0.5; 0 keeps colours recognisable). ``resized_crop``: (min, max) area scale of a random
    resized crop, or None for a plain resize. ``grayscale``, ``blur``: probabilities of random
    greyscale and of a Gaussian blur (kernel about a tenth of ``size``, sigma 0.1-2), 0
    disables them. ``normalize``: subtract the ImageNet mean and divide by its std, else the
    output stays in [0, 1]. ``options``: these keyword arguments, as given.

    The jitter is :class:`blockident.data.color.ColorJitter`: kornia's factor distributions,
    a hue rotation in YIQ instead of the HSV round trip and one clamp to [0, 1] at the end
    instead of one after each step (see that module for what this changes).
    """

    def __init__(self, size: int, *, jitter: float = 0.4, hue: float | None = None,
                 flip: bool = True, resized_crop: tuple[float, float] | None = None,
                 grayscale: float = 0.0, blur: float = 0.0, normalize: bool = True):
        super().__init__()
        self.size = size
        self.options = {"jitter": jitter, "hue": hue, "flip": flip, "resized_crop": resized_crop,
                        "grayscale": grayscale, "blur": blur, "normalize": normalize}
        self.normalize = normalize
        self.flip = flip
        self.crop = _OnHost(K.RandomResizedCrop((size, size), scale=tuple(resized_crop))) \
            if resized_crop is not None else None
        self.crops = resized_crop is not None
        hue = (jitter / 4 if hue is None else hue) if jitter > 0 else 0.0
        self.jitter = ColorJitter(max(jitter, 0.0), hue, p=0.8, grayscale=grayscale)
        self.blur = None
        if blur > 0:
            kernel = max(3, size // 10 // 2 * 2 + 1)
            self.blur = _OnHost(K.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=blur))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got shape {tuple(x.shape)}")
        return x

    def _to_float(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
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
        self._check(x)
        if self.crop is not None:
            x = self.crop(self._to_float(x))
        elif x.shape[-2:] != (self.size, self.size):
            x = self._resize(self._to_float(x))
        # uint8 stays uint8 until the affine map, which scales it by 1 / 255
        scale = 1 / 255 if x.dtype == torch.uint8 else 1.0
        if scale == 1.0:
            x = x.float().clamp(0.0, 1.0)
        if self.flip:
            flipped = (torch.rand(len(x)) < 0.5).to(x.device, non_blocking=True)
            x = torch.where(flipped.view(-1, 1, 1, 1), x.flip(-1), x)
        factors = self.jitter(len(x))
        if self.blur is None and self.normalize:
            return color_transform(x, factors, scale=scale, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        out = color_transform(x, factors, scale=scale)
        if self.blur is not None:
            out = self.blur(out).clamp_(0.0, 1.0)
        return self._normalize(out)
