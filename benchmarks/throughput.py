"""Throughput of an experiment's real training loop, on a CPU or a GPU.

Composes the config as ``blockident train`` does (Hydra overrides; default: the default
experiment), builds its data module and model as ``runner.build_module`` does, and runs
Lightning's ``Trainer.fit`` with the config's trainer options (devices, precision, gradient
clipping) for ``--warmup`` + ``--steps`` steps, without the per-run work that is not per step
(validation, checkpoints, loggers, readouts, progress bar). It prints, over the timed steps:

- steps/s and samples/s (images/s for image data: both views of every pair count);
- the data-loading share: the time the loop waited for its next batch (Lightning's
  ``SimpleProfiler``, action ``train_dataloader_next``) over the wall time of the timed steps;
- the host time of moving each batch to the device and augmenting it there (the profiler's
  ``batch_to_device``), which a GPU overlaps with its work as long as nothing waits for it;
- on a GPU, its utilisation (NVML through ``torch.cuda.utilization``, sampled every 0.1 s:
  the share of time a kernel ran) and the peak memory allocated.

    .venv/bin/python benchmarks/throughput.py [--steps 50] [--warmup 10] [overrides ...]
    # e.g. experiment=scenes_gpu trainer.max_steps=... is ignored: --steps sets the run's length
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

import lightning as L
import torch
from device_clock import clock
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from lightning.pytorch.profilers import SimpleProfiler
from omegaconf import OmegaConf

from blockident.heap import retain_freed_memory
from blockident.runner import build_module

DATA_WAIT = "[_TrainingEpochLoop].train_dataloader_next"
TO_DEVICE = "[Strategy]SingleDeviceStrategy.batch_to_device"


class StepTimer(L.Callback):
    """Wall time of the steps after ``warmup``, the samples of a step, and GPU utilisation
    samples meanwhile."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end, self.utilisation = warmup, None, None, []
        self.error, self.samples = "no samples", 0
        self._sampling = threading.Event()

    def _sample(self, device: torch.device) -> None:
        try:
            while self._sampling.is_set():
                self.utilisation.append(torch.cuda.utilization(device))
                time.sleep(0.1)
        except Exception as error:  # no NVML (nvidia-ml-py): the rest is still measured
            self.error = f"{type(error).__name__}: {error}"

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.samples = samples_per_step(batch)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = clock(module.device)
            if module.device.type == "cuda":
                self._sampling.set()
                threading.Thread(target=self._sample, args=(module.device,), daemon=True).start()

    def on_train_end(self, trainer, module):
        self.end = clock(module.device)
        self._sampling.clear()


def samples_per_step(batch: dict) -> int:
    """Samples the encoders see in one step: every row of every view (and negatives)."""
    return sum(len(v) for v in batch.values() if isinstance(v, torch.Tensor))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (experiment=..., ...)")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be positive")

    with initialize_config_module("blockident.conf", version_base="1.3"):
        cfg = compose("config", args.overrides)
    OmegaConf.set_struct(cfg, False)
    if cfg.retain_freed_memory:
        retain_freed_memory()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = instantiate(cfg.data)
    module = build_module(cfg, data)
    timer = StepTimer(args.warmup)
    profile_dir = tempfile.TemporaryDirectory()  # its report goes to a file, not the output
    profiler = SimpleProfiler(dirpath=profile_dir.name, filename="profile")
    options = {key: value for key, value in cfg.trainer.items()  # the per-step options
               if key not in ("val_check_interval", "check_val_every_n_epoch",
                              "log_every_n_steps", "num_sanity_val_steps")}
    options.update(max_steps=args.warmup + args.steps, limit_val_batches=0,
                   enable_checkpointing=False, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, profiler=profiler, callbacks=[timer])
    trainer = L.Trainer(**options)
    trainer.fit(module, datamodule=data)

    wall = timer.end - timer.start
    timed = slice(args.warmup, args.warmup + args.steps)
    waited = sum(profiler.recorded_durations[DATA_WAIT][timed])
    to_device = profiler.recorded_durations[TO_DEVICE][timed]
    device = module.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"\nexperiment {cfg.info.name}: {cfg.model.get('backbone', cfg.model._target_)}, "
          f"batch {cfg.data.batch_size}, precision {cfg.trainer.precision}, "
          f"num_workers {cfg.data.get('num_workers', 0)}, on {device} ({name})")
    print(f"{args.steps} timed steps after {args.warmup}: {wall / args.steps * 1e3:.1f} ms/step, "
          f"{args.steps / wall:.1f} steps/s, {timer.samples * args.steps / wall:.0f} samples/s "
          f"({timer.samples} per step)")
    print(f"waiting for data: {100 * waited / wall:.1f}% of the wall time; "
          f"batch to device + augmentation (host): {statistics.median(to_device) * 1e3:.1f} ms "
          "per step (median)")
    if device.type == "cuda":
        utilisation = f"mean {statistics.mean(timer.utilisation):.0f}% over " \
            f"{len(timer.utilisation)} samples" if timer.utilisation else f"n/a ({timer.error})"
        print(f"GPU utilisation: {utilisation}; peak memory allocated "
              f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
