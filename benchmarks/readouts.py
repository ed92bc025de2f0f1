"""Time the full classification readout evaluation with the multi-label MLP.

Synthetic BURST-like setting (defaults): 10,000 representations (5,000 train / 5,000 test),
64 dimensions, 20 content + 200 style categories with long-tailed prevalence
(``0.4 * rank^-1``, at least 0.2%). Content labels are thresholds on random linear
projections of the representation (learnable); style labels are independent of it except for
every tenth one (weakly learnable). Timed: standardisation, MLP fit, test scores and all
metrics/rows (``classification_rows``).

``--metrics`` times instead ROC-AUC and average precision of every category of the test half
(5,000 x 220 by default; scores: a random linear readout, rounded to 3 decimals so that there
are ties): scikit-learn's functions called per category, as the metrics were computed before,
against :mod:`blockident.readouts.metrics` (all columns at once), best of ``--repeat`` runs.

    .venv/bin/python benchmarks/readouts.py [--n 10000] [--dim 64] [--content 20] [--style 200]
    .venv/bin/python benchmarks/readouts.py --metrics [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from blockident.readouts.classification import classification_rows
from blockident.readouts.metrics import ranking_metrics


def synthetic(n: int, dim: int, n_content: int, n_style: int, seed: int = 0):
    """Representations (n, dim), labels (n, C), category names and kinds."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    n_cat = n_content + n_style
    prevalence = np.maximum(0.4 / np.arange(1, n_cat + 1), 0.002)
    prevalence = rng.permutation(prevalence)
    signal = x @ rng.normal(size=(dim, n_cat)) / np.sqrt(dim)
    noise = rng.normal(size=(n, n_cat))
    weight = np.zeros(n_cat)  # share of signal in the label's latent
    weight[:n_content] = 1.0
    weight[n_content::10] = 0.3
    latent = weight * signal + np.sqrt(1 - weight**2) * noise
    y = (latent > np.quantile(latent, 1 - prevalence, axis=0).diagonal()).astype(np.int64)
    names = [f"content{i}" for i in range(n_content)] + [f"style{i}" for i in range(n_style)]
    kinds = ["content"] * n_content + ["style"] * n_style
    return x, y, names, kinds


def best_time(fn, repeat: int) -> tuple[float, object]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def metrics(x: np.ndarray, y: np.ndarray, repeat: int) -> None:
    """Per-category scikit-learn calls against the column-wise metrics, on (N, C) scores."""
    scores = np.round(x @ np.random.default_rng(1).normal(size=(x.shape[1], y.shape[1])), 3)
    pos = y.sum(0)
    both = np.flatnonzero((pos > 0) & (pos < len(y)))

    def per_column():
        return ([roc_auc_score(y[:, c], scores[:, c]) for c in both],
                [average_precision_score(y[:, c], scores[:, c]) for c in both])

    old, (auc_old, ap_old) = best_time(per_column, repeat)
    new, ranking = best_time(lambda: ranking_metrics(y, scores), repeat)
    gap = max(np.abs(ranking["roc_auc"][both] - auc_old).max(),
              np.abs(ranking["average_precision"][both] - ap_old).max())
    print(f"ROC-AUC and average precision of {len(both)} categories x {len(y)} samples "
          f"(best of {repeat}):")
    print(f"per category (scikit-learn): {old:.3f} s, all columns at once: {new:.4f} s, "
          f"ratio {old / new:.0f}; largest difference {gap:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--content", type=int, default=20)
    parser.add_argument("--style", type=int, default=200)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--metrics", action="store_true", help="time the metrics only")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    x, y, names, kinds = synthetic(args.n, args.dim, args.content, args.style)
    half = args.n // 2
    if args.metrics:
        return metrics(x[half:], y[half:], args.repeat)
    start = time.perf_counter()
    rows, scores = classification_rows(x[:half], y[:half], x[half:], y[half:], names, kinds,
                                       "content_enc", "mlp",
                                       mlp_kwargs={"max_epochs": args.max_epochs})
    elapsed = time.perf_counter() - start

    values = {}
    for r in rows:
        values.setdefault((r["kind"], r["metric"]), []).append(r["value"])
    print(f"{half} train / {args.n - half} test, dim {args.dim}, "
          f"{args.content} content + {args.style} style categories, readout mlp")
    print(f"prevalence: min {y.mean(0).min():.4f}, median {np.median(y.mean(0)):.4f}, "
          f"max {y.mean(0).max():.4f}")
    for kind in ("content", "style"):
        bal = np.array(values[(kind, "balanced_accuracy")], dtype=float)
        auc = np.array(values[(kind, "roc_auc")], dtype=float)
        print(f"{kind}: mean balanced accuracy {np.nanmean(bal):.3f}, "
              f"mean ROC-AUC {np.nanmean(auc):.3f} ({np.isnan(auc).sum()} undefined)")
    print(f"rows {len(rows)}, scores {scores.shape}")
    print(f"time: {elapsed:.2f} s")


if __name__ == "__main__":
    main()
