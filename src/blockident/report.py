"""Results tables and figures from ``results.csv``.

``results.csv`` is tidy: one row per (encoding, factor, readout, metric) with columns
``encoding,factor,kind,readout,metric,value``; ``kind`` is the factor's role.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from blockident.io import atomic_write  # noqa: E402

COLUMNS = ["encoding", "factor", "kind", "readout", "metric", "value"]
KIND_ORDER = {"content": 0, "style": 1, "modality": 2}


def write_results(rows: list[dict], path: Path) -> pd.DataFrame:
    """Write rows to ``path`` (atomically) in the stable column order; return the table."""
    table = pd.DataFrame(rows, columns=COLUMNS)
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
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
    """Heat map per metric: factors (rows, grouped by kind) x encoding/readout (columns)."""
    metrics = list(dict.fromkeys(table["metric"]))
    factors = _factor_order(table)
    fig, axes = plt.subplots(1, len(metrics), squeeze=False,
                             figsize=(1.2 + 1.3 * table.groupby(["encoding", "readout"]).ngroups
                                      * len(metrics), 1.0 + 0.45 * len(factors)))
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = table[table.metric == metric]
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
