"""Several runs (a comparison or a ``-m`` sweep): grouped by the config keys that differ between
them, seeds aggregated as mean ± 95 % t-interval.

A group is the set of runs whose configs agree on every key but the seed (and keys that follow
the seed, such as ``data.seed: ${seed}``); the run folder itself is never a difference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy import stats

from blockident.io import atomic_write
from blockident.report import ReportError, read_results

IGNORED = {"run_dir", "resume", "ckpt"}
STATS = ["trained", "untrained", "supervised", "oracle", "identified_share"]
SUMMARY_KEYS = ["encoding", "readout", "metric", "kind"]


def find_runs(paths: list[Path]) -> list[Path]:
    """The run folders among ``paths``: a folder with ``results.csv`` is a run, any other
    folder contributes its sub-folders that are (a sweep's jobs, in job order)."""
    runs = []
    for path in map(Path, paths):
        if (path / "results.csv").is_file():
            runs.append(path)
            continue
        jobs = [p for p in path.iterdir() if (p / "results.csv").is_file()] if path.is_dir() else []
        if not jobs:
            raise ReportError(f"{path}: neither a run (no results.csv) nor a folder of runs")
        runs += sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit()
                                            else 0, p.name))
    return runs


def _flat(node, prefix: str = "") -> dict[str, str]:
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in _flat(child, f"{prefix}{key}.")
                .items()}
    return {prefix[:-1]: node if isinstance(node, str) else json.dumps(node)}


def differences(run_dirs: list[Path]) -> tuple[pd.DataFrame, list[str]]:
    """(one row per run: ``run``, ``group`` and every config key that differs between the runs;
    the keys that define the groups, i.e. the differences other than the seed)."""
    configs = []
    for run in run_dirs:
        path = run / "config.yaml"
        configs.append(_flat(OmegaConf.to_container(OmegaConf.load(path))) if path.is_file()
                       else {})
    table = pd.DataFrame(configs, index=[str(d) for d in run_dirs])
    seed = table["seed"] if "seed" in table else pd.Series(None, index=table.index)
    differing = [k for k in table.columns if k not in IGNORED
                 and table[k].nunique(dropna=False) > 1
                 and (k == "seed" or not table[k].equals(seed))]
    keys = [k for k in differing if k != "seed"]
    out = table[differing].fillna("(unset)")
    group = out[keys].apply(lambda r: ", ".join(f"{k}={v}" for k, v in r.items()), axis=1)
    out.insert(0, "group", group if keys else "all runs")
    out.insert(0, "run", [str(d) for d in run_dirs])
    return out.reset_index(drop=True), keys


def interval(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per ``keys``: ``mean``, ``half`` (of the 95 % t-interval; NaN for one value) and ``n``
    of the defined ``value``s."""
    out = table.groupby(keys, sort=False)["value"].agg(mean="mean", sd="std", n="count")
    n = out["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["half"] = stats.t.ppf(0.975, n - 1) * out["sd"] / np.sqrt(n)
    return out.drop(columns="sd").reset_index()


def collect(run_dirs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(differences, every run's ``results.csv`` rows, every run's per-kind ``summary.csv``
    in long form with a ``stat`` column), the latter two with ``run`` and ``group``."""
    diffs, _ = differences(run_dirs)
    groups = dict(zip(diffs["run"], diffs["group"], strict=True))
    results, kinds = [], []
    for run in run_dirs:
        label = {"run": str(run), "group": groups[str(run)]}
        results.append(read_results(run).assign(**label))
        if (run / "summary.csv").is_file():
            summary = pd.read_csv(run / "summary.csv")
            present = [s for s in STATS if s in summary.columns]
            kinds.append(summary.melt(SUMMARY_KEYS, present, "stat").assign(**label))
    kinds = pd.concat(kinds, ignore_index=True) if kinds else pd.DataFrame(
        columns=[*SUMMARY_KEYS, "stat", "value", "run", "group"])
    return diffs, pd.concat(results, ignore_index=True), kinds


def write_summary(run_dirs: list[Path], path: Path) -> pd.DataFrame:
    """``summary.csv`` of a sweep: every job's per-kind summary (one row per job x encoding x
    kind x readout x metric) with the job and the differing config keys as columns."""
    diffs, _ = differences(run_dirs)
    parts = [pd.read_csv(run / "summary.csv").assign(job=Path(run).name, **{
        k: v for k, v in row.items() if k != "group"})
        for run, (_, row) in zip(run_dirs, diffs.iterrows(), strict=True)
        if (run / "summary.csv").is_file()]
    if not parts:
        raise ReportError("no run has a summary.csv")
    table = pd.concat(parts, ignore_index=True)
    front = ["job", *[c for c in diffs.columns if c != "group"]]
    table = table[front + [c for c in table.columns if c not in front]]
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    return table
