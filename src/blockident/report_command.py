"""``blockident report RUN_DIR [RUN_DIR ...]``: figures and kind means comparing runs.

Writes ``categories.png`` (the metric per category, content | style), ``boxes.png`` (its
spread per run, encoding and readout) and ``summary.csv`` (means per kind) into ``--out``.
With ``--html``: the HTML page of one run (``RUN_DIR/report.html``), of a sweep folder
(``SWEEP_DIR/report.html`` and its ``summary.csv``) or of several runs (``--html OUT.html``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from blockident.io import atomic_write
from blockident.report import ReportError, kind_means, plot_boxes, plot_categories, read_results
from blockident.report_html import REPORT, write_run_report, write_sweep_report
from blockident.sweep import differences, find_runs, write_summary


def run_label(run_dir: Path) -> str:
    """``info.name/DIRECTORY`` from the run's ``config.yaml``, or the directory name alone."""
    config = run_dir / "config.yaml"
    name = OmegaConf.select(OmegaConf.load(config), "info.name") if config.is_file() else None
    return f"{name}/{run_dir.name}" if name else run_dir.name


def _labels(run_dirs: list[Path], given: list[str] | None) -> list[str]:
    """``given``, else the config keys that differ between the runs (``key=value, ...``), else
    :func:`run_label`, else the paths: the first of them that tells every run apart."""
    if given is not None:
        if len(given) != len(run_dirs) or len(set(given)) != len(given):
            raise ReportError(f"--labels needs {len(run_dirs)} distinct labels, got {given}")
        return given
    diffs, _ = differences(run_dirs)
    keys = sorted((k for k in diffs.columns if k not in ("run", "group")),
                  key=lambda k: k == "seed")  # the seed last
    candidates = [[run_label(d) for d in run_dirs], [str(d) for d in run_dirs]]
    if keys:
        candidates.insert(0, [", ".join(f"{k}={row[k]}" for k in keys)
                              for _, row in diffs.iterrows()])
    return next((c for c in candidates if len(set(c)) == len(c)), candidates[-1])


def _select(table: pd.DataFrame, path: Path, metric: str, readout: str | None) -> pd.DataFrame:
    """The rows of ``metric`` and the test positives (of ``readout``), or an error listing
    what the table has."""
    if not (table.metric == metric).any():
        raise ReportError(f"{path} has no {metric!r} rows (metrics: "
                          f"{', '.join(map(str, table.metric.unique()))})")
    part = table[table.metric.isin([metric, "positives"])]
    if readout is not None:
        readouts = part.readout.unique()
        part = part[part.readout == readout]
        if part.empty:
            raise ReportError(f"{path} has no readout {readout!r} (readouts: "
                              f"{', '.join(map(str, readouts))})")
    return part


def report(run_dirs: list[Path], out: Path, metric: str = "balanced_accuracy",
           readout: str | None = None, labels: list[str] | None = None
           ) -> tuple[pd.DataFrame, list[Path]]:
    """Write the figures and ``summary.csv`` into ``out``; return the kind means and the paths.

    Raises :class:`ReportError` for a missing or malformed ``results.csv``, or when a run has
    no rows of ``metric`` (or ``readout``).
    """
    tables = {label: _select(read_results(d), d / "results.csv", metric, readout)
              for label, d in zip(_labels(run_dirs, labels), run_dirs, strict=True)}
    means = pd.concat({label: kind_means(t, metric) for label, t in tables.items()},
                      names=["run"])
    summary = out / "summary.csv"
    atomic_write(summary, lambda tmp: means.to_csv(tmp))
    paths = [plot_categories(tables, out / "categories.png", metric),
             plot_boxes(tables, out / "boxes.png", metric), summary]
    return means, paths


def _html(paths: list[Path], out: Path | None, folder: Path | None) -> int:
    """The run page of one run, else the comparison page (a sweep folder also gets its
    ``summary.csv``)."""
    if len(paths) == 1 and (paths[0] / "results.csv").is_file() and out is None:
        written = [write_run_report(paths[0])]
    else:
        runs = find_runs(paths)
        sweep = len(paths) == 1 and paths[0] not in runs
        default = paths[0] if sweep else folder or Path("report")
        written = [write_sweep_report(runs, out or default / REPORT)]
        if sweep:
            write_summary(runs, paths[0] / "summary.csv")
            written.append(paths[0] / "summary.csv")
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="blockident report", description="Per-category figures and means per kind of runs.")
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="run directories (or any folder with a results.csv)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the run directory, or ./report for several)")
    parser.add_argument("--metric", default="balanced_accuracy", help="a results.csv metric")
    parser.add_argument("--readout", default=None, help="only this readout (e.g. logreg)")
    parser.add_argument("--labels", nargs="+", default=None,
                        help="one label per run (default: the config keys that differ)")
    parser.add_argument("--html", nargs="?", const="", default=None, metavar="OUT.html",
                        help="write the HTML report (default: report.html in the run or sweep "
                        "folder, or in --out)")
    args = parser.parse_args(argv)
    if args.html is not None:
        return _html(args.run_dirs, Path(args.html) if args.html else None, args.out)
    out = args.out or (args.run_dirs[0] if len(args.run_dirs) == 1 else Path("report"))
    means, paths = report(args.run_dirs, out, args.metric, args.readout, args.labels)
    print(f"mean {args.metric} per kind:\n{means.round(3).to_string()}\n")
    for path in paths:
        print(f"wrote {path}")
    return 0
