"""The run's log: what a run shows on stdout also goes to ``RUN_DIR/blockident.log``.

Hydra configures Python logging for every job from ``conf/hydra/job_logging/blockident.yaml``:
messages below WARNING go to stdout as they are, warnings to stderr, and everything (Lightning's
messages and Python warnings included) to the run's log file with a time stamp. Progress bars
write to the terminal directly and stay out of the file. Lightning's and torch's messages that
are not the user's business are dropped at their source here.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

log = logging.getLogger("blockident")
T = TypeVar("T")

# Lightning's messages about the machine and its own products, not about the run
LIGHTNING_NOISE = re.compile(r"(GPU|TPU|HPU) available|💡 Tip|LOCAL_RANK: \d+ - |"
                             r"Trainer already configured with model summary")
# torch >= 2.10 deprecates the LeafSpec that Lightning <= 2.6 still uses in every fit
warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                        FutureWarning)


class BelowWarning(logging.Filter):
    """Passes records below WARNING (stdout gets them; stderr the rest)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


class LightningNoise(logging.Filter):
    """Drops Lightning's lines about accelerators and its cloud products."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("lightning")
                    and LIGHTNING_NOISE.search(record.getMessage()))


def progress(items: Iterable[T], desc: str, every: float = 30.0) -> Iterator[T]:
    """``items`` with progress: a tqdm bar on a terminal; elsewhere (a cluster job, the log
    file) a line when the loop starts, at most every ``every`` seconds and when it ends."""
    items = list(items)
    started = last = time.monotonic()
    log.info("%s: 0 of %d", desc, len(items))
    terminal = sys.stderr.isatty()
    for i, item in enumerate(tqdm(items, desc=desc, leave=False, disable=not terminal), 1):
        yield item
        now = time.monotonic()
        if not terminal and now - last >= every and i < len(items):
            log.info("%s: %d of %d (%.0f s)", desc, i, len(items), now - started)
            last = now
    log.info("%s: %d of %d in %.1f s", desc, len(items), len(items), time.monotonic() - started)


def progress_bars(enabled: bool, max_steps: int, log_every: int) -> list:
    """Lightning's progress bar for a training of ``max_steps`` steps, as a callback list
    (empty when not ``enabled``). Each refresh reads the logged loss off the device, which makes
    a GPU finish its queued work first, so the bar refreshes about 20 times per run, and on a
    terminal also at least every ``log_every`` steps (the steps whose loss the loggers read
    anyway), never every step."""
    from lightning.pytorch.callbacks import TQDMProgressBar

    if not enabled:
        return []
    rate = max(1, max_steps // 20)
    if sys.stderr.isatty():
        rate = min(rate, max(1, log_every))
    return [TQDMProgressBar(refresh_rate=rate)]
