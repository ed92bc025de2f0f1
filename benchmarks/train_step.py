"""Time one training step of the numerical simulation at the paper's size.

Paper setting: batch 6144 positive pairs plus 6144 separately drawn negatives, latents
5 + 5 + 5, encoders with widths 10n, 50n, 50n, 50n, 50n, 10n (n = 15), symmetrised Lp-InfoNCE
(p = 2, tau = 1), gradient clipping at 2 and Adam. The variants compute the same mathematics:

- ``reference``: the structure of the original code: four separate encoder passes and the
  pairwise distances through an explicit (N, N, D) broadcast;
- ``defaults``: the package's training step (``ContrastiveModule``): one pass per encoder over
  positives and negatives together and distances from inner products, with malloc's defaults
  as the reference;
- ``blockident``: the same step in a process whose malloc keeps freed memory
  (``blockident.heap``, as ``blockident run`` sets it).

The malloc setting holds for the whole process, so the variants run in this order. Prints
seconds per step, samples/s and achieved GFLOP/s against the measured fp32 matmul peak, and the
time of the step's encoder matrix products alone (at their shapes, into preallocated outputs):
what a step takes beyond it is the loss, the element-wise work and the optimiser.

    .venv/bin/python benchmarks/train_step.py [--batch 6144] [--steps 3] [--multipliers 10 10 10]
        [--device cuda]

``--multipliers`` sets the hidden widths (``m * 15``; the CPU config ``numerical`` uses 10 10 10).
``--compile`` also times the package's step with both encoders under ``torch.compile``
(``compiled``; its compilation falls in the warm-up step). ``--bf16`` also times it under
autocast to bfloat16, as ``trainer.precision=bf16-mixed`` runs it (``bf16``: the encoders'
products in bfloat16, the loss in float32; not the same arithmetic). ``--profile`` runs the
package's step under torch's profiler instead and prints where its time goes: the share of the
matrix products (``mm``, ``addmm``) and the largest other operations.

``--device cuda`` times the step on a GPU (the malloc variants do not apply there): the peaks
are those of fp32 (TF32 off), TF32 and bf16 products on the device; ``blockident`` runs in
exact fp32, ``tf32`` with TF32 products, ``bf16`` under CUDA autocast, and ``blocked`` with the
CPU's blocked log-sum-exp forced (what the device dispatch of ``lp_infonce`` avoids). On a GPU
each variant runs its ``--steps`` steps back to back after a warm-up step, and the time is their
mean (the rate training sees); on a CPU it is the fastest single step.
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from device_clock import clock
from torch.profiler import ProfilerActivity, profile

import blockident.losses
from blockident.data.numerical import NumericalData
from blockident.engine import ContrastiveModule
from blockident.heap import retain_freed_memory
from blockident.losses import LpInfoNCE, _SquaredDistanceLogSumExp
from blockident.models.mlp import mlp_pair

MULTIPLIERS = [10, 50, 50, 50, 50, 10]


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32,
                repeats: int = 5) -> float:
    """Best GFLOP/s of a square product in ``dtype`` (4096 on a CPU, 8192 on a GPU) into one
    output tensor (a new one would add its page faults to the time)."""
    size = 8192 if device.type == "cuda" else 4096
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t = clock(device)
        torch.mm(a, b, out=out)
        best = min(best, clock(device) - t)
    return 2 * size**3 / best / 1e9


def encoder_products(batch: int, n: int, encoding: int, multipliers: list[int],
                     device: torch.device, repeats: int = 3) -> float:
    """Best seconds of the step's encoder matrix products alone, at their shapes and into
    preallocated outputs: for each of the 2 encoders and each layer, the forward product and
    the two backward ones (weights; inputs, but for the first layer) over 2 * batch rows."""
    widths = [n, *(m * n for m in multipliers), encoding]
    rows = 2 * batch
    x = [torch.randn(rows, w, device=device) for w in widths]
    weights = [torch.randn(o, i, device=device)
               for i, o in zip(widths[:-1], widths[1:], strict=True)]
    grad_w = [torch.empty_like(w) for w in weights]
    grad_x = [torch.empty_like(a) for a in x]

    def products():
        for _ in range(2):
            for layer, w in enumerate(weights):
                torch.mm(x[layer], w.T, out=x[layer + 1])
                torch.mm(x[layer + 1].T, x[layer], out=grad_w[layer])
                if layer:
                    torch.mm(x[layer + 1], w, out=grad_x[layer])

    products()
    best = float("inf")
    for _ in range(repeats):
        t = clock(device)
        products()
        best = min(best, clock(device) - t)
    return best


def step_flops(batch: int, n: int, encoding: int, multipliers: list[int]) -> float:
    """Matrix-multiply FLOPs of one step: 4 encoder passes of `batch` samples (forward and the
    two backward products), plus the two (batch x batch) distance products."""
    widths = [n, *(m * n for m in multipliers), encoding]
    per_sample = sum(2 * a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    return 4 * batch * per_sample * 3 + 2 * 2 * batch * batch * encoding * 3


def reference_loss(encoders, batch):
    def direction(a, pos, neg):
        d_pos = torch.norm(a - pos, p=2, dim=-1) ** 2
        d_neg = torch.norm(a[:, None] - neg[None], p=2, dim=-1) ** 2
        logits = -torch.cat([d_neg, d_pos[:, None]], dim=1)
        return (d_pos + torch.logsumexp(logits, dim=1)).mean()

    h1, h2 = encoders(1, batch["view1"]), encoders(2, batch["view2"])
    n1, n2 = encoders(1, batch["neg1"]), encoders(2, batch["neg2"])
    return 0.5 * (direction(h1, h2, n1) + direction(h2, h1, n2))


def time_steps(loss_fn, module, data, steps: int) -> float:
    """Seconds per step (see the module docstring): on a CPU the fastest of ``steps`` steps,
    on a GPU the mean of ``steps`` steps back to back; a warm-up step first."""
    device = next(module.parameters()).device
    params = list(module.encoders.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    batches = [{k: v.to(device) for k, v in data._training_batch(generator).items()}
               for _ in range(steps + 1)]

    def step(batch):
        optimizer.zero_grad()
        loss_fn(batch).backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        optimizer.step()

    step(batches[0])
    if device.type == "cuda":
        start = clock(device)
        for batch in batches[1:]:
            step(batch)
        return (clock(device) - start) / steps
    times = []
    for batch in batches[1:]:
        start = clock(device)
        step(batch)
        times.append(clock(device) - start)
    return min(times)


MATMULS = ("aten::mm", "aten::addmm", "aten::addmm_")


def print_profile(loss_fn, module, data, steps: int) -> None:
    """Self CPU time of ``steps`` (>= 2) profiled steps, after two warm-up steps: matrix
    products against the rest, and the six largest other operations."""
    time_steps(loss_fn, module, data, 1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        time_steps(loss_fn, module, data, steps - 1)
    ops = {e.key: e.self_cpu_time_total for e in prof.key_averages() if e.key.startswith("aten::")}
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    matmul = sum(ops.pop(k, 0.0) for k in MATMULS)
    print(f"profiled {steps} steps: matrix products {100 * matmul / total:.1f}% of self CPU time")
    for name, us in sorted(ops.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {name:<28} {100 * us / total:5.1f}%")


@contextlib.contextmanager
def tf32_products():
    """fp32 matrix products in TF32 on a GPU (torch's ``matmul.allow_tf32``)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False


@contextlib.contextmanager
def blocked_logsumexp():
    """``lp_infonce`` with the CPU's blocked log-sum-exp on any device."""
    dispatch = blockident.losses._neg_logsumexp
    blockident.losses._neg_logsumexp = \
        lambda anchor, negatives, tau, p: _SquaredDistanceLogSumExp.apply(anchor, negatives, tau)
    try:
        yield
    finally:
        blockident.losses._neg_logsumexp = dispatch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=6144)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--only", choices=["reference", "defaults", "compiled", "blockident",
                                           "bf16", "tf32", "blocked"],
                        help="time this variant alone (defaults: the package's step with "
                             "malloc's defaults)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the package's step with torch.compile'd encoders")
    parser.add_argument("--bf16", action="store_true",
                        help="also time the package's step under autocast to bfloat16 "
                             "(always on a GPU)")
    parser.add_argument("--profile", action="store_true",
                        help="profile the package's step instead of timing both")
    parser.add_argument("--multipliers", type=int, nargs="+", default=MULTIPLIERS,
                        help="hidden widths as multiples of the 15 inputs (default: the paper's)")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"

    torch.manual_seed(0)
    data = NumericalData(batch_size=args.batch, negatives=True)
    module = ContrastiveModule(mlp_pair(15, 5, args.multipliers), LpInfoNCE()).to(device)
    peaks = {"fp32": matmul_peak(device)}
    if gpu:
        with tf32_products():
            peaks["tf32"] = matmul_peak(device)
    if gpu or args.bf16:
        peaks["bf16"] = matmul_peak(device, torch.bfloat16)
    flops = step_flops(args.batch, 15, 5, args.multipliers)
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if gpu else "")
          + f", batch {args.batch}, hidden widths {[m * 15 for m in args.multipliers]}")
    floor = flops / peaks["fp32"] / 1e9
    print(f"threads: {torch.get_num_threads()}  matmul peaks (GFLOP/s): "
          + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items())
          + f"  step matmul work: {flops / 1e9:.1f} GFLOP (>= {floor:.4f} s at the fp32 peak)")
    products = encoder_products(args.batch, 15, 5, args.multipliers, device)
    print(f"the encoders' fp32 matrix products alone, at their shapes: {products:.4f} s")
    step = {"reference": lambda b: reference_loss(module.encoders, b),
            "blockident": lambda b: module.loss(*module._encode_views(b))}

    def bf16_step(batch):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return step["blockident"](batch)

    # (name, loss function, module, whether malloc keeps freed memory, context, precision),
    # in the order they run; malloc's setting holds for the rest of the process once made
    plain = contextlib.nullcontext
    variants = [("reference", step["reference"], module, False, plain, "fp32")]
    if not gpu:
        variants.append(("defaults", step["blockident"], module, False, plain, "fp32"))
    if args.compile:
        compiled = ContrastiveModule(mlp_pair(15, 5, args.multipliers), LpInfoNCE()).to(device)
        compiled.encoders.load_state_dict(module.encoders.state_dict())
        for name in ("encoder1", "encoder2"):
            setattr(compiled.encoders, name, torch.compile(getattr(compiled.encoders, name)))
        variants.append(("compiled", lambda b: compiled.loss(*compiled._encode_views(b)),
                         compiled, True, plain, "fp32"))
    variants.append(("blockident", step["blockident"], module, True, plain, "fp32"))
    if gpu:
        variants += [("blocked", step["blockident"], module, True, blocked_logsumexp, "fp32"),
                     ("tf32", step["blockident"], module, True, tf32_products, "tf32")]
    if gpu or args.bf16:
        variants.append(("bf16", bf16_step, module, True, plain, "bf16"))
    if args.profile:
        retain_freed_memory()
        print_profile(step["blockident"], module, data, args.steps)
        return
    seconds = {}
    for name, fn, owner, retained, context, precision in variants:
        if args.only and name != args.only:
            continue
        if retained and not gpu:
            retain_freed_memory()
        with context():
            seconds[name] = s = time_steps(fn, owner, data, args.steps)
        rate = flops / s / 1e9
        print(f"{name:<11} {s:8.4f} s/step  {1 / s:7.1f} steps/s  {args.batch / s:9.0f} pairs/s  "
              f"{rate:8.1f} GFLOP/s ({100 * rate / peaks['fp32']:.0f}% of the fp32 peak"
              + (f", {100 * rate / peaks[precision]:.0f}% of the {precision} peak)"
                 if precision != "fp32" else ")"))
    for slower, faster, what in [("reference", "blockident", ""),
                                 ("defaults", "blockident", " (malloc keeping freed memory)"),
                                 ("reference", "bf16", ""), ("blockident", "compiled", ""),
                                 ("blocked", "blockident", " (the whole-matrix log-sum-exp)"),
                                 ("blockident", "tf32", ""), ("blockident", "bf16", "")]:
        if {slower, faster} <= seconds.keys():
            bound = (f" (at most {seconds['reference'] / floor:.2f} with the matrix work at "
                     "peak)") if (slower, faster) == ("reference", "blockident") else ""
            print(f"ratio {slower} / {faster}{what}: "
                  f"{seconds[slower] / seconds[faster]:.2f}{bound}")


if __name__ == "__main__":
    main()
