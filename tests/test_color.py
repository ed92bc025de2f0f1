"""The fused colour jitter (blockident.data.color) against kornia's, and Augment around it."""

import math

import kornia.augmentation as K
import numpy as np
import pytest
import torch
from kornia import color as kcolor
from kornia import enhance
from scipy.stats import ks_2samp

from blockident.data.augment import IMAGENET_MEAN, IMAGENET_STD, Augment
from blockident.data.color import GREY, ColorJitter, adjust_color, color_transform, factors
from blockident.data.scenes import SceneConfig, render_frame, sample_video

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def images(b=16, h=9, w=11, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def luma(x):
    return (x * GREY.float().view(1, 3, 1, 1)).sum(1)


def scene_frames(n=64, size=24):
    """(n, 3, size, size) uint8 frames of the procedural scenes: flat colours, textures and
    noise, like the default experiment's images."""
    config = SceneConfig(videos=n, frames=2, size=size, categories=12, seed=0)
    frames = [render_frame(sample_video(config, i), 0)[0] for i in range(n)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


# -- (a) brightness, contrast, saturation are kornia's -------------------------------------------
@pytest.mark.parametrize("name, kornia_fn", [
    ("brightness", enhance.adjust_brightness_accumulative),
    ("contrast", enhance.adjust_contrast_with_mean_subtraction),
    ("saturation", enhance.adjust_saturation_with_gray_subtraction),
])
def test_single_factor_matches_kornia(name, kornia_fn):
    x = images()
    f = torch.linspace(0.0, 2.0, len(x))  # factors 0 (black / mean / grey) to 2, clamped
    assert torch.allclose(adjust_color(x, **{name: f}), kornia_fn(x, f), atol=1e-6, rtol=0)
    # uint8 input: the 1 / 255 scaling and the ImageNet normalisation folded into the map
    x8 = (x * 255).round().to(torch.uint8)
    fused = color_transform(x8, factors(len(x), **{name: f}), scale=1 / 255,
                            mean=IMAGENET_MEAN, std=IMAGENET_STD)
    expect = (kornia_fn(x8.float() / 255, f) - MEAN) / STD
    assert torch.allclose(fused, expect, atol=1e-5, rtol=0)


def test_steps_commute_without_clamping():
    """Brightness, contrast, saturation (and the YIQ hue) are linear in YIQ, so in any order
    they give the one affine map: kornia's steps in two orders agree with it where no
    intermediate value leaves [0, 1]."""
    x = 0.5 + 0.2 * (images() - 0.5)  # low chroma, mid grey: nothing clamps
    b, c, s = 1.15, 0.8, 1.3
    forward = enhance.adjust_saturation_with_gray_subtraction(
        enhance.adjust_contrast_with_mean_subtraction(
            enhance.adjust_brightness_accumulative(x, b), c), s)
    backward = enhance.adjust_brightness_accumulative(
        enhance.adjust_contrast_with_mean_subtraction(
            enhance.adjust_saturation_with_gray_subtraction(x, s), c), b)
    ours = adjust_color(x, brightness=b, contrast=c, saturation=s)
    assert 0 < ours.min() and ours.max() < 1
    assert torch.allclose(ours, forward, atol=1e-6) and torch.allclose(ours, backward, atol=1e-6)
    # the hue rotation commutes too
    hued = adjust_color(x, hue=0.07)
    then = adjust_color(hued, brightness=b, contrast=c, saturation=s)
    assert torch.allclose(adjust_color(x, brightness=b, contrast=c, saturation=s, hue=0.07),
                          then, atol=1e-6)


# -- (b) the hue rotation -------------------------------------------------------------------------
def test_hue_zero_is_identity_and_grey_stays_grey():
    x = images()
    assert torch.allclose(adjust_color(x, hue=0.0), x, atol=1e-6, rtol=0)
    shifts = torch.linspace(-0.5, 0.5, len(x))
    grey = x[:, :1].expand_as(x)
    assert torch.allclose(adjust_color(grey, hue=shifts), grey, atol=1e-6, rtol=0)


def test_hue_keeps_luma():
    x = 0.5 + 0.2 * (images() - 0.5)  # rotated chroma stays inside [0, 1]: no clamp
    out = adjust_color(x, hue=torch.linspace(-0.5, 0.5, len(x)))
    assert 0 < out.min() and out.max() < 1
    assert torch.allclose(luma(out), luma(x), atol=1e-6, rtol=0)
    assert not torch.allclose(out, x, atol=1e-2)  # the colours did turn


@pytest.mark.parametrize("shift", [0.02, -0.02, 0.05, -0.05, 0.1, -0.1])
def test_hue_approximates_the_hsv_shift(shift):
    """Pure hues (S = V = 1, every degree) shifted by up to 0.1 turn (the default jitter's
    range): the output's HSV hue against kornia's HSV shift. YIQ angles are not HSV angles
    and the rotation keeps luma (a pure colour then leaves the gamut and is clamped), so
    they are not equal: the measured error is about a third of the shift on average
    (10-12 degrees at 0.1 turn = 36 degrees, 2.6 at 0.02) and at most 0.55 of it, and RGB
    values differ by up to 0.5. What is exact: the direction (red turns to yellow for a
    positive shift) and hue 0."""
    hue = torch.arange(360) / 360
    hsv = torch.stack([hue * 2 * math.pi, torch.ones(360), torch.ones(360)]).view(1, 3, 1, 360)
    rgb = kcolor.hsv_to_rgb(hsv)
    ours = adjust_color(rgb, hue=shift)
    theirs = enhance.adjust_hue(rgb, torch.tensor([shift * 2 * math.pi]))

    def hue_of(x):
        return kcolor.rgb_to_hsv(x)[0, 0, 0] / (2 * math.pi)

    error = ((hue_of(ours) - hue_of(theirs) + 0.5) % 1 - 0.5).abs() * 360
    moved = ((hue_of(ours) - hue + 0.5) % 1 - 0.5) * 360
    assert (moved * shift > 0).all()  # every colour turns the way kornia's does
    degrees = abs(shift) * 360
    assert error.mean() <= 0.4 * degrees, error.mean()
    assert error.max() <= 0.6 * degrees + 1, error.max()
    assert (ours - theirs).abs().max() <= 0.5


# -- (c) the distribution of jittered images against kornia's ColorJitter ------------------------
@pytest.mark.parametrize("hue", [0.0, 0.1])
def test_jitter_distribution_close_to_kornia(hue):
    """Per-image channel means and standard deviations of scene frames jittered by Augment
    (jitter 0.4, p = 0.8) and by kornia's ColorJitter (six calls, so six of its random step
    orders): two-sample KS statistics over 3072 images each. Observed over seeds 0-3: at
    most 0.035 without hue; with hue 0.1 up to 0.046, in the blue channel's std (the YIQ
    rotation is not the HSV shift); two independent kornia runs: at most 0.023. Bound: 0.06."""
    frames = scene_frames().repeat(8, 1, 1, 1)  # 512 images per call
    augment = Augment(24, jitter=0.4, hue=hue, flip=False, normalize=False).train()
    kornia = K.ColorJitter(0.4, 0.4, 0.4, hue, p=0.8)
    torch.manual_seed(0)
    ours = torch.cat([augment(frames) for _ in range(6)])
    theirs = torch.cat([kornia(frames.float() / 255).clamp(0, 1) for _ in range(6)])

    def stats(x):
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1).numpy()

    a, b = stats(ours), stats(theirs)
    ks = [ks_2samp(a[:, j], b[:, j]).statistic for j in range(6)]
    assert max(ks) < 0.06, np.round(ks, 3)


# -- (d) p = 0.8, greyscale, the drawn factors ---------------------------------------------------
def test_share_of_jittered_images():
    x = torch.randint(0, 256, (4000, 3, 4, 4), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    out = Augment(4, jitter=0.4, flip=False, normalize=False)(x)
    changed = ((out - x.float() / 255).abs() > 1e-5).flatten(1).any(1).float().mean()
    assert abs(changed.item() - 0.8) < 0.03  # binomial sd 0.006


def test_grayscale_share_and_grey_output():
    x = torch.randint(0, 256, (2000, 3, 4, 4), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    out = Augment(4, jitter=0.0, flip=False, grayscale=0.3, normalize=False)(x)
    grey = (out.amax(1) - out.amin(1) < 1e-6).flatten(1).all(1)
    assert abs(grey.float().mean().item() - 0.3) < 0.04
    assert torch.allclose(out[grey][:, 0], luma(x[grey].float() / 255), atol=1e-6)


def test_factor_ranges_and_neutral_images():
    torch.manual_seed(0)
    f = ColorJitter(0.4, 0.1, p=0.8)(5000)
    applied = (f.brightness != 1) | (f.contrast != 1) | (f.saturation != 1) | (f.hue != 0)
    assert abs(applied.float().mean().item() - 0.8) < 0.03
    for values in (f.brightness, f.contrast, f.saturation):
        v = values[applied]
        assert v.min() >= 0.6 and v.max() <= 1.4 and abs(v.mean().item() - 1) < 0.01
    assert f.hue.abs().max() <= 0.1 and abs(f.hue[applied].mean().item()) < 0.005
    strong = ColorJitter(1.5)(1000)  # strength above 1: factors from 0, as kornia's
    assert strong.brightness.min() >= 0 and strong.brightness.max() <= 2.5


def test_options_are_checked():
    with pytest.raises(ValueError, match="hue"):
        Augment(8, jitter=0.4, hue=0.6)
    with pytest.raises(ValueError, match="strength"):
        ColorJitter(-0.1)
    with pytest.raises(ValueError, match="shape"):
        Augment(8)(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


def test_normalisation_folded_into_the_map():
    """The normalised output is the [0, 1] output, normalised, on every option path."""
    x = torch.randint(0, 256, (12, 3, 10, 10), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(2))
    for options in ({}, {"hue": 0.2, "grayscale": 0.5}, {"resized_crop": (0.3, 1.0)},
                    {"jitter": 0.0}):
        torch.manual_seed(5)
        raw = Augment(8, normalize=False, **options)(x)
        torch.manual_seed(5)
        normalised = Augment(8, **options)(x)
        assert torch.allclose(normalised, (raw - MEAN) / STD, atol=1e-5), options


def test_float_input_and_resize():
    x = torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(3))
    aug = Augment(8, normalize=False)
    torch.manual_seed(0)
    from_uint8 = aug(x)
    torch.manual_seed(0)
    from_float = aug(x.float() / 255)
    assert from_uint8.shape == (6, 3, 8, 8)
    assert torch.allclose(from_uint8, from_float, atol=1e-6)


# -- (e) eval mode --------------------------------------------------------------------------------
def test_eval_mode_is_the_deterministic_transform():
    x = torch.randint(0, 256, (5, 3, 12, 12), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(4))
    aug = Augment(8, jitter=0.8, hue=0.2, grayscale=0.5, blur=0.5,
                  resized_crop=(0.2, 1.0)).eval()
    state = torch.get_rng_state()
    out = aug(x)
    assert torch.equal(torch.get_rng_state(), state)  # draws nothing
    resized = torch.nn.functional.interpolate(x.float() / 255, size=(8, 8), mode="bilinear",
                                              align_corners=False, antialias=True)
    assert torch.equal(out, (resized - MEAN) / STD)
    assert torch.equal(out, aug.normalize_only(x))
