"""``blockident pairs captions ROOT``: caption-neighbour pairs of a RedCaps-layout folder.

Reads ROOT (:mod:`blockident.data.captions.format`), embeds the captions, finds every instance's
nearest captions within the scope, prints statistics (cosine histogram, share of identical
captions) and writes ``caption_pairs.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from blockident.data.captions.format import CACHE, read_captions
from blockident.pairs.captions import DEFAULT_MODEL, PAIRS_FILE, SCOPES, caption_pairs, statistics


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="blockident pairs captions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, help="ROOT/<directory>/<instance>.jpg + .json")
    p.add_argument("--k", type=int, default=1, help="neighbours per instance (default 1)")
    p.add_argument("--scope", choices=SCOPES, default="global")
    p.add_argument("--threshold", type=float, default=None, help="minimum cosine")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"sentence-transformers model folder (default {DEFAULT_MODEL})")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default=None,
                   help="search in torch on this device (cuda, cpu) instead of faiss")
    p.add_argument("--skip-bad", action="store_true", help="skip bad instances, count them")
    p.add_argument("--out", type=Path, default=Path(PAIRS_FILE))
    args = p.parse_args(argv)
    start = time.perf_counter()
    data = read_captions(args.root, args.skip_bad)
    pairs = caption_pairs(data.captions, data.directories, model=args.model, k=args.k,
                          scope=args.scope, threshold=args.threshold,
                          cache_dir=args.root / CACHE.parent, batch_size=args.batch_size,
                          device=args.device)
    print(f"{len(data)} instances in {args.root}"
          + (f" ({data.skipped} bad ones skipped)" if data.skipped else "")
          + f"; scope {args.scope}, k={args.k} ({time.perf_counter() - start:.1f} s)")
    print(statistics(pairs, data.captions))
    pairs.save(args.out, data.keys)
    print(f"wrote {int((pairs.neighbours >= 0).sum())} pairs to {args.out}")
    return 0
