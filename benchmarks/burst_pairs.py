"""Time reading BURST annotations and building the content/style pairs at BURST's size.

Generates a BURST-sized annotation set in the real on-disk format (default: 2,900 videos over
train/val/test, about 115,000 annotated frames, 400,000 masks, 482 categories with a long-tailed
frequency, tracks that persist over most of their video), then, in a fresh process, times

- ``read_burst`` (JSON parsing + the frame table), with the process's peak RSS after it;
- ``build_pairs`` (content/style choice, strata, sampling of all strata) for a few
  configurations, each with the peak RSS reached during it (Linux: the peak is reset through
  ``/proc/self/clear_refs`` before each) and the memory it allocated (tracemalloc, separate run);
- ``PairSet.table()`` (the CSV table).

    .venv/bin/python benchmarks/burst_pairs.py [--dir DIR] [--videos 2900] [--rle-chars 80]

``benchmarks/pairs_command.py`` times the whole ``blockident pairs`` command on the same set
against a bare ``json.load`` of its split files.

RLE strings are placeholders of ``--rle-chars`` characters (their content does not matter to
the reader) and ``all_image_paths`` lists the annotated frames only, so reading is faster and
smaller than with the real files; the pairing does not depend on either.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

SPLIT_VIDEOS = {"train": 500, "val": 993, "test": 1419}  # BURST's split sizes (2,912 videos)
DATASETS = ("ArgoVerse", "BDD", "Charades", "LaSOT", "YFCC100M", "AVA", "HACS")
CONFIGS = {
    "k=20 n=1,2,3": {"k": 20, "n": (1, 2, 3)},
    "k=20 n=1,2,3 forbid": {"k": 20, "n": (1, 2, 3), "same_sequence": "forbid"},
    "k=50 n<=5 count_instances": {"k": 50, "n": (5,), "leq_n": True, "count_instances": True},
}


def generate(data_dir: Path, videos: int, frames: int, masks: int, categories: int,
             rle_chars: int, seed: int = 0) -> None:
    """Write categories.json and train/val/test.json of the given size to ``data_dir``."""
    rng = np.random.default_rng(seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    tao = Path(__file__).resolve().parents[2] / "shared" / "data" / "tao_categories.json"
    category_list = (json.loads(tao.read_text()) if tao.exists() else
                     [{"id": i, "name": f"c{i}", "synset": "", "synonyms": [], "def": ""}
                      for i in range(1, 1231)])
    (data_dir / "categories.json").write_text(json.dumps(category_list))
    ids = rng.choice([c["id"] for c in category_list], size=categories, replace=False)
    weights = 1.0 / np.arange(1, categories + 1) ** 1.2  # long tail, one dominant category
    weights /= weights.sum()
    scale = sum(SPLIT_VIDEOS.values()) / videos
    rle = "x" * rle_chars
    per_frame = masks / frames
    sequence_id, unseen = 0, ids.tolist()
    for split, count in SPLIT_VIDEOS.items():
        sequences = []
        for _ in range(round(count / scale)):
            n_frames = max(2, int(rng.gamma(2.0, frames / videos / 2.0)))
            n_tracks = max(1, rng.poisson(per_frame / 0.75))
            starts = rng.integers(0, max(1, n_frames // 4), n_tracks)
            stops = n_frames - rng.integers(0, max(1, n_frames // 4), n_tracks)
            drawn = rng.choice(ids, size=n_tracks, p=weights)
            for t in range(min(n_tracks, len(unseen))):  # every category occurs at least once
                drawn[t] = unseen.pop()
            tracks = {str(t + 1): int(c) for t, c in enumerate(drawn)}
            images = [f"{i * 30:06d}.jpg" for i in range(n_frames)]
            segmentations = [
                {str(t + 1): {"rle": rle, "is_gt": True, "score": 1.0}
                 for t in range(n_tracks) if starts[t] <= i < stops[t]}
                for i in range(n_frames)]
            dataset = DATASETS[sequence_id % len(DATASETS)]
            sequences.append({
                "id": sequence_id, "dataset": dataset, "seq_name": f"video_{sequence_id:05d}",
                "fps": 30, "width": 1280, "height": 720, "annotated_image_paths": images,
                "all_image_paths": images, "track_category_ids": tracks,
                "segmentations": segmentations, "neg_category_ids": [],
                "not_exhaustive_category_ids": []})
            sequence_id += 1
        doc = {"split": split, "categories": {str(c): "" for c in ids.tolist()},
               "sequences": sequences}
        (data_dir / f"{split}.json").write_text(json.dumps(doc))


def peak_rss_mib(reset: bool = False) -> float:
    """Peak resident memory of this process (VmHWM) in MiB; ``reset`` starts a new peak."""
    status = Path("/proc/self/status").read_text()
    peak = next(int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmHWM")) / 1024
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    return peak


def measure(data_dir: Path) -> None:
    """Time and measure reading and pairing (run in a fresh process)."""
    from blockident.data.burst import read_burst
    from blockident.pairs.categories import PairConfig, build_pairs

    start = time.perf_counter()
    annotations = read_burst(data_dir)
    read_s = time.perf_counter() - start
    gc.collect()
    print(f"read: {annotations.n_sequences} videos, {annotations.n_frames} frames, "
          f"{int(annotations.count.sum())} masks, {len(annotations.category_frequencies())} "
          f"categories in {read_s:.2f} s; peak RSS {peak_rss_mib(reset=True):.0f} MiB")
    print(f"RSS with the frame table loaded: {peak_rss_mib(reset=True):.0f} MiB")
    print("| configuration | build + sample all strata (s) | pairs | peak RSS (MiB) "
          "| allocated by build_pairs (MiB) | table() (s) |")
    print("|---|---|---|---|---|---|")
    for name, options in CONFIGS.items():
        config = PairConfig(**options)
        best = float("inf")
        for _ in range(3):
            peak_rss_mib(reset=True)
            start = time.perf_counter()
            pairs = build_pairs(annotations, config)
            best = min(best, time.perf_counter() - start)
            peak = peak_rss_mib()
        tracemalloc.start()
        build_pairs(annotations, config)
        allocated = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        start = time.perf_counter()
        pairs.table()
        table_s = time.perf_counter() - start
        print(f"| {name} | {best:.2f} | {len(pairs.pairs)} | {peak:.0f} | {allocated:.0f} "
              f"| {table_s:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="write/reuse the annotation set here")
    parser.add_argument("--videos", type=int, default=2900)
    parser.add_argument("--frames", type=int, default=115_000)
    parser.add_argument("--masks", type=int, default=400_000)
    parser.add_argument("--categories", type=int, default=482)
    parser.add_argument("--rle-chars", type=int, default=80)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.dir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.dir or Path(tmp)
        if not (data_dir / "test.json").exists():
            start = time.perf_counter()
            generate(data_dir, args.videos, args.frames, args.masks, args.categories,
                     args.rle_chars)
            size = sum(p.stat().st_size for p in data_dir.glob("*.json")) / 2**20
            print(f"generated {data_dir} ({size:.0f} MiB of JSON) in "
                  f"{time.perf_counter() - start:.1f} s")
        subprocess.run([sys.executable, __file__, "--measure", "--dir", str(data_dir)],
                       check=True)


if __name__ == "__main__":
    main()
