"""Wall-clock readings that include the work a GPU still has queued."""

from __future__ import annotations

import time

import torch


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once ``device`` has finished its queued work (a CUDA device is
    synchronised first; a CPU has nothing queued)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
