"""``run.json``: the command line that repeats a run, when it started and its wall time; and
``FAILED``, which marks a run whose training failed before its first trained checkpoint."""

from __future__ import annotations

import json
import shlex
import time
from datetime import datetime
from pathlib import Path

from blockident.io import atomic_write_text

FILE = "run.json"
FAILED = "FAILED"


def failure(run_dir: Path) -> str | None:
    """Why the training of ``run_dir`` failed (the text of its ``FAILED`` file), or None."""
    path = Path(run_dir) / FAILED
    return path.read_text().strip() if path.is_file() else None
# a repeat gets its own folder and launcher
_NOT_REPEATED = ("run_dir=", "resume=", "hydra/", "hydra.")


def repeat_command(command: str, overrides: list[str], experiment: str, seed: int) -> str:
    """``blockident COMMAND experiment=NAME ... seed=S``: the overrides of this run, with the
    experiment and seed always named (the defaults may change) and without its run folder."""
    kept = [o.removesuffix("=null") if o.startswith("~") else o  # a sweep job writes ~key=null
            for o in overrides if not o.lstrip("+~").startswith(_NOT_REPEATED)]
    if not any(o.startswith("experiment=") for o in kept):
        kept.insert(0, f"experiment={experiment}")
    if not any(o.startswith("seed=") for o in kept):
        kept.append(f"seed={seed}")
    return shlex.join(["blockident", command, *kept])


def record(run_dir: Path, command: str, started: float) -> dict:
    """Write (or, after a resume, extend) ``run.json``: the first command line is kept and the
    wall time of every segment is added up."""
    info = read(run_dir) or {"command": command,
                             "started": datetime.fromtimestamp(started).isoformat(" ", "seconds"),
                             "wall_time_s": 0.0}
    info["wall_time_s"] = round(info["wall_time_s"] + time.time() - started, 1)
    atomic_write_text(Path(run_dir) / FILE, json.dumps(info, indent=2) + "\n")
    return info


def read(run_dir: Path) -> dict | None:
    path = Path(run_dir) / FILE
    return json.loads(path.read_text()) if path.is_file() else None
