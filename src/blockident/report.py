"""Results tables and figures from ``results.csv``.

``results.csv`` is tidy: one row per (encoding, factor, readout, metric) with columns
``encoding,factor,kind,readout,metric,value``; ``kind`` is the factor's role.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from blockident import runinfo  # noqa: E402
from blockident.errors import UserError  # noqa: E402
from blockident.io import atomic_write  # noqa: E402
from blockident.readouts.share import METRIC_CHANCE  # noqa: E402

COLUMNS = ["encoding", "factor", "kind", "readout", "metric", "value"]
KIND_ORDER = {"content": 0, "style": 1, "modality": 2}


def write_results(rows: list[dict], path: Path) -> pd.DataFrame:
    """Write rows to ``path`` (atomically) in the stable column order; return the table."""
    table = pd.DataFrame(rows, columns=COLUMNS)
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    return table


class ReportError(UserError):
    """A run that cannot be reported; the message names it."""


def read_results(run_dir: Path) -> pd.DataFrame:
    """The ``results.csv`` of ``run_dir``, checked for the expected columns."""
    path = run_dir / "results.csv"
    if (why := runinfo.failure(run_dir)) is not None:
        raise ReportError(f"{run_dir}: its training failed before the first trained checkpoint "
                          f"({why}); nothing to report")
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


def _factor_order(table: pd.DataFrame) -> list[str]:
    first = table.drop_duplicates("factor").reset_index(drop=True)
    first["order"] = first["kind"].map(KIND_ORDER).fillna(len(KIND_ORDER))
    return first.sort_values(["order"], kind="stable")["factor"].tolist()


def summary(table: pd.DataFrame) -> str:
    """Factor x (encoding, readout) table of values for one metric per block, as text."""
    blocks = []
    for metric, part in table.groupby("metric", sort=False):
        wide = part.pivot_table(index=["kind", "factor"], columns=["encoding", "readout"],
                                values="value", sort=False)
        order = [(part.loc[part.factor == f, "kind"].iloc[0], f) for f in _factor_order(part)]
        blocks.append(f"{metric}:\n{wide.reindex(order).round(3).to_string()}")
    return "\n\n".join(blocks)


def plot_results(table: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Heat map per metric, stacked: the factors scored by that metric (rows, grouped by kind)
    x encoding/readout (columns). Factors of mixed types (R2 and accuracy) get one panel each."""
    panels = [(metric, table[table.metric == metric])
              for metric in dict.fromkeys(table["metric"])]
    rows = [len(_factor_order(part)) for _, part in panels]
    width = max(part.groupby(["encoding", "readout"]).ngroups for _, part in panels)
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, height_ratios=rows,
                             figsize=(3.5 + 1.1 * width, 1.0 + 0.45 * sum(rows) + 0.6 * len(rows)))
    for ax, (metric, part) in zip(axes[:, 0], panels, strict=True):
        factors = _factor_order(part)
        wide = part.pivot_table(index="factor", columns=["encoding", "readout"], values="value",
                                sort=False).reindex(factors)
        image = ax.imshow(wide.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis",
                          aspect="auto")
        for (i, j), v in pd.DataFrame(wide.to_numpy()).stack().items():
            ax.text(j, i, f"{v:.2f}", ha="center", va="center",
                    color="white" if v < 0.6 else "black", fontsize=8)
        kinds = part.drop_duplicates("factor").set_index("factor")["kind"]
        ax.set_yticks(range(len(factors)), [f"{f} ({kinds[f]})" for f in factors])
        ax.set_xticks(range(wide.shape[1]), [f"{e}\n{r}" for e, r in wide.columns], fontsize=8)
        ax.set_title(metric)
        fig.colorbar(image, ax=ax, fraction=0.05)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=Path(path).suffix[1:]))
    plt.close(fig)
    return Path(path)


# -- per-category readouts (many categories per kind) ---------------------------------------------
TITLE_SIZE = 12  # points
KIND_COLOURS = {"content": "tab:blue", "style": "tab:orange", "modality": "tab:green"}
SERIES = ["run", "encoding", "readout"]


def kind_means(table: pd.DataFrame, metric: str = "balanced_accuracy") -> pd.DataFrame:
    """Mean of ``metric`` over categories per (encoding, readout, kind), NaN skipped.

    Columns ``mean`` and ``n`` (the number of categories with a defined value).
    """
    part = table[table.metric == metric]
    means = part.groupby(["encoding", "readout", "kind"], sort=False)["value"].agg(
        mean="mean", n="count").reset_index()
    order = np.lexsort([means["kind"].map(_kind_rank), pd.factorize(means["readout"])[0],
                        pd.factorize(means["encoding"])[0]])
    return means.iloc[order].set_index(["encoding", "readout", "kind"])


def _kind_rank(kind: str) -> int:
    return KIND_ORDER.get(kind, len(KIND_ORDER))


def _chance_line(ax, metric: str) -> None:
    """The metric's chance level as a dashed line (none where it depends on the data)."""
    if metric in METRIC_CHANCE:
        ax.axhline(METRIC_CHANCE[metric], color="grey", linestyle="--", linewidth=1)


def _fit(text: str, width_inches: float, fontsize: float) -> str:
    """``text`` wrapped to lines that fit ``width_inches`` (less margins) at ``fontsize``
    points, taking a character as 0.65 of the font size wide."""
    return textwrap.fill(text, max(10, int((width_inches - 0.6) * 72 / (0.65 * fontsize))))


def _long(tables: dict[str, pd.DataFrame], metric: str, readout: str | None) -> pd.DataFrame:
    """The rows of ``metric`` (and ``readout``) of every table with a ``run`` column."""
    parts = [t.assign(run=label) for label, t in tables.items()]
    long = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    long = long[long.metric == metric]
    if readout:
        long = long[long.readout == readout]
    if long.empty:
        raise ValueError(f"no {metric!r} rows" + (f" of readout {readout!r}" if readout else ""))
    return long.assign(value=long["value"].astype(float))


def _series_labels(keys: list[tuple], sep: str) -> tuple[dict[tuple, str], str]:
    """Labels from the parts of ``keys`` that vary, and the parts all keys share (as a title)."""
    if not keys:
        return {}, ""
    varying = [i for i in range(len(SERIES)) if len({k[i] for k in keys}) > 1] or [len(SERIES) - 1]
    common = " · ".join(str(keys[0][i]) for i in range(len(SERIES)) if i not in varying)
    return {k: sep.join(str(k[i]) for i in varying) for k in keys}, common


def _kinds(long: pd.DataFrame) -> list[str]:
    return sorted(dict.fromkeys(long["kind"]), key=_kind_rank)


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=Path(path).suffix[1:]))
    plt.close(fig)
    return Path(path)


def plot_categories(tables: dict[str, pd.DataFrame], path: Path,
                    metric: str = "balanced_accuracy", readout: str | None = None) -> Path:
    """``metric`` per category, a panel per kind (content | style), a colour per series.

    ``tables`` maps a run label to its results table; a series is one (run, encoding, readout).
    Categories are sorted by the first series' value (best first, undefined last); panels of
    many categories show markers instead of grouped bars and every k-th tick label. Undefined
    (NaN) values are marked "n/a" (bars) or x at the bottom (markers); tick labels give the
    first run's test positives where its table has the ``positives`` metric. The legend gives
    each series' mean per kind.
    """
    long = _long(tables, metric, readout)
    keys = list(dict.fromkeys(long[SERIES].itertuples(index=False, name=None)))
    positives = _positives(tables[keys[0][0]])
    labels, common = _series_labels(keys, " · ")
    kinds = _kinds(long)
    panels = {}
    for kind in kinds:
        wide = long[long.kind == kind].pivot(index="factor", columns=SERIES, values="value")
        wide = wide.reindex(columns=keys).sort_index()
        panels[kind] = wide.iloc[np.argsort(-wide[keys[0]].to_numpy(), kind="stable")]
    bars = {k: len(w) * len(keys) <= 150 for k, w in panels.items()}
    widths = [max(2.5, len(w) * (max(0.25, 0.12 * len(keys)) if bars[k] else 0.1))
              for k, w in panels.items()]
    scale = min(1.0, 48 / sum(widths))
    fig, axes = plt.subplots(1, len(kinds), squeeze=False, sharey=True, layout="constrained",
                             width_ratios=widths,
                             figsize=(max(6.0, sum(widths) * scale), 5 + 0.2 * len(keys)))
    cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
    colours = [cmap(s % cmap.N) for s in range(len(keys))]
    means = {}
    for ax, (kind, wide), width in zip(axes[0], panels.items(), widths, strict=True):
        x = np.arange(len(wide))
        step = 0.8 / len(keys)
        for s, key in enumerate(keys):
            offset = (s - (len(keys) - 1) / 2) * step
            values = wide[key].to_numpy()
            undefined = x[np.isnan(values)] + offset
            if bars[kind]:
                ax.bar(x + offset, values, width=step, color=colours[s])
                for u in undefined:
                    ax.text(u, 0.01, "n/a", rotation=90, ha="center", va="bottom", fontsize=6,
                            color=colours[s], transform=ax.get_xaxis_transform())
            else:
                ax.plot(x + offset, values, "o", ms=3, alpha=0.8, color=colours[s])
                ax.plot(undefined, np.full(len(undefined), 0.01), "x", ms=3, color=colours[s],
                        transform=ax.get_xaxis_transform())
            means.setdefault(key, []).append(f"{kind} {wide[key].mean():.3f}")
        thin = max(1, int(np.ceil(len(wide) / (width * scale / 0.11))))
        ticks = [f"{f} ({positives[f]})" if f in positives else f for f in wide.index]
        ax.set_xticks(x[::thin], ticks[::thin], rotation=90, fontsize=7)
        ax.set_xlim(-0.6, len(wide) - 0.4)
        _chance_line(ax, metric)
        every = f", 1 label in {thin}" if thin > 1 else ""
        ax.set_title(f"{kind} ({len(wide)} categories{every})")
        ax.set_xlabel("category (test positives)" if positives else "", fontsize=8)
    axes[0][0].set_ylabel(metric)
    _legend(fig, [f"{labels[k]}\nmean {', '.join(means[k])}" for k in keys], colours)
    fig.suptitle(_fit(f"{metric}" + (f" — {common}" if common else ""), fig.get_figwidth(),
                      TITLE_SIZE), fontsize=TITLE_SIZE)
    return _save(fig, path)


def _positives(table: pd.DataFrame) -> dict[str, int]:
    """factor -> its test positives (the ``positives`` metric) in ``table``."""
    part = table[table.metric == "positives"].dropna(subset=["value"])
    return part.groupby("factor")["value"].first().astype(int).to_dict()


def _legend(fig, labels: list[str], colours: list) -> None:
    """A legend below the panels in as many columns as the figure's width holds, each label
    line wrapped to fit."""
    width, size = fig.get_figwidth(), 8
    labels = ["\n".join(_fit(line, width - 0.6, size) for line in label.split("\n"))
              for label in labels]
    longest = max(len(line) for label in labels for line in label.split("\n"))
    columns = int(width // (0.6 + longest * 0.6 * size / 72))
    handles = [plt.Line2D([], [], color=c, marker="s", linestyle="none") for c in colours]
    fig.legend(handles, labels, loc="outside lower center", fontsize=size,
               ncol=max(1, min(len(labels), 3, columns)))


def plot_boxes(tables: dict[str, pd.DataFrame], path: Path,
               metric: str = "balanced_accuracy") -> Path:
    """Box plot of the per-category ``metric`` per (run, encoding, readout), a box per kind.

    Each category is a (jittered) point over its box; undefined (NaN) values are left out.
    """
    long = _long(tables, metric, None).dropna(subset=["value"])
    if long.empty:
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.text(0.5, 0.5, f"no defined {metric} values", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, path)
    keys = list(dict.fromkeys(long[SERIES].itertuples(index=False, name=None)))
    labels, common = _series_labels(keys, "\n")
    kinds = _kinds(long)
    width = 0.7 / len(kinds)
    groups = dict(list(long.groupby([*SERIES, "kind"], sort=False)["value"]))
    rng = np.random.default_rng(0)
    per_group = max(0.4 * len(kinds), 0.07 * max((len(line) for label in labels.values()
                                                   for line in label.split("\n")), default=0))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + per_group * len(keys)), 5),
                           layout="constrained")
    for g, key in enumerate(keys):
        for k, kind in enumerate(kinds):
            values = groups.get((*key, kind))
            if values is None:
                continue
            position = g + (k - (len(kinds) - 1) / 2) * width
            colour = KIND_COLOURS.get(kind, f"C{k + 3}")
            box = ax.boxplot(values, positions=[position], widths=width * 0.85,
                             patch_artist=True, showfliers=False,
                             medianprops={"color": "black"})
            box["boxes"][0].set(facecolor=colour, alpha=0.4)
            jitter = rng.uniform(-width / 4, width / 4, len(values))
            ax.scatter(position + jitter, values, s=8, color=colour, alpha=0.7, linewidths=0)
    _chance_line(ax, metric)
    ax.set_xticks(range(len(keys)), [labels[k] for k in keys], fontsize=8)
    ax.set_xlim(-0.6, len(keys) - 0.4)
    ax.set_ylabel(f"{metric} per category")
    ax.legend([plt.Rectangle((0, 0), 1, 1, color=KIND_COLOURS.get(kind, f"C{k + 3}"), alpha=0.5)
               for k, kind in enumerate(kinds)], kinds, fontsize=8)
    ax.set_title(_fit(f"{metric}" + (f" — {common}" if common else ""), fig.get_figwidth(),
                      TITLE_SIZE), fontsize=TITLE_SIZE)
    return _save(fig, path)


def plot_curves(metrics: pd.DataFrame, path: Path) -> Path:
    """Training curves of ``metrics.csv`` over steps: the losses, and the periodic readouts
    (``readout/...`` columns) in a second panel when the run logged any."""
    losses = [c for c in metrics.columns if c.endswith("/loss")]
    readouts = [c for c in metrics.columns if c.startswith("readout/")]
    panels = [(losses, "loss"), *([(readouts, "readout score")] if readouts else [])]
    fig, axes = plt.subplots(1, len(panels), squeeze=False, figsize=(6 * len(panels), 4),
                             layout="constrained")
    for ax, (columns, label) in zip(axes[0], panels, strict=True):
        for column in columns:
            curve = metrics[["step", column]].dropna()
            ax.plot(curve["step"], curve[column], marker="o" if len(curve) < 20 else None,
                    ms=3, label=column)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_intervals(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Means with error bars: a panel per ``panel``, ``x`` on the axis, a colour per ``series``;
    columns ``mean`` and ``half`` (the half-width of the interval; NaN draws no bar)."""
    panels = list(dict.fromkeys(table["panel"]))
    series = list(dict.fromkeys(table["series"]))
    xs = list(dict.fromkeys(table["x"]))
    width = max(4.0, min(16.0, 1.0 + 0.12 * len(xs) * len(series)))
    fig, axes = plt.subplots(1, len(panels), squeeze=False, sharey=True, layout="constrained",
                             figsize=(min(48.0, width * len(panels)), 4.5 + 0.2 * len(series)))
    step = 0.8 / len(series)
    for ax, panel in zip(axes[0], panels, strict=True):
        part = table[table["panel"] == panel]
        for s, name in enumerate(series):
            line = part[part["series"] == name].set_index("x").reindex(xs)
            ax.errorbar(np.arange(len(xs)) + (s - (len(series) - 1) / 2) * step, line["mean"],
                        yerr=line["half"], fmt="o", ms=4, capsize=3, color=f"C{s % 10}",
                        label=name)
        ax.set_xticks(range(len(xs)), xs, rotation=90 if len(xs) > 8 else 0, fontsize=8)
        ax.set_title(str(panel))
    axes[0][0].set_ylabel(title)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center",
               ncol=min(len(series), 3), fontsize=8)
    fig.suptitle(f"{title}: mean ± 95 % t-interval over seeds")
    return _save(fig, path)
