"""Augmentation against the training step: the previous kornia colour jitter and the fused one.

Builds an experiment's training step as ``blockident run`` does (default: the default
experiment, scenes: the convnet at 64 px, 128 pairs per batch, jitter 0.4 without hue, flips):
the data module's :class:`~blockident.data.augment.Augment`, the model and loss of
``runner.build_module`` and its optimiser. Each timed step draws a uint8 batch of
``batch_size`` pairs at the data's size (random pixels: the colour ops cost the same on any
content), augments both views with each of

- ``kornia``: the previous ``Augment`` (kornia ``ColorJitter`` through HSV, with a clamp after
  each step, and kornia's flip), kept here only for this comparison, and
- ``fused``: the package's ``Augment`` (one affine map per image, :mod:`blockident.data.color`),

and runs one encoder step on the fused views: forward, loss, backward, gradient clipping at
``trainer.gradient_clip_val`` and the optimiser step, with malloc keeping freed memory as
``blockident run`` sets it (``retain_freed_memory``; ``--malloc-defaults`` leaves it off).
Prints the median milliseconds per batch (both views) of each augmentation, of the encoder
step, the augmentation's share of augmentation + step, and kornia / fused. The two
augmentations alternate within each step, so background load on a shared machine hits both
alike; the load average is printed.

    .venv/bin/python benchmarks/augment.py [--steps 10] [--warmup 2] [--device cpu]
        [--threads N] [--malloc-defaults] [overrides ...]   # e.g. experiment=realworld
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics

import kornia.augmentation as K
import torch
from device_clock import clock
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from blockident.data.augment import IMAGENET_MEAN, IMAGENET_STD, Augment
from blockident.heap import retain_freed_memory
from blockident.runner import build_module


class KorniaAugment(nn.Module):
    """The previous ``Augment`` (training mode): kornia ops on [0, 1] floats, then clamp and
    ImageNet normalisation."""

    def __init__(self, size: int, *, jitter: float = 0.4, hue: float | None = None,
                 flip: bool = True, resized_crop: tuple[float, float] | None = None,
                 grayscale: float = 0.0, blur: float = 0.0, normalize: bool = True):
        super().__init__()
        self.size, self.normalize = size, normalize
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if not self.crops and x.shape[-2:] != (self.size, self.size):
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear",
                                          align_corners=False, antialias=True)
        x = self.random(x).clamp(0.0, 1.0)
        return (x - self.mean) / self.std if self.normalize else x


def build(overrides: list[str], device: torch.device):
    """(config, data module's Augment, Lightning module, optimiser) of the composed config."""
    with initialize_config_module("blockident.conf", version_base="1.3"):
        cfg = compose("config", overrides)
    OmegaConf.set_struct(cfg, False)
    data = instantiate(cfg.data)
    if not isinstance(getattr(data, "augment", None), Augment):
        raise SystemExit(f"{cfg.info.name}: the data module has no Augment")
    module = build_module(cfg, data).to(device).train()
    optimizer = module.configure_optimizers()["optimizer"]
    return cfg, data.augment.to(device).train(), module, optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--malloc-defaults", action="store_true",
                        help="leave malloc's defaults (blockident run keeps freed memory)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (experiment=..., ...)")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be positive and --warmup not negative")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    cfg, fused, module, optimizer = build(args.overrides, device)
    if cfg.retain_freed_memory and not args.malloc_defaults:
        retain_freed_memory()
    kornia = KorniaAugment(fused.size, **fused.options).to(device).train()
    size, batch = fused.size, int(cfg.data.batch_size)
    clip = cfg.trainer.get("gradient_clip_val")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    autocast = torch.autocast(device.type, torch.bfloat16) \
        if str(cfg.trainer.get("precision")) == "bf16-mixed" else contextlib.nullcontext()
    print(f"experiment {cfg.info.name}: {cfg.model.get('backbone', cfg.model._target_)}, "
          f"{size} px, batch {batch} pairs ({2 * batch} images), augment {fused.options}")
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}, warm-up {args.warmup}, timed {args.steps}, "
          f"malloc {'defaults' if args.malloc_defaults else 'keeps freed memory'}\n")

    times: dict[str, list[float]] = {"kornia": [], "fused": [], "step": []}
    for i in range(args.warmup + args.steps):
        views = [torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8).to(device)
                 for _ in range(2)]
        spent = {}
        for name, augment in (("kornia", kornia), ("fused", fused))[::1 if i % 2 else -1]:
            t0 = clock(device)
            out = [augment(v) for v in views]
            spent[name] = clock(device) - t0
        t0 = clock(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss, _ = module._losses({"view1": out[0], "view2": out[1]})
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, float(clip))
        optimizer.step()
        spent["step"] = clock(device) - t0
        if i >= args.warmup:
            for name, seconds in spent.items():
                times[name].append(seconds)

    step = statistics.median(times["step"]) * 1e3
    print("| augmentation | ms per batch (median) | step ms (median) | share of aug + step |")
    print("|--------------|-----------------------|------------------|---------------------|")
    for name in ("kornia", "fused"):
        aug = statistics.median(times[name]) * 1e3
        share = statistics.median(a / (a + s) for a, s in zip(times[name], times["step"],
                                                               strict=True))
        print(f"| {name} | {aug:.1f} | {step:.1f} | {100 * share:.1f}% |")
    ratio = statistics.median(k / f for k, f in zip(times["kornia"], times["fused"], strict=True))
    print(f"\nkornia / fused: {ratio:.1f}x (median over steps)")


if __name__ == "__main__":
    main()
