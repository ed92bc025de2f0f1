"""Time the language-guided pieces: caption embedding, exact kNN, the probe sweep, few-shot.

    .venv/bin/python benchmarks/lgssl.py [--only embed knn probe fewshot]

- ``embed``: ``--captions`` generated captions (the stand-in's templates) through the offline
  all-MiniLM-L6-v2 (:func:`blockident.pairs.captions.embed_captions`, no cache), captions/s.
- ``knn``: exact top-1 neighbours (faiss ``IndexFlatIP``) of every one of ``--knn-n`` random
  unit vectors (384-d, the model's width) among themselves, with the pair rule's self-exclusion
  (:func:`nearest_captions`, scope ``global``); and ``--queries`` queries against an index of
  ``--index-n`` vectors (the cost of one scope of that size, per query).
- ``probe``: :class:`LinearProbe` (L-BFGS, 7 coarse + 4 fine penalties on a stratified
  validation split, then the refit) on ``--probe-n`` x 512 features of 10 Gaussian classes.
- ``fewshot``: :class:`FewShot` 5-way 5-shot, 15 queries, 1,000 episodes on the same features.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def embed(n: int) -> str:
    from blockident.data.captions.generate import COLOURS, SHAPES, TEMPLATES
    from blockident.pairs.captions import embed_captions

    rng = np.random.default_rng(0)
    captions = [TEMPLATES[t].format(c=list(COLOURS)[c], s=SHAPES[s]) + f" #{i}"  # all distinct
                for i, (t, c, s) in enumerate(rng.integers([len(TEMPLATES), len(COLOURS),
                                                            len(SHAPES)], size=(n, 3)))]
    embed_captions(captions[:64])  # load the model once before timing
    started = time.perf_counter()
    embeddings, _ = embed_captions(captions)
    seconds = time.perf_counter() - started
    return (f"embed: {n} captions -> {embeddings.shape} in {seconds:.1f} s "
            f"({n / seconds:.0f} captions/s)")


def knn(n: int, index_n: int, queries: int) -> str:
    import faiss

    from blockident.pairs.captions import nearest_captions

    x = _unit(n, 384, 0)
    started = time.perf_counter()
    nearest_captions(x, np.zeros(n, np.int64), k=1)
    all_pairs = time.perf_counter() - started
    base = _unit(index_n, 384, 1)
    index = faiss.IndexFlatIP(384)
    index.add(base)
    started = time.perf_counter()
    index.search(base[:queries], 2)
    searched = time.perf_counter() - started
    return (f"knn: all {n} x {n} (top-1, self excluded) in {all_pairs:.1f} s; "
            f"{queries} queries against {index_n} in {searched:.1f} s "
            f"({queries / searched:.0f} queries/s)")


def _classes(n: int, d: int = 512, classes: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(classes, size=n)
    centres = rng.standard_normal((classes, d)) * 0.15
    return (centres[y] + rng.standard_normal((n, d))).astype(np.float32), y


def probe(n: int) -> str:
    from blockident.readouts.probes import LinearProbe

    x, y = _classes(2 * n)
    started = time.perf_counter()
    scores = LinearProbe()(x[:n], y[:n], x[n:], y[n:])
    seconds = time.perf_counter() - started
    return (f"probe: {n} x 512, 10 classes, sweep + refit in {seconds:.1f} s "
            f"(top-1 {scores['top1']:.3f})")


def fewshot(n: int) -> str:
    from blockident.readouts.probes import FewShot

    x, y = _classes(n, classes=20)
    started = time.perf_counter()
    scores = FewShot(episodes=1000)(None, None, x, y)
    seconds = time.perf_counter() - started
    return (f"fewshot: 1000 episodes 5-way 5-shot on {n} x 512 in {seconds:.2f} s "
            f"(top-1 {scores['top1']:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=["embed", "knn", "probe", "fewshot"])
    parser.add_argument("--captions", type=int, default=10_000)
    parser.add_argument("--knn-n", type=int, default=100_000)
    parser.add_argument("--index-n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--probe-n", type=int, default=10_000)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    runs = {"embed": lambda: embed(args.captions),
            "knn": lambda: knn(args.knn_n, args.index_n, args.queries),
            "probe": lambda: probe(args.probe_n), "fewshot": lambda: fewshot(args.probe_n)}
    for name in args.only:
        print(runs[name](), flush=True)


if __name__ == "__main__":
    main()
