"""Count the host synchronisations of training steps on a GPU (torch's sync debug mode).

The GPU counterpart of ``tests/test_host_sync.py``: the same steps (loss, backward, gradient
clipping, Adam, schedule) on CUDA tensors, for the numerical step (MLPs, Lp-InfoNCE) and image
steps with SimCLR's augmentations on uint8 batches (convnet with NT-Xent, ResNet-18 with
SimSiam, under bf16 autocast as ``trainer.precision=bf16-mixed``). After two warm-up steps,
three steps run under ``torch.cuda.set_sync_debug_mode("warn")``, which warns at every
operation that makes the host wait for the GPU; prints their count per step and the first
warnings. ``--device cpu`` runs the same steps without the count (a check of the script).

    python benchmarks/cuda_syncs.py [--device cuda]
"""

from __future__ import annotations

import argparse
import warnings

import torch

from blockident.data.augment import Augment
from blockident.engine import ContrastiveModule
from blockident.losses import InfoNCE, LpInfoNCE, SimSiam
from blockident.models.heads import image_pair
from blockident.models.mlp import mlp_pair


def cases(device: torch.device):
    """(name, module, make_batch, autocast dtype or None) of each training step."""
    def vectors():
        return {k: torch.randn(1024, 15, device=device)
                for k in ("view1", "view2", "neg1", "neg2")}

    augment = Augment(64, jitter=0.4, flip=True, resized_crop=(0.2, 1.0), grayscale=0.2,
                      blur=0.5).to(device).train()

    def images():
        return {f"view{v}": augment(torch.randint(0, 256, (64, 3, 72, 72), dtype=torch.uint8,
                                                  device=device)) for v in (1, 2)}

    yield ("numerical", ContrastiveModule(mlp_pair(15, 5, [10, 50, 10]), LpInfoNCE(),
                                          max_steps=10), vectors, None)
    yield ("convnet, NT-Xent", ContrastiveModule(image_pair("convnet", hidden_size=64),
                                                 InfoNCE(0.1, within_view=True), max_steps=10),
           images, None)
    yield ("ResNet-18, SimSiam, bf16", ContrastiveModule(image_pair("resnet", hidden_size=64),
                                                         SimSiam(64), max_steps=10),
           images, torch.bfloat16)


def count_syncs(module, make_batch, dtype, device: torch.device) -> list[str] | None:
    """The synchronisation warnings of 3 steps after 2 warm-up steps (None off a GPU)."""
    module.to(device)
    options = module.configure_optimizers()
    optimizer, scheduler = options["optimizer"], options["lr_scheduler"]["scheduler"]

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype or torch.float32, enabled=dtype is not None):
            loss, _ = module._losses(make_batch())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 2.0)
        optimizer.step()
        scheduler.step()

    for _ in range(2):
        step()
    if device.type != "cuda":
        step()
        return None
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(3):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [f"{w.filename}:{w.lineno}: {str(w.message).splitlines()[0]}" for w in caught
            if "synchroniz" in str(w.message).lower()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    for name, module, make_batch, dtype in cases(device):
        syncs = count_syncs(module, make_batch, dtype, device)
        if syncs is None:
            print(f"{name}: ran (no count off a GPU)")
            continue
        print(f"{name}: {len(syncs) / 3:.1f} host synchronisations per step")
        for message in dict.fromkeys(syncs):
            print(f"    {message}")


if __name__ == "__main__":
    main()
