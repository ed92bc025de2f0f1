"""BURST/TAO annotation reader: split files -> one columnar frame table.

``DATA_DIR`` holds ``train.json``, ``val.json``, ``test.json`` (``{"split", "categories",
"sequences": [...]}``) and ``categories.json`` (LVIS-style ``[{"id", "name", ...}]``). Frames live
at ``<images root>/<split>/<dataset>/<seq_name>/<image>``, where the images root is ``DATA_DIR``
itself or ``DATA_DIR/frames`` (:func:`find_images_root`).

Every annotated frame becomes one row, in a canonical order: splits as in :data:`SPLITS`,
sequences by id within a split, frames in ``annotated_image_paths`` order. Frames whose
segmentation entry is empty stay (no objects). The categories present in a frame, with their
instance counts (number of masks), are stored in CSR form: the entries of frame ``f`` are
``offsets[f]:offsets[f + 1]``, sorted by category id.

A video listed twice (under another id or in another split file) is detected by its sequence of
frame paths below the split folder (``<dataset>/<seq_name>/<image>``): both copies stay in the
table, a warning names them, and ``seq_group`` ties them together.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from blockident.errors import DataError, MissingError, warn

SPLITS = ("train", "val", "test")
CATEGORIES_FILE = "categories.json"
# sequence fields the reader uses; the others of the format (fps, width, height,
# all_image_paths, neg_category_ids, not_exhaustive_category_ids) are optional here
REQUIRED_FIELDS = ("id", "dataset", "seq_name", "annotated_image_paths", "track_category_ids",
                   "segmentations")
IMAGE_ROOTS = (".", "frames")  # candidate images roots, relative to DATA_DIR, in preference order


class BurstFormatError(DataError):
    """Malformed BURST input; the message names the file, the sequence and the field."""


@dataclass(eq=False)
class BurstAnnotations:
    """All annotated frames of the BURST splits found in ``data_dir``.

    Sequences (S): ``seq_split``, ``seq_dataset``, ``seq_name`` (str arrays), ``seq_id`` (int64),
    ``seq_group`` (int64): index of the first sequence with the same frames (itself when unique).
    ``seq_prefix`` (str): ``<split>/<dataset>/<seq_name>/``, the folder of its frames.
    Frames (F): ``frame_seq`` (int64 index into the sequences), ``frame_image`` (str array of
    image names as in ``annotated_image_paths``); :meth:`image_paths` joins the two. (Numpy
    str arrays, not the decoded ``str`` objects: those would pin the memory of the whole
    decoded JSON in the allocator's arenas.)
    Entries (E): ``category`` and ``count`` (int64); frame ``f`` owns entries
    ``offsets[f]:offsets[f + 1]`` (``offsets`` has F + 1 items), sorted by category id.
    ``categories``: id -> name from ``categories.json``; ``unknown_categories``: category ids
    used in ``track_category_ids`` but absent from ``categories.json`` -> where first seen.
    """

    categories: dict[int, str]
    seq_split: np.ndarray
    seq_dataset: np.ndarray
    seq_id: np.ndarray
    seq_name: np.ndarray
    seq_group: np.ndarray
    seq_prefix: np.ndarray
    frame_seq: np.ndarray
    frame_image: np.ndarray
    offsets: np.ndarray
    category: np.ndarray
    count: np.ndarray
    unknown_categories: dict[int, str] = field(default_factory=dict)
    missing_splits: tuple[str, ...] = ()
    data_dir: Path | None = None
    images_root: Path | None = None

    @property
    def n_frames(self) -> int:
        return len(self.frame_seq)

    @property
    def n_sequences(self) -> int:
        return len(self.seq_id)

    @property
    def entry_frame(self) -> np.ndarray:
        """(E,) frame index of every entry."""
        return np.repeat(np.arange(self.n_frames), np.diff(self.offsets))

    def entries_of(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The entries of ``frames`` (N frame indices), in the order of ``frames``: (E',)
        position in ``frames`` and (E',) entry index of each."""
        frames = np.asarray(frames, dtype=np.int64)
        starts = self.offsets[frames]
        lengths = self.offsets[frames + 1] - starts
        rows = np.repeat(np.arange(len(frames)), lengths)
        first = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        return rows, first + np.arange(len(rows))

    def category_frequencies(self) -> pd.Series:
        """Instances ((frame, mask) occurrences) per observed category id, all splits."""
        totals = np.bincount(self.category, weights=self.count).astype(np.int64)
        ids = np.flatnonzero(totals)
        return pd.Series(totals[ids], index=pd.Index(ids, name="category"), name="instances")

    def image_paths(self, frames: np.ndarray | None = None, absolute: bool = False) -> np.ndarray:
        """(N,) object array: paths of ``frames`` (N indices; all frames by default), relative
        to the images root (``<split>/<dataset>/<seq_name>/<image>``) or absolute. Built from
        ``seq_prefix`` and ``frame_image`` on each call."""
        if absolute and self.images_root is None:
            raise MissingError(images_root_message(self.data_dir))
        frames = slice(None) if frames is None else frames
        paths = np.char.add(self.seq_prefix[self.frame_seq[frames]], self.frame_image[frames])
        return (np.char.add(f"{self.images_root}/", paths) if absolute else paths).astype(object)

    def table(self) -> pd.DataFrame:
        """One row per annotated frame: split, dataset, sequence, seq_name, image, categories
        (tuple of ids) and instances (tuple of counts, aligned with categories)."""
        bounds = self.offsets.tolist()
        cats, counts = self.category.tolist(), self.count.tolist()
        spans = list(zip(bounds[:-1], bounds[1:], strict=True))
        return pd.DataFrame({
            "split": self.seq_split[self.frame_seq],
            "dataset": self.seq_dataset[self.frame_seq],
            "sequence": self.seq_id[self.frame_seq],
            "seq_name": self.seq_name[self.frame_seq],
            "image": self.image_paths(),
            "categories": [tuple(cats[a:b]) for a, b in spans],
            "instances": [tuple(counts[a:b]) for a, b in spans],
        })


def read_burst(data_dir: Path | str) -> BurstAnnotations:
    """Read ``categories.json`` and every split file present in ``data_dir``.

    Raises :class:`~blockident.errors.MissingError` when ``categories.json`` or all split files
    are missing and :class:`BurstFormatError` for malformed content. Missing split files are
    listed in ``missing_splits``; a split file without sequences or annotated frames is warned
    about on stderr; the images root is detected (``None`` when no frames are found).
    """
    data_dir = Path(data_dir)
    categories = read_categories(data_dir / CATEGORIES_FILE)
    paths = [data_dir / f"{split}.json" for split in SPLITS]
    if not any(path.exists() for path in paths):
        names = ", ".join(path.name for path in paths)
        raise MissingError(f"{data_dir}: no BURST split file ({names})")
    # one split document in memory at a time
    docs = ((path.stem, _load_json(path), str(path)) for path in paths if path.exists())
    with _gc_paused():
        annotations = parse_burst(docs, categories)
    annotations.data_dir = data_dir
    for split in SPLITS:
        if split not in annotations.missing_splits:
            _warn_if_empty(annotations, split, data_dir / f"{split}.json")
    annotations.images_root = find_images_root(data_dir, annotations)
    return annotations


def _warn_if_empty(annotations: BurstAnnotations, split: str, path: Path) -> None:
    """Warn when the split file ``path`` lists no sequence or no annotated frame."""
    sequences = np.flatnonzero(annotations.seq_split == split)
    if len(sequences) == 0:
        warn(f"{path}: no sequences")
    elif not np.isin(annotations.frame_seq, sequences).any():
        warn(f"{path}: {len(sequences)} sequences but no annotated frame")


def read_categories(path: Path) -> dict[int, str]:
    """``categories.json`` (LVIS-style list of ``{"id", "name", ...}``) -> id -> name."""
    if not path.exists():
        raise MissingError(f"{path}: category list not found")
    doc = _load_json(path)
    if not isinstance(doc, list):
        raise BurstFormatError(f"{path}: expected a list of categories")
    categories = {}
    for index, item in enumerate(doc):
        if not isinstance(item, dict) or not {"id", "name"} <= item.keys():
            raise BurstFormatError(f"{path}: category #{index}: missing field 'id' or 'name'")
        if not _is_category_id(item["id"]):
            raise BurstFormatError(f"{path}: category #{index}: field 'id' is not an integer")
        categories[item["id"]] = str(item["name"])
    return categories


def parse_burst(docs: Iterable[tuple[str, dict, str]],
                categories: dict[int, str]) -> BurstAnnotations:
    """Build the frame table from loaded split documents: (split, document, file name) in
    :data:`SPLITS` order, each split at most once. Warns about duplicate videos.

    The work per frame and per mask runs in C (``map``, ``list.extend``, numpy): the Python
    loop runs once per sequence."""
    seq_cols: dict[str, list] = {"split": [], "dataset": [], "id": [], "name": [], "group": []}
    first_copy: dict[tuple, tuple[int, str]] = {}  # frames -> (first sequence index, where)
    frames_per_seq: list[int] = []
    frame_image: list[str] = []
    masks_per_frame: list[int] = []
    mask_category: list[int] = []
    unknown: dict[int, str] = {}
    seen_splits = []
    for split, doc, file in docs:
        seen_splits.append(split)
        sequences = _sorted_sequences(doc, file)
        del doc  # with ``sequences`` below: one split's parsed JSON in memory at a time
        for seq in sequences:
            where = f"{file}: sequence id={seq['id']} ({seq['seq_name']})"
            tracks = _track_categories(seq, where)
            for category in tracks.values():
                if category not in categories and category not in unknown:
                    unknown[category] = where
            images = list(map(str, seq["annotated_image_paths"]))
            seq_index = len(seq_cols["id"])
            frames_key = (seq["dataset"], seq["seq_name"], *images)
            group, first = first_copy.setdefault(frames_key, (seq_index, where))
            if group != seq_index:
                warnings.warn(f"duplicate video: {where} has the same annotated frames as "
                              f"{first}; both copies stay and go to one stratum (seq_group)",
                              stacklevel=2)
            for col, value in zip(seq_cols, (split, seq["dataset"], seq["id"], seq["seq_name"],
                                             group), strict=True):
                seq_cols[col].append(value)
            frames_per_seq.append(len(images))
            frame_image.extend(images)
            masks, cats = _mask_categories(seq["segmentations"], tracks, images, where)
            masks_per_frame.extend(masks)
            mask_category.extend(cats)
        del sequences
    offsets, category, count = _frame_entries(np.asarray(masks_per_frame, dtype=np.int64),
                                              np.asarray(mask_category, dtype=np.int64))
    prefixes = [f"{split}/{dataset}/{name}/" for split, dataset, name
                in zip(seq_cols["split"], seq_cols["dataset"], seq_cols["name"], strict=True)]
    return BurstAnnotations(
        categories=categories,
        seq_split=np.asarray(seq_cols["split"], dtype=str),
        seq_dataset=np.asarray(seq_cols["dataset"], dtype=str),
        seq_id=np.asarray(seq_cols["id"], dtype=np.int64),
        seq_name=np.asarray(seq_cols["name"], dtype=str),
        seq_group=np.asarray(seq_cols["group"], dtype=np.int64),
        seq_prefix=np.asarray(prefixes, dtype=str),
        frame_seq=np.repeat(np.arange(len(frames_per_seq), dtype=np.int64), frames_per_seq),
        frame_image=np.asarray(frame_image, dtype=str),
        offsets=offsets, category=category, count=count,
        unknown_categories=dict(sorted(unknown.items())),
        missing_splits=tuple(s for s in SPLITS if s not in seen_splits),
    )


def _mask_categories(segmentations: list, tracks: dict[str, int], images: list[str],
                     where: str) -> tuple[list[int], list[int]]:
    """(masks per frame, category of every mask in frame order) of one sequence.

    ``dict.__len__`` rejects an entry that is not an object and ``tracks.__getitem__`` a track
    id absent from ``tracks``; :func:`_check_segmentations` then names the first bad entry."""
    try:
        return (list(map(dict.__len__, segmentations)),
                list(map(tracks.__getitem__, chain.from_iterable(segmentations))))
    except (TypeError, KeyError):
        _check_segmentations(segmentations, tracks, images, where)
        raise


def _check_segmentations(segmentations: list, tracks: dict[str, int], images: list[str],
                         where: str) -> None:
    """Raise :class:`BurstFormatError` for the first entry of ``segmentations`` that is not an
    object of track ids listed in ``tracks``."""
    for position, entry in enumerate(segmentations):
        if type(entry) is not dict:
            raise BurstFormatError(f"{where}, field 'segmentations[{position}]': "
                                   "expected an object mapping track ids to masks")
        for track in entry:
            if track not in tracks:
                raise BurstFormatError(
                    f"{where}, field 'segmentations[{position}]' ({images[position]}): track "
                    f"id {track!r} is absent from 'track_category_ids'")


def find_images_root(data_dir: Path, annotations: BurstAnnotations,
                     sample: int = 64) -> Path | None:
    """The candidate of :data:`IMAGE_ROOTS` holding most of a sample of annotated frames
    (up to ``sample`` frames spread evenly over the table); ``None`` if none holds any."""
    if annotations.n_frames == 0:
        return None
    picks = np.unique(np.linspace(0, annotations.n_frames - 1, sample).astype(int))
    hits = [sum((data_dir / root / path).is_file() for path in annotations.image_paths(picks))
            for root in IMAGE_ROOTS]
    best = int(np.argmax(hits))
    return (data_dir / IMAGE_ROOTS[best]).resolve() if hits[best] else None


def images_root_message(data_dir: Path | None) -> str:
    return (f"no frames found: neither {data_dir} nor {data_dir}/frames holds "
            "<split>/<dataset>/<seq_name>/<image> for the annotated frames")


def _load_json(path: Path):
    """The decoded JSON document in ``path`` (orjson: strict JSON, no NaN or Infinity)."""
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise BurstFormatError(f"{path}: unreadable JSON ({error})") from None


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: a decoded split file is a tree of millions of
    objects without cycles (freed by reference counting), which each collection would walk."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _is_category_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _sorted_sequences(doc, file: str) -> list[dict]:
    """The sequences of one split file, checked for required fields, sorted by id."""
    if not isinstance(doc, dict) or not isinstance(doc.get("sequences"), list):
        raise BurstFormatError(f"{file}: missing or invalid top-level field 'sequences'")
    seen: set[int] = set()
    for index, seq in enumerate(doc["sequences"]):
        if not isinstance(seq, dict):
            raise BurstFormatError(f"{file}: sequence #{index}: expected an object")
        where = f"{file}: sequence #{index} (id={seq.get('id')!r}, {seq.get('seq_name')!r})"
        missing = [name for name in REQUIRED_FIELDS if name not in seq]
        if missing:
            raise BurstFormatError(f"{where}: missing field(s) {', '.join(map(repr, missing))}")
        if not isinstance(seq["id"], int) or isinstance(seq["id"], bool):
            raise BurstFormatError(f"{where}, field 'id': expected an integer")
        if seq["id"] in seen:
            raise BurstFormatError(f"{where}, field 'id': duplicate sequence id")
        seen.add(seq["id"])
        for name in ("annotated_image_paths", "segmentations"):
            if not isinstance(seq[name], list):
                raise BurstFormatError(f"{where}, field {name!r}: expected a list")
        if len(seq["segmentations"]) != len(seq["annotated_image_paths"]):
            raise BurstFormatError(
                f"{where}, field 'segmentations': {len(seq['segmentations'])} entries but "
                f"{len(seq['annotated_image_paths'])} 'annotated_image_paths'")
    return sorted(doc["sequences"], key=lambda seq: seq["id"])


def _track_categories(seq: dict, where: str) -> dict[str, int]:
    tracks = seq["track_category_ids"]
    if not isinstance(tracks, dict):
        raise BurstFormatError(f"{where}, field 'track_category_ids': expected an object")
    for track, category in tracks.items():
        if not _is_category_id(category):
            raise BurstFormatError(f"{where}, field 'track_category_ids[{track!r}]': "
                                   f"category id {category!r} is not a non-negative integer")
    return tracks


def _frame_entries(masks_per_frame: np.ndarray, mask_category: np.ndarray):
    """Per-mask categories -> CSR (offsets (F + 1,), category (E,), count (E,))."""
    n_frames = len(masks_per_frame)
    mask_frame = np.repeat(np.arange(n_frames, dtype=np.int64), masks_per_frame)
    stride = int(mask_category.max(initial=0)) + 1
    # already sorted by frame: a stable sort (merging runs) is several times faster than unique
    keys = np.sort(mask_frame * stride + mask_category, kind="stable")
    starts = np.flatnonzero(np.diff(keys, prepend=-1))  # first mask of each entry (keys >= 0)
    frame, category = np.divmod(keys[starts], stride)
    offsets = np.zeros(n_frames + 1, dtype=np.int64)
    np.cumsum(np.bincount(frame, minlength=n_frames), out=offsets[1:])
    return offsets, category, np.diff(np.r_[starts, len(keys)])
