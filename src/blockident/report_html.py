"""Self-contained HTML reports (Jinja2; figures embedded as base64 PNG, no network): one page
per run (``report.html`` in the run folder) and one per comparison or sweep of runs."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.experimental.callback import Callback
from jinja2 import Environment, PackageLoader
from omegaconf import OmegaConf

from blockident import runinfo
from blockident.io import atomic_write_text
from blockident.report import (
    KIND_ORDER,
    ReportError,
    plot_curves,
    plot_intervals,
    read_results,
)
from blockident.sweep import STATS, collect, find_runs, interval, write_summary

REPORT = "report.html"
_ENV = Environment(loader=PackageLoader("blockident", "templates"), autoescape=True)
_HEADLINE = ["encoding", "readout", "metric", "kind", "factors", "trained", "untrained",
             "supervised", "oracle", "identified_share", "chance", "unreadable"]
_RUN_FIGURES = ["results.png", "categories.png", "boxes.png"]


def _number(value) -> str:
    if isinstance(value, float):
        return "–" if pd.isna(value) else f"{value:.3f}"
    return "" if value is None else str(value)


def _table(table: pd.DataFrame, text: list[str] | None = None) -> dict:
    """Columns, formatted rows, and the text (left-aligned) columns of ``table``."""
    text = [c for c in table.columns
            if c in (text or []) or not pd.api.types.is_numeric_dtype(table[c])]
    rows = [[_number(v) for v in row] for row in table.itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in table.columns], "rows": rows, "text": text}


def _embed(paths: list[Path]) -> list[tuple[str, str]]:
    return [(p.name, base64.b64encode(p.read_bytes()).decode()) for p in paths]


def _kind_sorted(table: pd.DataFrame, before: list[str]) -> pd.DataFrame:
    rank = table["kind"].map(KIND_ORDER).fillna(len(KIND_ORDER)).rename("_rank")
    return table.assign(_rank=rank).sort_values([*before, "_rank"], kind="stable").drop(
        columns="_rank")


def _write(out: Path, template: str, **context) -> Path:
    atomic_write_text(out, _ENV.get_template(template).render(**context))
    return Path(out)


# -- one run --------------------------------------------------------------------------------------
def _factors(results: pd.DataFrame) -> pd.DataFrame:
    """``results.csv`` with a column per encoding: one row per factor, readout and metric."""
    keys = ["kind", "factor", "readout", "metric"]
    wide = results.set_index([*keys, "encoding"])["value"].unstack("encoding", sort=False)
    wide = wide.reset_index().rename_axis(columns=None)
    by_factor = wide.iloc[np.argsort(pd.factorize(wide["factor"])[0], kind="stable")]
    return _kind_sorted(by_factor, [])


def _info(run_dir: Path, config: dict) -> pd.DataFrame:
    record = runinfo.read(run_dir) or {}
    wall = record.get("wall_time_s")
    rows = {"run folder": str(run_dir), "experiment": config.get("info", {}).get("name"),
            "command that repeats the run": record.get("command", "(not recorded)"),
            "package version": config.get("version", "(not recorded)"),
            "seed": config.get("seed"), "started": record.get("started", "(not recorded)"),
            "wall time": f"{wall / 60:.1f} min ({wall:.0f} s)" if wall is not None
            else "(not recorded)"}
    return pd.DataFrame({"": list(rows), "value": [_number(v) for v in rows.values()]})


def write_run_report(run_dir: Path) -> Path:
    """``RUN_DIR/report.html`` (and ``curves.png`` from ``metrics.csv``); returns its path."""
    run_dir = Path(run_dir)
    results = read_results(run_dir)
    path = run_dir / "config.yaml"
    config = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}
    headline = None
    if (run_dir / "summary.csv").is_file():
        summary = pd.read_csv(run_dir / "summary.csv")
        headline = _table(summary[[c for c in _HEADLINE if c in summary.columns]])
    curves = []
    if (run_dir / "metrics.csv").is_file():
        curves = _embed([plot_curves(pd.read_csv(run_dir / "metrics.csv"),
                                     run_dir / "curves.png")])
    name = config.get("info", {}).get("name")
    return _write(
        run_dir / REPORT, "run.html.j2",
        title=f"{name}: {run_dir.name}" if name else run_dir.name,
        description=config.get("info", {}).get("description", ""),
        chance_note="chance: balanced accuracy 0.5, accuracy 1 / classes, R² 0",
        headline=headline, factors=_table(_factors(results), ["kind", "factor"]),
        images=_embed([run_dir / f for f in _RUN_FIGURES if (run_dir / f).is_file()]),
        curves=curves, info=_table(_info(run_dir, config)),
        config=path.read_text() if path.is_file() else "(no config.yaml)")


# -- several runs ---------------------------------------------------------------------------------
def _interval_text(row) -> str:
    text = "–" if pd.isna(row["mean"]) else f"{row['mean']:.3f}"
    if not pd.isna(row["half"]):
        text += f" ± {row['half']:.3f}"
    return f"{text} ({row['n']})"


def _by_group(agg: pd.DataFrame, rows: list[str], groups: list[str]) -> pd.DataFrame:
    """A row per ``rows`` key, a column per group holding ``mean ± half (n)``."""
    agg = agg.assign(cell=agg.apply(_interval_text, axis=1))
    wide = agg.set_index([*rows, "group"])["cell"].unstack("group", sort=False)
    return wide.reindex(columns=groups).fillna("").reset_index().rename_axis(columns=None)


def _plot(agg: pd.DataFrame, x: str, title: str, folder: Path, name: str,
          several: bool) -> Path:
    series = agg["encoding"] if not several else agg["group"] + " · " + agg["encoding"]
    table = agg.assign(panel=agg["readout"], x=agg[x], series=series)
    return plot_intervals(table, folder / f"{name}.png", title)


def write_sweep_report(run_dirs: list[Path], out: Path) -> Path:
    """The comparison page of ``run_dirs`` at ``out``: config differences, per kind and per
    factor means ± 95 % t-interval per group of runs, a figure per statistic and metric."""
    diffs, results, kinds = collect(run_dirs)
    groups = list(dict.fromkeys(diffs["group"]))
    several = len(groups) > 1
    kind_agg = interval(kinds, ["group", "encoding", "readout", "metric", "kind", "stat"])
    kind_agg = _kind_sorted(kind_agg.assign(
        _stat=kind_agg["stat"].map(STATS.index)), ["encoding", "readout", "metric", "_stat"])
    factor_agg = _kind_sorted(
        interval(results, ["group", "encoding", "kind", "factor", "readout", "metric"]), [])
    with tempfile.TemporaryDirectory() as tmp:
        kind_figures = _embed([
            _plot(part, "kind", stat, Path(tmp), f"kinds_{stat}", several)
            for stat, part in kind_agg.groupby("stat", sort=False)])
        metrics = [(metric, _table(_by_group(part, ["encoding", "kind", "factor", "readout"],
                                             groups), ["encoding", "kind", "factor", "readout"]),
                    _embed([_plot(part, "factor", metric, Path(tmp), f"metric_{i}", several)]))
                   for i, (metric, part) in enumerate(factor_agg.groupby("metric", sort=False))]
    kind_table = _by_group(kind_agg, ["encoding", "readout", "metric", "kind", "stat"], groups)
    return _write(
        out, "sweep.html.j2", title=f"{len(run_dirs)} runs: " + "; ".join(groups),
        runs=len(run_dirs), groups=len(groups), differences=_table(diffs, list(diffs.columns)),
        kinds=_table(kind_table, list(kind_table.columns)), kind_figures=kind_figures,
        metrics=metrics)


class SweepReport(Callback):
    """Hydra callback: when a ``-m`` sweep ends, its folder gets ``summary.csv`` (every job's
    per-kind summary) and ``report.html`` (the comparison page of its jobs)."""

    def on_multirun_end(self, config, **kwargs) -> None:
        folder = Path(config.hydra.sweep.dir)
        try:
            runs = find_runs([folder])
        except ReportError:
            return  # jobs that only trained: nothing to report
        write_summary(runs, folder / "summary.csv")
        print(f"sweep summary: {folder / 'summary.csv'}\n"
              f"sweep report:  {write_sweep_report(runs, folder / REPORT)}")
