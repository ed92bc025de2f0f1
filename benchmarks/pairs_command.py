"""Time the whole ``blockident pairs`` work against a bare ``json.load`` of the same split files.

On a BURST-sized annotation set in the real format (:func:`burst_pairs.generate`, same options
and defaults as ``benchmarks/burst_pairs.py``), each measurement runs in a fresh process, best of
``--repeat``:

- ``json.load``: the reference, in a process that imports the standard library only (numpy's
  objects would slow its garbage collections): each split file (train, val, test) decoded, the
  document released before the next;
- ``orjson.loads``: the same with orjson (the decoder ``read_burst`` uses), for reference;
- ``blockident pairs``: ``blockident.pairs.command.main([DATA_DIR, --k 20, --n 1 2 3, --out
  CSV])`` (read, validate, frame table, strata, pairs, statistics, CSV; no figures), timed after
  its imports, which are timed separately.

It prints wall-clock and CPU times (each the best of its processes; CPU time is the steadier
on a loaded machine) and the ratio of ``blockident pairs`` to ``json.load``.

    .venv/bin/python benchmarks/pairs_command.py [--dir DIR] [--videos 2900] [--rle-chars 80]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPLIT_FILES = ("train.json", "val.json", "test.json")
COMMAND = ["--k", "20", "--n", "1", "2", "3"]


def clock() -> tuple[float, float]:
    """(wall-clock, CPU time of this process) in seconds."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    return tuple(now - then for now, then in zip(clock(), start, strict=True))


def measure(kind: str, data_dir: Path) -> dict[str, tuple[float, float]]:
    """(wall-clock, CPU) seconds of one run of ``kind`` in this (fresh) process."""
    files = [data_dir / name for name in SPLIT_FILES]
    if kind == "json":
        import json

        start = clock()
        for path in files:
            with open(path, "rb") as handle:
                doc = json.load(handle)
            del doc
        return {"json.load": since(start)}
    if kind == "orjson":
        import orjson

        start = clock()
        for path in files:
            doc = orjson.loads(path.read_bytes())
            del doc
        return {"orjson.loads": since(start)}
    import contextlib
    import io

    start = clock()
    from blockident.pairs import command

    imports, start = since(start), clock()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        command.main([str(data_dir), *COMMAND, "--out", f"{tmp}/pairs.csv"])
    return {"imports": imports, "blockident pairs": since(start)}


def best_of(kind: str, data_dir: Path, repeat: int) -> dict[str, tuple[float, float]]:
    """The smallest wall-clock and CPU time of every quantity over ``repeat`` fresh processes."""
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--measure", kind, "--dir", str(data_dir)],
                             check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            name, wall, cpu = line.rsplit(" ", 2)
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], float(wall)), min(old[1], float(cpu)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="write/reuse the annotation set here")
    parser.add_argument("--videos", type=int, default=2900)
    parser.add_argument("--frames", type=int, default=115_000)
    parser.add_argument("--masks", type=int, default=400_000)
    parser.add_argument("--categories", type=int, default=482)
    parser.add_argument("--rle-chars", type=int, default=80)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per measurement")
    parser.add_argument("--measure", choices=("json", "orjson", "command"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        for name, (wall, cpu) in measure(args.measure, args.dir).items():
            print(f"{name} {wall} {cpu}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.dir or Path(tmp)
        if not (data_dir / "test.json").exists():
            from burst_pairs import generate  # imports numpy: not in the measuring processes

            generate(data_dir, args.videos, args.frames, args.masks, args.categories,
                     args.rle_chars)
        size = sum((data_dir / name).stat().st_size for name in SPLIT_FILES) / 2**20
        print(f"{data_dir}: {size:.0f} MiB of split files; best of {args.repeat} fresh processes")
        times = {}
        for kind in ("json", "orjson", "command"):
            times.update(best_of(kind, data_dir, args.repeat))
        wall_ref, cpu_ref = times["json.load"]
        print("| work | wall clock (s) | x json.load | CPU (s) | x json.load |")
        print("|---|---|---|---|---|")
        for name, (wall, cpu) in times.items():
            print(f"| {name} | {wall:.2f} | {wall / wall_ref:.2f} | {cpu:.2f} "
                  f"| {cpu / cpu_ref:.2f} |")
        wall, cpu = times["blockident pairs"]
        print(f"ratio blockident pairs / json.load: {wall / wall_ref:.2f} wall clock, "
              f"{cpu / cpu_ref:.2f} CPU (goal <= 1.5)")


if __name__ == "__main__":
    main()
