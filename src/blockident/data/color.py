"""Batched colour jitter as one affine map per image: no HSV round trip, one pass over the pixels.

SimCLR/torchvision colour jitter (kornia's ``ColorJitter``) chains four steps per image, with
factors b (brightness), c (contrast), s (saturation) and a hue shift h (a fraction of a turn):

- brightness: ``x * b``;
- contrast: blend with the image's mean luma m, ``c * x + (1 - c) * m``;
- saturation: blend with the pixel's luma Y, ``s * x + (1 - s) * Y``;
- hue: kornia converts to HSV, adds h to the hue and converts back.

Here the hue shift is a rotation by ``2 pi h`` of the chroma plane (I, Q) of YIQ about the grey
axis: a 3 x 3 matrix that keeps the luma Y (0.299 R + 0.587 G + 0.114 B, the weights of
kornia's ``rgb_to_grayscale``) and grey pixels. It approximates the HSV shift; it is not the
same map (the HSV shift changes the luma of a pure colour, and YIQ angles are not HSV angles:
see ``tests/test_color.py`` for how close they are). With it, the four steps are linear in YIQ:
luma ``Y -> b (c Y + (1 - c) m)``, chroma ``(I, Q) -> b c s R(h) (I, Q)``, where m is the mean
luma of the input image. So the whole jitter is one affine map per image,
``x -> A x + b (1 - c) m (1, 1, 1)``, and the four steps commute: kornia draws a random
order of the steps per call, which here would make no difference, so none is drawn. Random
greyscale (kornia's ``RandomGrayscale`` after the jitter) is the same map with s = 0.

The map is clamped to [0, 1] once, at the end. kornia also clamps after each step, so the two
differ where an intermediate value leaves [0, 1] (a brightened near-white pixel, an
over-saturated pure colour); ``tests/test_color.py`` checks that the distributions of
per-image channel means and standard deviations stay close to kornia's. The uint8 -> float
scaling (1 / 255) and the ImageNet normalisation fold into the same matrix and offset, and the
clamp to [0, 1] becomes a clamp to the normalised bounds of each channel, so
:func:`color_transform` is one batched matrix product and an in-place clamp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

# luma Y of YIQ (and of kornia's rgb_to_grayscale); the I and Q rows sum to zero, so grey
# (1, 1, 1) has no chroma
YIQ = ((0.299, 0.587, 0.114),
       (0.595716, -0.274453, -0.321263),
       (0.211456, -0.522591, 0.311135))


def _bases() -> torch.Tensor:
    """(3, 3, 3) float64: the projector on luma (``grey``), the projector on chroma and the
    generator of the hue rotation, each as an RGB -> RGB matrix. ``rotation(t) = grey + cos t
    chroma + sin t turn``. The sign follows HSV: a positive shift takes red towards yellow."""
    to_yiq = torch.tensor(YIQ, dtype=torch.float64)
    to_rgb = torch.linalg.inv(to_yiq)
    luma = torch.diag(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    chroma = torch.diag(torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64))
    # I/Q rotation by -t: HSV's hue increases clockwise in the I-Q plane
    turn = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]],
                        dtype=torch.float64)
    return torch.stack([to_rgb @ m @ to_yiq for m in (luma, chroma, turn)])


BASES = _bases()
GREY = torch.tensor(YIQ[0], dtype=torch.float64)  # (3,) luma weights: Y = GREY @ rgb


@dataclass
class JitterFactors:
    """Per-image factors, (B,) float64 tensors on the CPU: neutral values (1, 1, 1, 0) leave
    an image as it is."""

    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor  # fraction of a turn

    @classmethod
    def neutral(cls, batch: int) -> JitterFactors:
        one = torch.ones(batch, dtype=torch.float64)
        return cls(one, one.clone(), one.clone(), torch.zeros(batch, dtype=torch.float64))


def _factor(value, batch: int) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).detach().cpu().reshape(-1)
    return t.expand(batch) if t.numel() == 1 else t


def factors(batch: int, brightness=1.0, contrast=1.0, saturation=1.0,
            hue=0.0) -> JitterFactors:
    """:class:`JitterFactors` from floats or (B,) tensors."""
    values = [_factor(v, batch) for v in (brightness, contrast, saturation, hue)]
    if any(len(v) != batch for v in values):
        raise ValueError(f"factors must be scalars or of length {batch}")
    return JitterFactors(*values)


def color_affine(f: JitterFactors) -> tuple[torch.Tensor, torch.Tensor]:
    """The jitter as ``x -> A x + k m (1, 1, 1)``, m the image's mean luma: A (B, 3, 3) and
    k (B,), float64 on the CPU."""
    angle = 2 * math.pi * f.hue
    bc = f.brightness * f.contrast
    weights = torch.stack([bc, bc * f.saturation * torch.cos(angle),
                           bc * f.saturation * torch.sin(angle)], dim=1)  # (B, 3)
    matrix = (weights[:, :, None, None] * BASES).sum(1)  # tiny: no batched matmul call
    return matrix, f.brightness * (1 - f.contrast)


def color_transform(x: torch.Tensor, f: JitterFactors, *, scale: float = 1.0,
                    mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None) -> torch.Tensor:
    """Jitter (B, 3, H, W) images ``x`` (uint8 or float) with factors ``f``: float32
    ``clamp(A (scale x) + k m, 0, 1)``, then ``(. - mean) / std`` per channel when given.

    The scaling, the jitter and the normalisation are one (B, 3, 4) matrix on the pixels in
    homogeneous coordinates: the pixels are converted to float once (into a buffer with a row
    of ones), summed once for the mean luma (only when a contrast factor is not 1) and read
    once by the batched matrix product, whose output is clamped in place to the normalised
    bounds of [0, 1]. The per-image parameters are built on the CPU and reach the device in
    one non-blocking copy, so a CUDA batch never waits for the host."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got shape {tuple(x.shape)}")
    b, _, h, w = x.shape
    mean_t = torch.tensor(mean if mean is not None else (0.0,) * 3, dtype=torch.float64)
    std_t = torch.tensor(std if std is not None else (1.0,) * 3, dtype=torch.float64)
    matrix, shift = color_affine(f)
    # (B, 3, 7): the affine map of the pixels in homogeneous coordinates, then the map from
    # the channel means of the pixels to the contrast term of the offset
    params = torch.empty(b, 3, 7, dtype=torch.float64)
    params[:, :, :3] = matrix * (scale / std_t)[None, :, None]
    params[:, :, 3] = -mean_t / std_t
    params[:, :, 4:] = (shift[:, None, None] * scale / std_t[None, :, None]) * GREY
    params = params.to(torch.float32).to(x.device, non_blocking=True)
    pixels = torch.empty(b, 4, h * w, dtype=torch.float32, device=x.device)
    pixels[:, 3] = 1.0
    pixels[:, :3].copy_(x.reshape(b, 3, h * w))  # uint8 -> float32 in the copy
    affine = params[:, :, :4]
    if bool((shift != 0).any()):  # the contrast blend: + b (1 - c) times the mean luma
        means = pixels[:, :3].mean(2, keepdim=True)  # (B, 3, 1)
        offset = torch.baddbmm(params[:, :, 3:4], params[:, :, 4:], means)
        affine = torch.cat([params[:, :, :3], offset], dim=2)
    with torch.autocast(x.device.type, enabled=False):  # float32 even inside autocast
        out = torch.bmm(affine, pixels)
    low, high = (-mean_t / std_t).tolist(), ((1 - mean_t) / std_t).tolist()
    if len(set(low)) == 1 and len(set(high)) == 1:
        out.clamp_(low[0], high[0])
    else:
        for channel in range(3):
            out[:, channel].clamp_(low[channel], high[channel])
    return out.view(b, 3, h, w)


def adjust_color(x: torch.Tensor, brightness=1.0, contrast=1.0, saturation=1.0,
                 hue=0.0) -> torch.Tensor:
    """Jitter float images (B, 3, H, W) in [0, 1] with given factors (floats or (B,) tensors):
    the functional form of :class:`ColorJitter`, clamped to [0, 1] once at the end. With one
    factor away from neutral it is kornia's ``adjust_brightness_accumulative``,
    ``adjust_contrast_with_mean_subtraction`` or ``adjust_saturation_with_gray_subtraction``;
    the hue is the YIQ rotation."""
    x = x.float().clamp(0.0, 1.0)
    return color_transform(x, factors(len(x), brightness, contrast, saturation, hue))


class ColorJitter:
    """Draws :class:`JitterFactors` as kornia's ``ColorJitter(strength, strength, strength,
    hue, p=p)`` does: brightness, contrast and saturation uniform in
    [max(0, 1 - strength), 1 + strength], hue shift uniform in [-hue, hue] turns, each image
    jittered with probability ``p`` (the others get neutral factors). ``grayscale``: the
    probability that an image is made grey (saturation 0; kornia's ``RandomGrayscale``).
    Draws from torch's global RNG on the CPU, so ``torch.manual_seed`` fixes them on every
    device."""

    def __init__(self, strength: float | Sequence[float] = 0.4, hue: float = 0.0,
                 p: float = 0.8, grayscale: float = 0.0):
        strengths = [float(strength)] * 3 if isinstance(strength, (int, float)) \
            else [float(s) for s in strength]
        if len(strengths) != 3 or min(strengths) < 0 or not all(map(math.isfinite, strengths)):
            raise ValueError(f"jitter strength must be >= 0 (one value or three), got {strength}")
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue shift must be in [0, 0.5] turns, got {hue}")
        if not (0 <= p <= 1 and 0 <= grayscale <= 1):
            raise ValueError(f"probabilities must be in [0, 1], got p={p}, grayscale={grayscale}")
        self.ranges = [(max(0.0, 1 - s), 1 + s) for s in strengths] + [(-hue, hue)]
        self.p, self.grayscale = p, grayscale
        self.jitters = p > 0 and (any(s > 0 for s in strengths) or hue > 0)

    def __call__(self, batch: int) -> JitterFactors:
        f = JitterFactors.neutral(batch)
        if self.jitters:
            u = torch.rand(batch, 4, dtype=torch.float64)
            low = torch.tensor([r[0] for r in self.ranges], dtype=torch.float64)
            high = torch.tensor([r[1] for r in self.ranges], dtype=torch.float64)
            drawn = low + (high - low) * u
            applied = torch.rand(batch) < self.p
            neutral = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
            drawn = torch.where(applied[:, None], drawn, neutral)
            f = JitterFactors(*drawn.unbind(1))
        if self.grayscale > 0:
            grey = torch.rand(batch) < self.grayscale
            f.saturation = torch.where(grey, 0.0, f.saturation)
        return f
