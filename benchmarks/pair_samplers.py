"""Pair search speed: 1M anchors on the full dSprites grid, and nearest-rendered on 3DIdent size.

    python benchmarks/pair_samplers.py [--anchors 1000000]

The full dSprites grid (737,280 samples; 1 x 3 x 6 x 40 x 32 x 32) as a factor table (no
images), and 250,000 uniform 10-d latents as 3DIdent's; prints seconds per sampler.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from blockident.data.factors import FactorDataset
from blockident.pairs.samplers import GridSteps, NearestRendered, ResampleStyle

DSPRITES = {"color": [1.0], "shape": [1.0, 2.0, 3.0], "scale": np.linspace(0.5, 1, 6),
            "orientation": np.linspace(0, 2 * np.pi, 40), "posX": np.linspace(0, 1, 32),
            "posY": np.linspace(0, 1, 32)}


def dsprites_grid() -> FactorDataset:
    grids = {k: np.asarray(v, dtype=float) for k, v in DSPRITES.items()}
    index = np.indices([len(g) for g in grids.values()]).reshape(len(grids), -1).T
    values = np.stack([g[index[:, j]] for j, g in enumerate(grids.values())], 1)
    return FactorDataset(tuple(grids), values, lambda idx: None, grids=grids,
                         categorical=frozenset({"shape"}), periodic={"orientation": 2 * np.pi})


def timed(name: str, sampler, data: FactorDataset, anchors: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    partner = sampler(data, anchors, rng)
    first = time.perf_counter() - start
    start = time.perf_counter()
    sampler(data, anchors, rng)
    again = time.perf_counter() - start
    print(f"{name:<40} {len(anchors):>9,} anchors  first call {first:6.2f} s  "
          f"next call {again:6.2f} s  found {np.mean(partner >= 0):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchors", type=int, default=1_000_000)
    args = parser.parse_args()
    data = dsprites_grid()
    anchors = np.random.default_rng(1).integers(0, len(data), args.anchors)
    timed("dSprites grid steps (content shape, scale)", GridSteps(["shape", "scale"]), data,
          anchors)
    timed("dSprites resample style (content shape)", ResampleStyle(["shape"]), data, anchors)
    latents = np.random.default_rng(2).uniform(-1, 1, (250_000, 10))
    ident = FactorDataset(tuple(f"z{i}" for i in range(10)), latents, lambda idx: None)
    timed("3DIdent nearest rendered (content z0-z4)", NearestRendered([f"z{i}" for i in range(5)]),
          ident, np.random.default_rng(3).integers(0, len(ident), args.anchors))


if __name__ == "__main__":
    main()
