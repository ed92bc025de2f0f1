"""Keep the memory a training step frees for the next step (glibc's malloc).

Every step allocates and frees the same large tensors. With glibc's defaults a block over the
mmap threshold (32 MiB at most, e.g. a (12288, 750) float32 activation) is mapped afresh on
each allocation, and freed memory at the top of the heap goes back to the operating system, so
each step faults its activations in again page by page. :func:`retain_freed_memory` tells
malloc to serve every block from its heap and never to shrink it: the steps of ``make run`` and
of the numerical simulation at batch 6144 then take 9-14 % less time, and the process's
resident memory stays at its peak until it exits (docs/benchmarks.md). PyTorch's CPU tuning
guide preloads jemalloc or tcmalloc for the same reason; this needs no other library.
"""

from __future__ import annotations

import ctypes
import platform

# mallopt(3) parameters
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
INT_MAX = 2**31 - 1


def retain_freed_memory() -> bool:
    """Apply the settings to this process (and processes it forks); whether they took (False
    where the C library is not glibc)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the C library the interpreter is linked against
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, INT_MAX))
