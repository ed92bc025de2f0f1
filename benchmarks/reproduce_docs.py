"""Regenerate the result tables of README.md and docs/{scenes,numerical,latent,objects,lgssl}.md.

    python benchmarks/reproduce_docs.py [--seeds 0 1 2] [--out runs/reproduce] [--scenes]
        [--numerical] [--numerical-bf16] [--dsprites] [--threedident] [--objects] [--lgssl]
        [--reuse]

Runs, once per seed, the default experiment (``blockident run``, as ``make run`` does) with
``--scenes`` or when no other experiment is named, ``blockident run experiment=numerical`` with
``--numerical`` (and under ``trainer.precision=bf16-mixed`` with ``--numerical-bf16``),
``blockident run experiment=dsprites`` under each pair rule with ``--dsprites``,
``blockident run experiment=3dident`` with ``--threedident``, ``experiment=objects`` under two
loss settings with ``--objects`` and ``experiment=lgssl`` with LG-SimCLR and SimCLR with
``--lgssl``; then rewrites the text between ``<!-- reproduce:NAME -->`` and
``<!-- /reproduce:NAME -->`` with tables built from the runs' ``summary.csv`` and
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
         "oracle": "oracle control (the true latents)",
         "identified_share": "identified share (trained - chance) / (control - chance)"}


def run(seed: int, out: Path, *overrides: str) -> tuple[Path, float]:
    run_dir = out / f"seed{seed}"
    command = [str(Path(sys.executable).parent / "blockident"), "run", *overrides,
               f"seed={seed}", f"run_dir={run_dir}"]
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


def headline(summaries: list[pd.DataFrame], seeds: list[int], command: str,
             encoding: str = "frames", readout: str = "mlp",
             metric: str = "mean balanced accuracy (chance 0.5)") -> str:
    """Rows trained / untrained / control / identified share x a column per kind."""
    runs = pd.concat([s.assign(seed=seed) for s, seed in zip(summaries, seeds, strict=True)])
    runs = runs[(runs.encoding == encoding) & (runs.readout == readout)]
    kinds = [k for k in ("content", "style", "modality") if k in set(runs.kind)]
    counts = {k: runs[runs.kind == k]["factors"] for k in kinds}
    header = " | ".join(f"{k} ({int(counts[k].min())}" + (
        f"-{int(counts[k].max())}" if counts[k].max() != counts[k].min() else "")
        + " factors)" for k in kinds)
    lines = [f"| {metric} | {header} |", "|---|" + "---|" * len(kinds)]
    for role, label in ROLES.items():
        if role in runs:
            cells = [_mean_ci(runs[runs.kind == k][role]) for k in kinds]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    what = f"seed {seeds[0]}" if len(seeds) == 1 else (
        f"seeds {', '.join(map(str, seeds))}: mean ± 95 % t-interval")
    return "\n".join(lines) + f"\n\n`{command}` ({what}; encoding `{encoding}`, readout " \
        f"`{readout}`); readable factors only; `benchmarks/reproduce_docs.py`.\n"


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


LATENT_RULES = {"resample_style": ["data.pairs.rule=resample_style",
                                    "data.pairs.content=[shape,scale]"],
                "grid_steps": ["data.pairs.rule=grid_steps", "data.pairs.content=[]"],
                "grid_steps_l1": ["data.pairs.rule=grid_steps", "data.pairs.content=[]",
                                  "loss.sim=neg_l1", "loss.tau=1.0"]}


READOUT_ROWS = [("mlp", "r2", "R²"), ("mlp", "accuracy", "shape accuracy"),
                ("linear", "r2", "R²"), ("logreg", "accuracy", "shape accuracy")]
WHOLE = [("mcc", "pearson", "MCC (Pearson)"), ("dci", "disentanglement", "DCI disentanglement"),
         ("dci", "completeness", "DCI completeness")]


def latent(summaries: dict[str, dict[int, pd.DataFrame]],
           results: dict[str, list[pd.DataFrame]]) -> str:
    """dSprites per pair rule (its runs' summaries by seed): per readout and kind the trained,
    untrained, control score and identified share over readable factors; then MCC and DCI of
    each encoding. Mean ± 95 % t-interval over the seeds."""
    roles = ["trained", "untrained", "supervised", "identified_share"]
    lines = ["| pair rule (seeds) | readout | kind (factors) | trained | untrained "
             "| supervised control | identified share |", "|---|---|---|---|---|---|---|"]
    for rule, tables in summaries.items():
        runs, seeds = pd.concat(tables.values()), ", ".join(map(str, tables))
        for readout, metric, label in READOUT_ROWS:
            for kind in ("content", "style"):
                rows = runs[(runs.readout == readout) & (runs.metric == metric)
                            & (runs.kind == kind) & (runs.encoding == "images")]
                if len(rows):
                    lines.append(f"| {rule} ({seeds}) | {readout} {label} | {kind} "
                                 f"({int(rows.factors.max())}) | "
                                 + " | ".join(_mean_ci(rows[r]) for r in roles) + " |")
    lines += ["", "| pair rule | encoding | " + " | ".join(w[2] for w in WHOLE) + " |",
              "|---|---|" + "---|" * len(WHOLE)]
    for rule, tables in results.items():
        runs = pd.concat(tables)
        for encoding in ("images", "untrained:images", "supervised:images"):
            t = runs[runs.encoding == encoding]
            cells = [_mean_ci(t[(t.readout == r) & (t.metric == m)].value) for r, m, _ in WHOLE]
            lines.append(f"| {rule} | {encoding} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n`blockident run experiment=dsprites seed=S` with the pair " \
        "rule's overrides; mean ± 95 % t-interval over the seeds where there are several; " \
        "readable factors only; `benchmarks/reproduce_docs.py --dsprites`.\n"


OBJECT_LOSSES = {"global": ["losses=global"], "global_objects": ["losses=global_objects"]}
OBJECT_COLUMNS = [("segmentation", "fg_ari", "FG-ARI"), ("segmentation", "mean_iou", "mIoU"),
                  ("segmentation", "dice", "Dice"),
                  ("object_presence", "average_precision", "presence AP"),
                  ("object_presence", "roc_auc", "presence AUC"),
                  ("object_color", "accuracy", "object colour acc."),
                  ("object_shape", "accuracy", "object shape acc."),
                  ("object_x", "r2", "object x R²")]


def objects(results: dict[str, list[pd.DataFrame]], summaries: dict[str, list[pd.DataFrame]],
            seeds: dict[str, list[int]]) -> str:
    """Object-level rows of the ``objects`` runs per loss setting (their results by seed):
    trained and untrained slots (segmentation, presence probe, matched-slot attributes with
    their majority chance), then per setting the scene-level :func:`headline` of the runs'
    summaries (trained, untrained, supervised control, identified share)."""
    lines = ["| losses (seeds) | encoding | " + " | ".join(c[2] for c in OBJECT_COLUMNS) + " |",
             "|---|---|" + "---|" * len(OBJECT_COLUMNS)]
    for setting, tables in results.items():
        runs = pd.concat(tables)
        for encoding in ("slots", "untrained:slots"):
            t = runs[(runs.encoding == encoding) & (runs.readout != "majority")]
            cells = [_mean_ci(t[(t.factor == f) & (t.metric == m)].value)
                     for f, m, _ in OBJECT_COLUMNS]
            lines.append(f"| {setting} ({len(tables)}) | {encoding} | " + " | ".join(cells)
                         + " |")
        chance = runs[(runs.encoding == "slots") & (runs.readout == "majority")]
        cells = [_mean_ci(chance[(chance.factor == f) & (chance.metric == m)].value)
                 if f.startswith("object_") and m == "accuracy" else "" for f, m, _ in
                 OBJECT_COLUMNS]
        lines.append(f"| {setting} | chance (majority class) | " + " | ".join(cells) + " |")
    lines += ["", "Chance: FG-ARI about 0 (a random partition), presence AUC 0.5, presence AP "
              "the labels' prevalence, R² 0, accuracies the majority rows. No positive control "
              "exists for these slot rows.", ""]
    for setting, summary in summaries.items():
        lines += [f"Scene level, `losses={setting}`: the 96 presence labels read from the "
                  "global encoding `image`, beside the supervised control:", "",
                  headline(summary, seeds[setting],
                           f"blockident run experiment=objects losses={setting} seed=S",
                           "image", "mlp")]
    return "\n".join(lines) + "\n`blockident run experiment=objects losses=L seed=S`; " \
        "mean ± 95 % t-interval over the seeds where there are several; " \
        "`benchmarks/reproduce_docs.py --objects`.\n"


LGSSL_METHODS = {"lg_simclr": [], "simclr": ["method=simclr", "readout.control=none",
                                               "readout.baseline=false"]}
LGSSL_ROWS = [("linear_probe", "top1"), ("fewshot_5w5s", "top1"), ("logreg", "accuracy"),
              ("linear", "r2")]
LGSSL_CHANCE = {"top1": "1/classes", "accuracy": "1/classes", "r2": "0"}


def pair_agreement(run_dirs: list[Path], factors_file: Path) -> str:
    """Share of the runs' caption pairs (``caption_pairs.json``) whose two instances have the same
    value of each categorical factor of the stand-in (``factors.json``), mean over runs."""
    import json
    meta = json.loads(factors_file.read_text())
    index = {tuple(key): i for i, key in enumerate(meta["keys"])}
    values = np.asarray(meta["values"])
    names = [n for n, f in meta["factors"].items() if f["type"] == "categorical"]
    columns = [list(meta["factors"]).index(n) for n in names]
    shares = []
    for run_dir in run_dirs:
        pairs = json.loads((run_dir / "caption_pairs.json").read_text())
        a = values[[index[tuple(p[0])] for p in pairs]][:, columns]
        b = values[[index[tuple(p[1])] for p in pairs]][:, columns]
        shares.append((a == b).mean(0))
    mentioned = {n: meta["factors"][n]["mentioned"] for n in names}
    return "; ".join(f"{n} ({'mentioned' if mentioned[n] else 'not mentioned'}, chance "
                     f"{1 / len(meta['factors'][n]['classes']):.1%}) {s:.1%}"
                     for n, s in zip(names, np.mean(shares, 0), strict=True))


def lgssl(results: dict[str, list[pd.DataFrame]]) -> str:
    """Per factor and readout: LG-SimCLR, SimCLR, untrained and supervised control (the last two
    from the LG-SimCLR runs, whose seeds they share), mean ± 95 % t-interval over seeds."""
    lg = pd.concat(results["lg_simclr"])
    simclr = pd.concat(results["simclr"]) if results.get("simclr") else lg.iloc[:0]
    columns = [("LG-SimCLR", lg, "images"), ("SimCLR", simclr, "images"),
               ("untrained", lg, "untrained:images"),
               ("supervised control", lg, "supervised:images")]
    lines = ["| factor (kind) | readout, metric | " + " | ".join(c[0] for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    factors = lg[lg.encoding == "images"].drop_duplicates("factor")[["factor", "kind"]]
    factors = factors.sort_values("kind", kind="stable")  # content before style
    for factor, kind in factors.itertuples(index=False):
        for readout, metric in LGSSL_ROWS:
            cells = [t[(t.encoding == e) & (t.factor == factor) & (t.readout == readout)
                       & (t.metric == metric)].value for _, t, e in columns]
            if any(len(c) for c in cells):
                lines.append(f"| {factor} ({kind}) | {readout}, {metric} | "
                             + " | ".join(_mean_ci(c) if len(c) else "" for c in cells)
                             + " |")
    seeds = {n: len(t) for n, t in results.items()}
    return "\n".join(lines) + (
        f"\n\n`blockident run experiment=lgssl seed=S` (LG-SimCLR, {seeds['lg_simclr']} seeds; "
        "its untrained encoder and supervised control) and `blockident run experiment=lgssl "
        f"method=simclr readout.control=none readout.baseline=false seed=S` (SimCLR, "
        f"{seeds.get('simclr', 0)} seeds); readout-test split; mean ± 95 % t-interval over the "
        "seeds; chance: accuracies 1/classes (1/6 for colour, 1/5 for the others), R² 0; "
        "`benchmarks/reproduce_docs.py --lgssl`.\n")


def replace_block(path: Path, name: str, text: str) -> None:
    pattern = re.compile(rf"(<!-- reproduce:{name} -->\n).*?(<!-- /reproduce:{name} -->)", re.S)
    old = path.read_text()
    if not pattern.search(old):
        raise SystemExit(f"{path}: no <!-- reproduce:{name} --> block")
    path.write_text(pattern.sub(lambda m: m.group(1) + text + m.group(2), old))


def _runs(seeds: list[int], out: Path, reuse: bool, *overrides: str,
          existing: bool = False) -> list[Path]:
    """Run dirs of ``seeds``; with ``existing`` only those already run (none is started)."""
    done = [seed for seed in seeds if (out / f"seed{seed}" / "summary.csv").exists()]
    if existing:
        return [out / f"seed{seed}" for seed in done]
    for seed in seeds:
        if not (reuse and seed in done):
            print(f"seed {seed}: blockident run took {run(seed, out, *overrides)[1]:.0f} s")
    return [out / f"seed{seed}" for seed in seeds]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "reproduce")
    parser.add_argument("--scenes", action="store_true",
                        help="run and document the default experiment (the default when no "
                             "other experiment is named)")
    parser.add_argument("--numerical", action="store_true",
                        help="also run and document the numerical experiment")
    parser.add_argument("--numerical-bf16", action="store_true",
                        help="also run and document the numerical experiment under "
                             "trainer.precision=bf16-mixed")
    parser.add_argument("--dsprites", action="store_true",
                        help="also run and document dsprites under each pair rule")
    parser.add_argument("--threedident", action="store_true",
                        help="also run and document 3dident")
    parser.add_argument("--objects", action="store_true",
                        help="also run and document objects, global vs global + object losses")
    parser.add_argument("--lgssl", action="store_true",
                        help="also run and document lgssl, LG-SimCLR vs SimCLR")
    parser.add_argument("--reuse", action="store_true",
                        help="use runs already in --out instead of running them again")
    parser.add_argument("--existing", action="store_true",
                        help="tabulate only the seeds already run, start none")
    args = parser.parse_args(argv)
    if args.scenes or not (args.numerical or args.numerical_bf16 or args.dsprites
                           or args.threedident or args.objects or args.lgssl):
        dirs = _runs(args.seeds, args.out / "scenes", args.reuse)
        table = headline([pd.read_csv(d / "summary.csv") for d in dirs], args.seeds,
                         "blockident run seed=S")
        print(table)
        for path in (ROOT / "README.md", ROOT / "docs" / "scenes.md"):
            replace_block(path, "headline", table)
        replace_block(ROOT / "docs" / "scenes.md", "categories",
                      categories([pd.read_csv(d / "results.csv") for d in dirs], args.seeds))
    if args.dsprites:
        summaries, results = {}, {}
        for rule, overrides in LATENT_RULES.items():
            dirs = _runs(args.seeds, args.out / f"dsprites_{rule}", args.reuse,
                         "experiment=dsprites", *overrides, existing=args.existing)
            if dirs:
                summaries[rule] = {int(d.name[4:]): pd.read_csv(d / "summary.csv") for d in dirs}
                results[rule] = [pd.read_csv(d / "results.csv") for d in dirs]
        table = latent(summaries, results)
        print(table)
        replace_block(ROOT / "docs" / "latent.md", "dsprites", table)
    if args.threedident:
        dirs = _runs(args.seeds, args.out / "3dident", args.reuse, "experiment=3dident")
        table = headline([pd.read_csv(d / "summary.csv") for d in dirs], args.seeds,
                         "blockident run experiment=3dident seed=S", "images", "linear",
                         "mean R² (chance 0)")
        print(table)
        replace_block(ROOT / "docs" / "latent.md", "3dident", table)
    if args.objects:
        results, summaries, seeds = {}, {}, {}
        for setting, overrides in OBJECT_LOSSES.items():
            dirs = _runs(args.seeds, args.out / f"objects_{setting}", args.reuse,
                         "experiment=objects", *overrides, existing=args.existing)
            results[setting] = [pd.read_csv(d / "results.csv").assign(seed=d.name)
                                for d in dirs]
            summaries[setting] = [pd.read_csv(d / "summary.csv") for d in dirs]
            seeds[setting] = [int(d.name[4:]) for d in dirs]
        table = objects(results, summaries, seeds)
        print(table)
        replace_block(ROOT / "docs" / "objects.md", "objects", table)
    if args.lgssl:
        dirs = {method: _runs(args.seeds, args.out / f"lgssl_{method}", args.reuse,
                              "experiment=lgssl", *overrides, existing=args.existing)
                for method, overrides in LGSSL_METHODS.items()}
        table = lgssl({m: [pd.read_csv(d / "results.csv") for d in ds] for m, ds in dirs.items()})
        table += ("\nCaption pairs of the LG-SimCLR runs with the same value, per factor: "
                  + pair_agreement(dirs["lg_simclr"], ROOT / "data" / "generated" / "captions"
                                   / "factors.json") + ".\n")
        print(table)
        replace_block(ROOT / "docs" / "lgssl.md", "lgssl", table)
    # docs/numerical.md block -> (run folder, overrides): float32 and bf16-mixed
    numerical = {"headline": ("numerical", ()), "bf16": ("numerical_bf16",
                                                        ("trainer.precision=bf16-mixed",))}
    for block, (folder, extra) in numerical.items():
        if not (args.numerical if block == "headline" else args.numerical_bf16):
            continue
        overrides = ("experiment=numerical", *extra)
        dirs = _runs(args.seeds, args.out / folder, args.reuse, *overrides)
        table = headline([pd.read_csv(d / "summary.csv") for d in dirs], args.seeds,
                         f"blockident run {' '.join(overrides)} seed=S", "view1",
                         "kernel_ridge", "mean R² (chance 0)")
        print(table)
        replace_block(ROOT / "docs" / "numerical.md", block, table)


if __name__ == "__main__":
    main()
