"""Training throughput of the image encoders (ResNet-18 and the small convnet), CPU or GPU.

Per step: a random uint8 batch of ``--batch`` pairs at the target size (so ``Augment`` does no
resize), both views through ``Augment`` (colour jitter + horizontal flip, no crop), the shared
encoder (``image_pair(shared_encoder=True, hidden_size=512, encoding_size=64)``), symmetrised
InfoNCE (cosine, tau = 0.1), backward, gradient clipping at 2 and an Adam step. One image is one
view, so a step processes 2 * batch images. After ``--warmup`` untimed steps, ``--steps`` steps
are timed; prints the best and median images/s and the share of the step time spent in the
augmentation (median over the timed steps), as a markdown table.

    .venv/bin/python benchmarks/image_encoders.py [--backbones resnet convnet] [--sizes 64 128]
        [--batch 64] [--steps 5] [--warmup 1] [--device cuda] [--bf16]

On a GPU (``--device cuda``) the batch is drawn on the device, each timed phase ends with a
synchronisation, and ``--bf16`` runs the encoder and loss under autocast to bfloat16 (as
``trainer.precision=bf16-mixed``; the augmentation stays float32).
"""

from __future__ import annotations

import argparse
import statistics

import torch
from device_clock import clock

from blockident.data.augment import Augment
from blockident.losses import infonce
from blockident.models.heads import image_pair


def time_config(backbone: str, size: int, batch: int, steps: int, warmup: int,
                device: torch.device, bf16: bool):
    """(step seconds, augmentation seconds) of each timed step."""
    torch.manual_seed(0)
    model = image_pair(backbone, depth=18, hidden_size=512, encoding_size=64,
                       shared_encoder=True)
    model.to(device).train()
    augment = Augment(size, jitter=0.4, flip=True, resized_crop=None).to(device).train()
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-4)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=bf16)
    step_times, aug_times = [], []
    for i in range(warmup + steps):
        x1, x2 = (torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
                  for _ in range(2))
        t0 = clock(device)
        v1, v2 = augment(x1), augment(x2)
        t1 = clock(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = infonce(model(1, v1), model(2, v2), tau=0.1, sim="cosine")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        optimizer.step()
        t2 = clock(device)
        if i >= warmup:
            step_times.append(t2 - t0)
            aug_times.append(t1 - t0)
    return step_times, aug_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet", "convnet"],
                        choices=["resnet", "convnet"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128])
    parser.add_argument("--batch", type=int, default=64, help="pairs per step")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="encoder and loss under autocast")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.steps < 1 or args.batch < 1:
        parser.error("--steps and --batch must be positive")

    images = 2 * args.batch
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"threads: {torch.get_num_threads()}"
    print(f"torch {torch.__version__}, {device} ({where}), {'bf16' if args.bf16 else 'fp32'}, "
          f"batch: {args.batch} "
          f"pairs ({images} images/step), warm-up {args.warmup}, timed steps {args.steps}\n")
    print("| backbone | size | s/step (median) | images/s best | images/s median "
          "| augmentation share |")
    print("|----------|------|-----------------|---------------|-----------------"
          "|--------------------|")
    names = {"resnet": "ResNet-18", "convnet": "convnet"}
    for backbone in args.backbones:
        for size in args.sizes:
            steps, augs = time_config(backbone, size, args.batch, args.steps, args.warmup,
                                      device, args.bf16)
            median = statistics.median(steps)
            share = statistics.median(a / s for a, s in zip(augs, steps, strict=True))
            print(f"| {names[backbone]} | {size}x{size} | {median:.3f} | "
                  f"{images / min(steps):.0f} | {images / median:.0f} | {100 * share:.0f}% |",
                  flush=True)


if __name__ == "__main__":
    main()
