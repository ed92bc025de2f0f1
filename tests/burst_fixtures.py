"""Generated data sets in the exact BURST on-disk format: split files, categories, frames.

A sequence is described by its tracks (track id -> category id) and, per annotated frame, the
track ids visible in it; :func:`sequence_json` turns that into the real BURST sequence object
(RLE strings, ``is_gt``, ``score``, ``all_image_paths`` with unannotated frames in between, ...).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blockident.data.burst import SPLITS

TAO_CATEGORIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "tao_categories.json"
DATASETS = ("ArgoVerse", "BDD", "Charades", "LaSOT", "YFCC100M", "AVA", "HACS")


@dataclass
class Seq:
    """One video: ``tracks`` track id -> category id; ``frames`` track ids per annotated frame."""

    id: int
    tracks: dict[int, int]
    frames: list[list[int]]
    dataset: str = "YFCC100M"
    seq_name: str = ""
    unannotated_per_frame: int = 0  # extra frames in all_image_paths after each annotated one

    def __post_init__(self):
        self.seq_name = self.seq_name or f"v_{self.id:04d}"

    def images(self) -> list[str]:
        return [f"frame{i * (self.unannotated_per_frame + 1):05d}.jpg"
                for i in range(len(self.frames))]

    def all_images(self) -> list[str]:
        step = self.unannotated_per_frame + 1
        return [f"frame{i:05d}.jpg" for i in range(len(self.frames) * step)]


@dataclass
class Burst:
    """A whole data set: sequences per split and the category list."""

    splits: dict[str, list[Seq]]
    categories: list[dict] = field(default_factory=lambda: load_categories())


def load_categories(n: int = 40) -> list[dict]:
    """The real TAO/LVIS list when ../shared holds it, else ``n`` made-up categories."""
    if TAO_CATEGORIES.exists():
        return json.loads(TAO_CATEGORIES.read_text())
    return [{"id": i, "name": f"cat{i}", "synset": f"cat{i}.n.01", "synonyms": [f"cat{i}"],
             "def": "generated"} for i in range(1, n + 1)]


def sequence_json(seq: Seq) -> dict:
    """The BURST sequence object for ``seq``."""
    return {
        "id": seq.id, "dataset": seq.dataset, "seq_name": seq.seq_name, "fps": 30,
        "width": 64, "height": 48,
        "annotated_image_paths": seq.images(),
        "all_image_paths": seq.all_images(),
        "track_category_ids": {str(t): c for t, c in seq.tracks.items()},
        "segmentations": [
            {str(t): {"rle": f"{t}0PQ1O2N{t}b0", "is_gt": True, "score": 1.0} for t in visible}
            for visible in seq.frames],
        "neg_category_ids": [], "not_exhaustive_category_ids": [],
    }


def split_json(split: str, sequences: list[Seq], categories: list[dict]) -> dict:
    used = {c for seq in sequences for c in seq.tracks.values()}
    return {"split": split,
            "categories": {str(c["id"]): c["name"] for c in categories if c["id"] in used},
            "sequences": [sequence_json(seq) for seq in sequences]}


def write_burst(data_dir: Path, burst: Burst, frames_at: str | None = "frames",
                all_frames: bool = False) -> Path:
    """Write ``burst`` to ``data_dir``; frames under ``data_dir/frames`` (``"frames"``),
    ``data_dir`` (``"root"``) or nowhere (``None``); ``all_frames`` also writes the
    unannotated frames of ``all_image_paths``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "categories.json").write_text(json.dumps(burst.categories))
    for split, sequences in burst.splits.items():
        doc = split_json(split, sequences, burst.categories)
        (data_dir / f"{split}.json").write_text(json.dumps(doc))
    if frames_at is not None:
        root = data_dir / "frames" if frames_at == "frames" else data_dir
        jpeg = tiny_jpeg()
        for split, sequences in burst.splits.items():
            for seq in sequences:
                folder = root / split / seq.dataset / seq.seq_name
                folder.mkdir(parents=True, exist_ok=True)
                for image in seq.all_images() if all_frames else seq.images():
                    (folder / image).write_bytes(jpeg)
    return data_dir


def tiny_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (120, 30, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def random_burst(seed: int, n_sequences: int = 12, n_categories: int = 8,
                 max_frames: int = 6, max_tracks: int = 4, first_category: int = 1) -> Burst:
    """Random sequences over ``n_categories`` category ids (skewed frequencies, empty frames,
    repeated categories within a frame), spread over the three splits and the seven datasets."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_categories + 1)
    splits: dict[str, list[Seq]] = {s: [] for s in SPLITS}
    for i in range(n_sequences):
        n_tracks = int(rng.integers(0, max_tracks + 1))
        cats = rng.choice(n_categories, size=n_tracks, p=weights / weights.sum()) + first_category
        tracks = {int(t) + 1: int(c) for t, c in enumerate(cats)}
        frames = [sorted(int(t) for t in rng.choice(list(tracks), rng.integers(0, n_tracks + 1),
                                                    replace=False)) if tracks else []
                  for _ in range(int(rng.integers(1, max_frames + 1)))]
        seq = Seq(id=100 + 3 * i, tracks=tracks, frames=frames, dataset=DATASETS[i % 7])
        splits[SPLITS[i % 3]].append(seq)
    return Burst(splits=splits, categories=load_categories(max(n_categories, 40)))


def parsed(burst: Burst):
    """``burst`` read through the JSON round trip, without touching the disk."""
    from blockident.data.burst import parse_burst

    docs = [(split, json.loads(json.dumps(split_json(split, seqs, burst.categories))),
             f"{split}.json") for split in SPLITS if (seqs := burst.splits.get(split)) is not None]
    return parse_burst(docs, {c["id"]: c["name"] for c in burst.categories})
