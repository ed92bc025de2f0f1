"""Conversion speed of CLEVR-with-masks TFRecords into the uint8 cache, in scenes per second.

    python benchmarks/clevr_convert.py [--scenes N] [--path FILE] [--size 64]

Without ``--path`` it first generates N stand-in scenes (``blockident prepare clevr``) into a
temporary folder; the timing covers the conversion only (GZIP inflate, record checks, Example
parsing, crop and resize, writing the cache).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from blockident.data.clevr.format import convert, find_file
from blockident.data.clevr.generate import generate_clevr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=1000, help="stand-in scenes to generate")
    parser.add_argument("--path", type=Path, default=None, help="an existing .tfrecords file")
    parser.add_argument("--size", type=int, default=64, help="cached image side")
    parser.add_argument("--repeat", type=int, default=3, help="conversions timed (best shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.path is None:
            start = time.perf_counter()
            file = generate_clevr(Path(tmp) / "data", args.scenes, seed=0)
            print(f"generated {args.scenes} scenes in {time.perf_counter() - start:.1f} s "
                  f"({file.stat().st_size / 1e6:.0f} MB)")
        else:
            file = find_file(args.path)
        times = []
        for i in range(args.repeat):
            start = time.perf_counter()
            doc = convert(file, Path(tmp) / "cache" / f"run{i}", args.size)
            times.append(time.perf_counter() - start)
        n = doc["scenes"]
        print(f"converted {n} scenes to {args.size}x{args.size} px: best {min(times):.2f} s = "
              f"{n / min(times):.0f} scenes/s (runs: {', '.join(f'{t:.2f}' for t in times)} s; "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
