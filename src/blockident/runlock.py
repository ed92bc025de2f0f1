"""One command at a time per run directory: an exclusive ``flock`` on ``RUN_DIR/.lock``.

The kernel releases the lock when its process ends, however it ends, so a killed run leaves no
stale lock. Only the first process of a multi-process (DDP) run takes it; the others run inside
the lock of the process that launched them.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from blockident.errors import UserError

LOCK_FILE = ".lock"
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


class RunInUseError(UserError):
    """Another command is writing into the run directory."""


def _worker() -> bool:
    """Whether this process is a worker of rank > 0 of a multi-process run."""
    return any(int(os.environ.get(name) or 0) > 0 for name in RANK_VARIABLES)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock, or raise :class:`RunInUseError` naming the holder's pid."""
    if _worker():
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            raise RunInUseError(f"{run_dir}: another blockident command (pid {holder}) is "
                                "writing into this run directory; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
