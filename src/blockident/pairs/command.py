"""``blockident pairs DATA_DIR ...``: content/style pairs from BURST annotations
(``blockident pairs captions ROOT ...``: caption neighbours, :mod:`.captions_command`).

Reads the split files and ``categories.json`` in DATA_DIR, chooses content and style
categories, assigns whole videos to the strata encoder_train, readout_train, readout_test and
held_out, pairs frames with the same content categories within each stratum, prints the
statistics and writes every stratum's pairs as CSV (``stratum,image1,image2,sequence1,
sequence2,content,style1,style2``; image paths relative to the images root).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from blockident.data.burst import images_root_message, read_burst
from blockident.errors import DataError, warn
from blockident.io import atomic_write
from blockident.pairs import stats
from blockident.pairs.categories import PairConfig, build_pairs
from blockident.pairs.strata import DEFAULT_WEIGHTS, STRATA


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blockident pairs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", type=Path, help="folder with train/val/test.json, categories.json")
    p.add_argument("--k", type=int, default=20, help="content = the k most frequent categories")
    p.add_argument("--n", type=int, nargs="+", default=[1],
                   help="allowed numbers of content categories per frame (default: 1)")
    p.add_argument("--leq-n", action="store_true", help="allow 1..max(n)")
    p.add_argument("--count-instances", action="store_true",
                   help="count content instances instead of categories (pairs share the multiset)")
    p.add_argument("--content", type=int, nargs="+", metavar="ID",
                   help="explicit content category ids (with --style, instead of --k)")
    p.add_argument("--style", type=int, nargs="+", metavar="ID", help="explicit style ids")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--same-sequence", choices=("allow", "forbid"), default="allow",
                   help="may both frames of a pair come from one video (default: allow)")
    p.add_argument("--weights", type=float, nargs=len(STRATA), default=list(DEFAULT_WEIGHTS),
                   metavar="W", help=f"strata weights for {', '.join(STRATA)} (default 3 1 1 1)")
    p.add_argument("--out", type=Path, default=Path("pairs.csv"), help="CSV file (pairs.csv)")
    p.add_argument("--plots", type=Path, metavar="DIR", help="write the four figures here")
    return p


def main(argv: list[str]) -> int:
    if argv and argv[0] == "captions":
        from blockident.pairs import captions_command

        return captions_command.main(argv[1:])
    args = parser().parse_args(argv)
    config = PairConfig(
        k=args.k, n=tuple(args.n), leq_n=args.leq_n, count_instances=args.count_instances,
        content_categories=args.content, style_categories=args.style, seed=args.seed,
        same_sequence=args.same_sequence, strata_weights=tuple(args.weights))
    start = time.perf_counter()
    annotations = read_burst(args.data_dir)
    read_s = time.perf_counter() - start
    print(f"read {annotations.n_sequences} sequences, {annotations.n_frames} annotated frames, "
          f"{int(annotations.count.sum())} masks ({read_s:.2f} s)")
    if annotations.missing_splits:
        warn(f"no split file for {', '.join(annotations.missing_splits)}")
    if annotations.unknown_categories:
        found = "; ".join(f"{c} (first in {where})"
                          for c, where in annotations.unknown_categories.items())
        warn(f"category ids absent from categories.json: {found}")
    if annotations.images_root is None:
        warn(images_root_message(args.data_dir))
    else:
        print(f"images root: {annotations.images_root}")
    start = time.perf_counter()
    pairs = build_pairs(annotations, config)
    print(f"built the configuration and sampled all strata ({time.perf_counter() - start:.2f} s)")
    print(stats.report(pairs))
    table = pairs.table()
    if table.empty:
        raise DataError(f"{args.data_dir}: no pairs; allow more frames with a larger --k, "
                        "more content counts (--n 1 2, --leq-n) or --same-sequence allow")
    for stratum in sorted(set(STRATA) - set(table.stratum.unique())):
        warn(f"no pairs in stratum {stratum}")
    atomic_write(args.out, lambda tmp: table.to_csv(tmp, index=False))
    print(f"wrote {len(table)} pairs to {args.out}")
    if args.plots is not None:
        paths = stats.plot(pairs, args.plots)
        print(f"wrote {len(paths)} figures to {args.plots}")
    return 0
