"""``blockident report RUN_DIR [RUN_DIR ...]``: figures and kind means comparing runs.

Writes ``categories.png`` (the metric per category, content | style), ``boxes.png`` (its
spread per run, encoding and readout) and ``summary.csv`` (means per kind) into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from blockident.errors import UserError
from blockident.io import atomic_write
from blockident.report import COLUMNS, kind_means, plot_boxes, plot_categories


class ReportError(UserError):
    """A run that cannot be reported; the message names it."""


def read_results(run_dir: Path) -> pd.DataFrame:
    """The ``results.csv`` of ``run_dir``, checked for the expected columns."""
    path = run_dir / "results.csv"
    if not path.is_file():
        raise ReportError(f"no results table: {path} does not exist")
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
        raise ReportError(f"{path} is not a results table: {error}") from error
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ReportError(f"{path} lacks the columns {missing} (has {list(table.columns)})")
    return table


def run_label(run_dir: Path) -> str:
    """``info.name/DIRECTORY`` from the run's ``config.yaml``, or the directory name alone."""
    config = run_dir / "config.yaml"
    name = OmegaConf.select(OmegaConf.load(config), "info.name") if config.is_file() else None
    return f"{name}/{run_dir.name}" if name else run_dir.name


def _labels(run_dirs: list[Path], given: list[str] | None) -> list[str]:
    if given is not None:
        if len(given) != len(run_dirs) or len(set(given)) != len(given):
            raise ReportError(f"--labels needs {len(run_dirs)} distinct labels, got {given}")
        return given
    labels = [run_label(d) for d in run_dirs]
    return labels if len(set(labels)) == len(labels) else [str(d) for d in run_dirs]


def _select(table: pd.DataFrame, path: Path, metric: str, readout: str | None) -> pd.DataFrame:
    """The rows of ``metric`` (and ``readout``), or an error listing what the table has."""
    part = table[table.metric == metric]
    if part.empty:
        raise ReportError(f"{path} has no {metric!r} rows (metrics: "
                          f"{', '.join(map(str, table.metric.unique()))})")
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
                        help="one label per run (default: info.name/DIRECTORY)")
    args = parser.parse_args(argv)
    out = args.out or (args.run_dirs[0] if len(args.run_dirs) == 1 else Path("report"))
    means, paths = report(args.run_dirs, out, args.metric, args.readout, args.labels)
    print(f"mean {args.metric} per kind:\n{means.round(3).to_string()}\n")
    for path in paths:
        print(f"wrote {path}")
    return 0
