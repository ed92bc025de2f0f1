"""Statistics of a :class:`~blockident.pairs.categories.PairSet` and the figures used to
choose ``k`` and ``n``: content-category frequencies, content categories per frame, frames per
content combination and style-category frequencies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from blockident.pairs.categories import PairSet, key_label
from blockident.pairs.strata import STRATA


def summary(pairs: PairSet) -> pd.DataFrame:
    """One row per stratum plus ``total``: sequences, frames (annotated), eligible frames,
    content combinations (distinct keys among eligible frames), pairs, same-video pairs."""
    a = pairs.annotations
    frame_stratum = pairs.frame_stratum
    eligible = pairs.frame_group >= 0
    same = a.frame_seq[pairs.pairs[:, 0]] == a.frame_seq[pairs.pairs[:, 1]]
    rows = {}
    for index, name in [*enumerate(STRATA), (None, "total")]:
        frames = np.ones(a.n_frames, bool) if index is None else frame_stratum == index
        chosen = np.ones(len(pairs.pairs), bool) if index is None else pairs.pair_stratum == index
        rows[name] = {
            "sequences": int(np.sum(pairs.sequence_stratum == index)) if index is not None
            else a.n_sequences,
            "frames": int(frames.sum()),
            "eligible_frames": int((frames & eligible).sum()),
            "content_combinations": len(np.unique(pairs.frame_group[frames & eligible])),
            "pairs": int(chosen.sum()),
            "same_video_pairs": int((chosen & same).sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def distributions(pairs: PairSet) -> dict[str, pd.Series]:
    """The series behind the figures, all over every split:

    - ``content_frequency`` / ``style_frequency``: instances per category id, descending;
    - ``content_per_frame``: frames per number of content categories (instances with
      ``count_instances``), 0 included;
    - ``frames_per_combination``: eligible frames per content key (``;``-joined ids), descending.
    """
    frequency = pairs.annotations.category_frequencies()
    role = {"content": pairs.content, "style": pairs.style}
    out = {f"{name}_frequency": frequency[frequency.index.isin(ids)].sort_values(
        ascending=False, kind="stable") for name, ids in role.items()}
    numbers = pd.Series(pairs.number).value_counts().sort_index()
    out["content_per_frame"] = numbers.rename_axis("content").rename("frames")
    groups = pairs.frame_group[pairs.frame_group >= 0]
    labels = [key_label(key) for key in pairs.groups]
    per_group = np.bincount(groups, minlength=len(pairs.groups))
    out["frames_per_combination"] = pd.Series(per_group, index=pd.Index(
        labels, name="content"), name="frames").sort_values(ascending=False, kind="stable")
    return out


def report(pairs: PairSet) -> str:
    """Plain-text statistics: content and style choice, the per-stratum summary and the
    largest content combinations."""
    names = pairs.annotations.categories
    dist = distributions(pairs)
    content = ", ".join(f"{c} {names.get(c, '?')} ({n})"
                        for c, n in dist["content_frequency"].items())
    per_frame = ", ".join(f"{k}: {v}" for k, v in dist["content_per_frame"].items())
    top = dist["frames_per_combination"].head(10)
    counted = "instances" if pairs.config.count_instances else "categories"
    lines = [
        f"content ({len(pairs.content)} categories, instances): {content}",
        f"style: {len(pairs.style)} categories, {int(dist['style_frequency'].sum())} instances",
        f"frames by number of content {counted}: {per_frame}",
        "largest content combinations (frames): " + ", ".join(f"{k} ({v})" for k, v in top.items()),
        "",
        summary(pairs).to_string(),
    ]
    return "\n".join(lines)


def plot(pairs: PairSet, out_dir: Path | str) -> list[Path]:
    """Write the four figures as PNG files to ``out_dir``; returns their paths."""
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dist = distributions(pairs)
    names = pairs.annotations.categories
    count_what = "instances" if pairs.config.count_instances else "categories"
    specs = [
        ("content_frequency", "content category", "instances", True),
        ("content_per_frame", f"content {count_what} in the frame", "frames", False),
        ("frames_per_combination", "content combination (rank)", "eligible frames", None),
        ("style_frequency", "style category (rank)", "instances", None),
    ]
    paths = []
    for key, xlabel, ylabel, labelled in specs:
        series = dist[key]
        fig = Figure(figsize=(max(6.0, 0.25 * len(series)) if labelled else 6.0, 4.0))
        ax = fig.subplots()
        if labelled is None:  # long tail: values by rank, log scale
            ax.plot(np.arange(1, len(series) + 1), series.to_numpy(), marker=".")
            if len(series) and series.max() > 0:
                ax.set_yscale("log")
        else:
            ax.bar(np.arange(len(series)), series.to_numpy())
            ticks = [names.get(c, str(c)) for c in series.index] if labelled else series.index
            ax.set_xticks(np.arange(len(series)), [str(t) for t in ticks],
                          rotation=90 if labelled else 0, fontsize=7 if labelled else 9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(key.replace("_", " "))
        fig.tight_layout()
        path = out_dir / f"{key}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths
