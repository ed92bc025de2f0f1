"""The ``blockident`` command in a subprocess, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

COMMAND = [sys.executable, "-m", "blockident.cli"]


def blockident(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``blockident ARGS``; stdout and stderr captured as text."""
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def start(*args) -> subprocess.Popen:
    """Start ``blockident ARGS`` without waiting (its output discarded)."""
    return subprocess.Popen([*COMMAND, *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_for(condition, process: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``condition()`` until true; fail if ``process`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the command ended early (exit {process.returncode})"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
