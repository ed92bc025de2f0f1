"""Regenerate the result tables of README.md and docs/scenes.md from fresh runs.

    python benchmarks/reproduce_docs.py [--seeds 0 1 2] [--out runs/reproduce]

Runs the default experiment (``blockident run``, as ``make run`` does) once per seed, then
rewrites the text between ``<!-- reproduce:NAME -->`` and ``<!-- /reproduce:NAME -->`` in
README.md and docs/scenes.md with tables built from the runs' ``summary.csv`` and
``results.csv``, each saying which command and seeds produced it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
ROLES = {"trained": "trained encoder", "untrained": "untrained (same network, step 0)",
         "supervised": "supervised control (same network trained on the labels)",
         "identified_share": "identified share (trained - chance) / (control - chance)"}


def run(seed: int, out: Path) -> tuple[Path, float]:
    run_dir = out / f"seed{seed}"
    command = [str(Path(sys.executable).parent / "blockident"), "run", f"seed={seed}",
               f"run_dir={run_dir}"]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return run_dir, time.perf_counter() - start


def _mean_ci(values: pd.Series) -> str:
    values = values.dropna()
    if len(values) < 2:
        return f"{values.mean():.3f}"
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return f"{values.mean():.3f} ± {half:.3f}"


def headline(summaries: list[pd.DataFrame], seeds: list[int]) -> str:
    """Rows trained / untrained / control / identified share x columns content / style."""
    runs = pd.concat([s.assign(seed=seed) for s, seed in zip(summaries, seeds, strict=True)])
    runs = runs[(runs.encoding == "frames") & (runs.readout == "mlp")]
    kinds = [k for k in ("content", "style") if k in set(runs.kind)]
    counts = {k: runs[runs.kind == k]["factors"] for k in kinds}
    header = " | ".join(f"{k} ({int(counts[k].min())}" + (
        f"-{int(counts[k].max())}" if counts[k].max() != counts[k].min() else "")
        + " categories)" for k in kinds)
    lines = [f"| mean balanced accuracy (chance 0.5) | {header} |",
             "|---|" + "---|" * len(kinds)]
    for role, label in ROLES.items():
        cells = [_mean_ci(runs[runs.kind == k][role]) for k in kinds]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    what = f"seed {seeds[0]}" if len(seeds) == 1 else (
        f"seeds {', '.join(map(str, seeds))}: mean ± 95 % t-interval")
    return "\n".join(lines) + f"\n\n`blockident run seed=S` ({what}); " \
        "readable categories only (control at least 0.6), `benchmarks/reproduce_docs.py`.\n"


def categories(tables: list[pd.DataFrame], seeds: list[int]) -> str:
    """Per category: trained, untrained, control balanced accuracy and test positives (means
    over seeds)."""
    runs = pd.concat([t.assign(seed=s) for t, s in zip(tables, seeds, strict=True)])
    runs = runs[runs.readout == "mlp"]
    value = runs[runs.metric == "balanced_accuracy"].pivot_table(
        index=["kind", "factor"], columns="encoding", values="value", aggfunc="mean", sort=False)
    positives = runs[(runs.metric == "positives") & (runs.encoding == "frames")].groupby(
        ["kind", "factor"], sort=False)["value"].mean()
    share = runs[runs.metric == "identified_share"].groupby(["kind", "factor"], sort=False)[
        "value"].mean()
    lines = ["| kind | category | trained | untrained | supervised control | identified share "
             "| test positives |", "|---|---|---|---|---|---|---|"]
    for (kind, factor), row in value.iterrows():
        cells = [row.get(e, np.nan) for e in ("frames", "untrained:frames", "supervised:frames")]
        lines.append(f"| {kind} | {factor} | " + " | ".join(f"{c:.3f}" for c in cells)
                     + f" | {share.get((kind, factor), np.nan):.2f}"
                     + f" | {positives.get((kind, factor), np.nan):.0f} |")
    return "\n".join(lines) + "\n"


def replace_block(path: Path, name: str, text: str) -> None:
    pattern = re.compile(rf"(<!-- reproduce:{name} -->\n).*?(<!-- /reproduce:{name} -->)", re.S)
    old = path.read_text()
    if not pattern.search(old):
        raise SystemExit(f"{path}: no <!-- reproduce:{name} --> block")
    path.write_text(pattern.sub(lambda m: m.group(1) + text + m.group(2), old))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "reproduce")
    parser.add_argument("--reuse", action="store_true",
                        help="use runs already in --out instead of running them again")
    args = parser.parse_args(argv)
    walls = {}
    for seed in args.seeds:
        if not (args.reuse and (args.out / f"seed{seed}" / "summary.csv").exists()):
            walls[seed] = run(seed, args.out)[1]
    dirs = [args.out / f"seed{seed}" for seed in args.seeds]
    summaries = [pd.read_csv(d / "summary.csv") for d in dirs]
    tables = [pd.read_csv(d / "results.csv") for d in dirs]
    table = headline(summaries, args.seeds)
    print(table)
    for path in (ROOT / "README.md", ROOT / "docs" / "scenes.md"):
        replace_block(path, "headline", table)
    replace_block(ROOT / "docs" / "scenes.md", "categories", categories(tables, args.seeds))
    for seed, wall in walls.items():
        print(f"seed {seed}: blockident run took {wall:.0f} s")


if __name__ == "__main__":
    main()
