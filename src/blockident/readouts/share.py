"""Identified share: how much of what a positive control reads out the trained encoder keeps.

Per factor and readout, on the factor's headline metric (balanced accuracy for binary factors,
accuracy for categorical ones, R2 for continuous ones), ``(trained - chance) / (control -
chance)``: 1 when the trained encoding is as informative as the control, 0 at chance. A factor
whose control itself stays within ``margin`` of chance (as a share of the range from chance to
a perfect score) is *unreadable*: its share is undefined (NaN), and it is neither identified nor
discarded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from blockident.data.base import ReadoutSplit

HEADLINE = {"binary": "balanced_accuracy", "categorical": "accuracy", "continuous": "r2"}
# chance of the metrics whose chance does not depend on the data (accuracy's is 1 / classes)
METRIC_CHANCE = {"balanced_accuracy": 0.5, "roc_auc": 0.5, "r2": 0.0}
BASELINE, CONTROLS = "untrained:", ("supervised:", "oracle:")


def chance_levels(split: ReadoutSplit) -> dict[str, tuple[str, float]]:
    """factor -> (headline metric, its chance level on ``split``): 0.5 balanced accuracy,
    1 / classes accuracy, 0 R2."""
    out = {}
    for factor in dict.fromkeys(t.factor for t in split.tasks):
        kind = split.factor_type(factor)
        chance = METRIC_CHANCE.get(HEADLINE[kind])
        if chance is None:
            chance = 1 / len(np.unique(np.asarray(split.factors[factor])))
        out[factor] = (HEADLINE[kind], chance)
    return out


def _headline(table: pd.DataFrame, chance: dict[str, tuple[str, float]]) -> pd.DataFrame:
    """Headline-metric rows of ``table`` with the encoding split into ``role`` (trained,
    untrained, supervised, oracle) and ``base`` (the encoding it stands beside), plus ``chance``."""
    metric = table["factor"].map(lambda f: chance.get(f, (None,))[0])
    rows = table[table["metric"] == metric].copy()
    prefix = rows["encoding"].str.extract(r"^(untrained|supervised|oracle):", expand=False)
    rows["role"] = prefix.fillna("trained")
    rows["base"] = rows["encoding"].str.replace(r"^(untrained|supervised|oracle):", "", regex=True)
    rows["chance"] = rows["factor"].map(lambda f: chance[f][1])
    rows["value"] = rows["value"].astype(float)
    return rows


def _wide(rows: pd.DataFrame, keys: list[str], roles: list[str]) -> pd.DataFrame:
    """One row per ``keys``: a value column per role (NaN where absent), ``kind``, ``chance``."""
    wide = rows.pivot_table(index=keys, columns="role", values="value")
    return wide.reindex(columns=roles).join(
        rows.drop_duplicates(keys).set_index(keys)[["kind", "chance"]])


def _control_role(roles) -> str | None:
    return next((c.rstrip(":") for c in CONTROLS if c.rstrip(":") in set(roles)), None)


def _normalised(value, chance):
    return (value - chance) / (1 - chance)


def identified_share_rows(table: pd.DataFrame, chance: dict[str, tuple[str, float]],
                          margin: float = 0.2) -> list[dict]:
    """``results.csv`` rows (metric ``identified_share``) of every trained encoding's factors,
    relative to the first control present (supervised, else oracle); NaN when unreadable."""
    rows = _headline(table, chance)
    control = _control_role(rows["role"])
    if control is None:
        return []
    wide = _wide(rows, ["base", "factor", "readout"], ["trained", control])
    readable = _normalised(wide[control], wide["chance"]) >= margin
    share = (wide["trained"] - wide["chance"]) / (wide[control] - wide["chance"])
    share = share.where(readable)
    return [{"encoding": base, "factor": factor, "kind": wide.loc[(base, factor, readout), "kind"],
             "readout": readout, "metric": "identified_share", "value": float(v)}
            for (base, factor, readout), v in share.items()]


def kind_summary(table: pd.DataFrame, chance: dict[str, tuple[str, float]],
                 margin: float = 0.2) -> pd.DataFrame:
    """Per (encoding, readout, metric, kind): mean score of each role (trained, untrained,
    control) over the *readable* factors with a trained score, the kind's identified share
    ``(mean trained - mean chance) / (mean control - mean chance)``, ``factors`` (readable
    and scored) and ``unreadable`` (their names)."""
    rows = _headline(table, chance)
    control = _control_role(rows["role"])
    roles = ["trained", "untrained", *([control] if control else [])]
    wide = _wide(rows, ["base", "factor", "readout", "metric"], roles)
    wide = wide[wide["trained"].notna()]
    readable = (_normalised(wide[control], wide["chance"]) >= margin if control
                else pd.Series(True, index=wide.index))
    out = []
    for (base, readout, metric, kind), part in wide.groupby(
            [wide.index.get_level_values("base"), wide.index.get_level_values("readout"),
             wide.index.get_level_values("metric"), "kind"], sort=False):
        ok = part[readable.loc[part.index]]
        row = {"encoding": base, "readout": readout, "metric": metric, "kind": kind}
        for role in roles:
            row[role] = ok[role].mean()
        if control:
            gap = ok[control].mean() - ok["chance"].mean()
            row["identified_share"] = (ok["trained"].mean() - ok["chance"].mean()) / gap
            row["chance"] = part["chance"].mean()
        row["factors"] = len(ok)
        row["unreadable"] = ", ".join(part.index.get_level_values("factor")[~readable.loc[
            part.index].to_numpy()])
        out.append(row)
    order = {"content": 0, "style": 1, "modality": 2}
    summary = pd.DataFrame(out)
    if summary.empty:
        return summary
    summary["_order"] = summary["kind"].map(order).fillna(len(order))
    summary = summary.sort_values(["encoding", "readout", "metric", "_order"], kind="stable")
    summary = summary.drop(columns="_order").reset_index(drop=True)
    return summary.dropna(axis=1, how="all")  # no untrained column without a baseline
