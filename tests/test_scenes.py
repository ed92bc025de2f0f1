"""Generated scenes: BURST format, masks, appearance, determinism, reuse and the command."""

import json
from dataclasses import replace
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from blockident.cli import main
from blockident.data import rle
from blockident.data.burst import SPLITS, read_burst
from blockident.data.scenes import (
    MANIFEST,
    SceneConfig,
    category_list,
    ensure_scenes,
    generate_scenes,
    render_frame,
    sample_video,
)

TINY = SceneConfig(videos=6, frames=4, size=32, seed=3)
JSON_FILES = [f"{split}.json" for split in SPLITS] + ["categories.json", MANIFEST]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate_scenes(tmp_path_factory.mktemp("scenes") / "tiny", TINY, progress=False)


@pytest.fixture(scope="module")
def moderate(tmp_path_factory):
    """60 short videos: enough tracks for frequencies, entering/leaving and repeats."""
    config = SceneConfig(videos=60, frames=6, size=16, seed=0)
    return read_burst(generate_scenes(tmp_path_factory.mktemp("scenes") / "moderate", config,
                                      progress=False))


def sequences(out_dir):
    for split in SPLITS:
        yield from json.loads((out_dir / f"{split}.json").read_text())["sequences"]


def test_the_burst_reader_loads_the_generated_set(tiny):
    a = read_burst(tiny)
    assert a.images_root == (tiny / "frames").resolve()
    assert a.n_sequences == 6 and a.n_frames == 24
    assert a.unknown_categories == {} and a.missing_splits == ()
    assert sorted(a.seq_split.tolist()) == ["test", "train", "train", "train", "train", "val"]
    assert len(set(a.seq_name.tolist())) == 6
    for path in a.image_paths(absolute=True):
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and image.size == (32, 32)


def test_categories_file_and_split_files_agree(tiny):
    entries = json.loads((tiny / "categories.json").read_text())
    assert [e["id"] for e in entries] == list(range(1, 21))
    assert all({"id", "name", "synset", "synonyms", "def"} <= e.keys() for e in entries)
    names = {str(e["id"]): e["name"] for e in entries}
    assert len(set(names.values())) == 20 and names["1"] == "red_solid_circle"
    for split in SPLITS:
        doc = json.loads((tiny / f"{split}.json").read_text())
        assert doc["split"] == split and doc["categories"] == names
    for seq in sequences(tiny):
        assert (seq["width"], seq["height"]) == (32, 32)
        assert seq["annotated_image_paths"] == seq["all_image_paths"] == [
            f"frame{t:04d}.jpg" for t in range(4)]
        assert set(map(str, seq["track_category_ids"].values())) <= names.keys()
        for entry in seq["segmentations"]:
            assert all(v["is_gt"] is True and v["score"] == 1.0 for v in entry.values())


def test_masks_decode_to_the_drawn_objects(tiny):
    checked = 0
    for seq in sequences(tiny):
        video = sample_video(TINY, seq["id"] - 1)
        assert seq["seq_name"] == video.seq_name
        tracks = {track.id: track for track in video.tracks}
        for t, entry in enumerate(seq["segmentations"]):
            image, masks = render_frame(video, t)
            decoded = {int(k): rle.decode(v["rle"], 32, 32) for k, v in entry.items()}
            assert decoded.keys() == masks.keys()
            for track, mask in masks.items():
                assert mask.any() and np.array_equal(decoded[track], mask)
                assert seq["track_category_ids"][str(track)] == tracks[track].category.id
                # the masked pixels show the track's colours (main or pattern) under the lighting
                category = tracks[track].category
                colours = np.clip(np.stack([category.rgb, category.pattern_rgb])
                                  * video.lighting, 0, 255)
                error = np.abs(image[mask][:, None].astype(float) - colours).max(-1).min(-1)
                assert np.mean(error < 40) > 0.99
                checked += 1
            for a, b in combinations(masks.values(), 2):
                assert not (a & b).any()
            folder = tiny / "frames" / video.split / video.dataset / video.seq_name
            on_disk = np.asarray(Image.open(folder / seq["annotated_image_paths"][t]))
            assert np.abs(on_disk.astype(int) - image).mean() < 8  # JPEG of the rendered frame
    assert checked > 10


def test_the_nearest_track_is_unoccluded():
    config = SceneConfig(videos=1, frames=3, size=48, seed=0, min_tracks=4, max_tracks=4)
    video = sample_video(config, 0)
    alone = replace(video, tracks=video.tracks[-1:])  # only the front track
    _, masks = render_frame(video, 1)
    _, front = render_frame(alone, 1)
    track = video.tracks[-1].id
    assert np.array_equal(masks.get(track, np.zeros((48, 48), bool)),
                          front.get(track, np.zeros((48, 48), bool)))


def test_same_seed_same_files_other_seed_other_files(tiny, tmp_path):
    again = generate_scenes(tmp_path / "again", TINY, progress=False)
    other = generate_scenes(tmp_path / "other", SceneConfig(videos=6, frames=4, size=32, seed=4),
                            progress=False)
    for name in JSON_FILES:
        assert (tiny / name).read_bytes() == (again / name).read_bytes()
    assert (tiny / "train.json").read_bytes() != (other / "train.json").read_bytes()
    images = sorted(p.relative_to(tiny) for p in (tiny / "frames").rglob("*.jpg"))
    assert images == sorted(p.relative_to(again) for p in (again / "frames").rglob("*.jpg"))
    for path in images:
        assert np.array_equal(np.asarray(Image.open(tiny / path)),
                              np.asarray(Image.open(again / path)))
    path = images[0]
    assert not np.array_equal(np.asarray(Image.open(tiny / path)),
                              np.asarray(Image.open(other / path)))


def test_category_frequencies_are_long_tailed(moderate):
    frequencies = moderate.category_frequencies().sort_values(ascending=False)
    assert set(frequencies.index) <= set(range(1, 21))
    assert frequencies.iloc[0] > 2 * frequencies.median()
    assert frequencies.iloc[:6].sum() > 0.5 * frequencies.sum()
    assert frequencies.idxmax() in (1, 2)


def test_tracks_enter_and_leave_and_categories_repeat(moderate):
    assert moderate.count.max() >= 2  # two instances of one category in a frame
    absent = present = 0
    for seq in sequences(moderate.data_dir):
        for track in seq["track_category_ids"]:
            visible = [track in entry for entry in seq["segmentations"]]
            absent += not all(visible)
            present += any(visible)
    assert absent > 0 and present == sum(len(s["track_category_ids"])
                                         for s in sequences(moderate.data_dir))


def test_categories_differ_in_at_least_two_attributes():
    categories = category_list(32)
    assert [c.id for c in categories] == list(range(1, 33))
    for a, b in combinations(categories, 2):
        differ = (a.shape != b.shape) + (a.colour != b.colour) + (a.pattern != b.pattern)
        assert differ >= 2, (a.name, b.name)
    every = category_list(256)
    assert len({c.name for c in every}) == 256 and every[:32] == categories


def test_ensure_scenes_reuses_a_matching_set_and_regenerates_otherwise(tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    ensure_scenes(out, TINY, progress=False)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert ensure_scenes(out, TINY, progress=False) == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps

    shorter = SceneConfig(videos=3, frames=2, size=32, seed=3)
    ensure_scenes(out, shorter, progress=False)
    assert json.loads((out / MANIFEST).read_text())["config"]["frames"] == 2
    a = read_burst(out)
    assert a.n_sequences == 3 and a.n_frames == 6
    assert len(list((out / "frames").rglob("*.jpg"))) == 6  # the old frames are gone
    assert (out / "notes.txt").read_text() == "mine"


def test_ensure_scenes_leaves_foreign_data_alone(tmp_path):
    (tmp_path / "train.json").write_text("{}")
    with pytest.raises(FileExistsError, match="not written by the scene generator"):
        ensure_scenes(tmp_path, TINY, progress=False)
    (tmp_path / MANIFEST).write_text('{"something": "else"}')
    with pytest.raises(FileExistsError, match="not a manifest"):
        ensure_scenes(tmp_path, TINY, progress=False)
    assert (tmp_path / "train.json").read_text() == "{}"


def test_an_incomplete_set_is_regenerated(tiny, tmp_path):
    out = generate_scenes(tmp_path / "set", TINY, progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "complete": False}))
    (out / "val.json").unlink()
    ensure_scenes(out, TINY, progress=False)
    for name in JSON_FILES:
        assert (tiny / name).read_bytes() == (out / name).read_bytes()


def test_prepare_scenes_command(tmp_path, capsys):
    args = ["prepare", "scenes", str(tmp_path / "set"), "--videos", "5", "--frames", "2",
            "--size", "24", "--seed", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "wrote in" in out and "instances" in out and "top-6 categories" in out
    assert read_burst(tmp_path / "set").n_frames == 10
    assert main(args) == 0 and "reused" in capsys.readouterr().out


@pytest.mark.parametrize("option, message", [
    (["--videos", "0"], "videos must be >= 1"),
    (["--size", "8"], "size must be >= 16"),
    (["--categories", "300"], "categories must be in 1..256"),
    (["--frames", "two"], "invalid int value"),
    (["--min-visible", "1.5"], "min_visible must be in [0, 1)"),
    (["--object-size", "0.5", "0.2"], "object_size must be (low, high)"),
])
def test_prepare_scenes_rejects_bad_arguments(tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "scenes", str(tmp_path / "set"), *option])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "set").exists()


def test_config_validation():
    with pytest.raises(ValueError, match="min_tracks"):
        SceneConfig(min_tracks=3, max_tracks=2)
    with pytest.raises(ValueError, match="object_size"):
        SceneConfig(object_size=(0.5, 0.2))
    with pytest.raises(ValueError, match="seed"):
        SceneConfig(seed=-1)


def test_tracks_smaller_than_min_visible_are_not_annotated():
    config = SceneConfig(videos=1, frames=12, size=32, seed=2, min_tracks=4, max_tracks=4,
                         object_size=(0.1, 0.5))
    strict = replace(config, min_visible=0.05)
    video, strict_video = sample_video(config, 0), sample_video(strict, 0)
    dropped = 0
    for t in range(config.frames):
        image, masks = render_frame(video, t)
        strict_image, strict_masks = render_frame(strict_video, t)
        assert np.array_equal(image, strict_image)  # the same pixels, fewer annotations
        assert all(m.sum() >= 0.05 * 32 * 32 for m in strict_masks.values())
        assert {k: m for k, m in masks.items() if m.sum() >= 0.05 * 32 * 32}.keys() \
            == strict_masks.keys()
        dropped += len(masks) - len(strict_masks)
    assert dropped > 0


def test_a_short_scenes_run_identifies_content_not_style(tmp_path):
    """A few seconds of training already move content above the untrained network and above
    style (mean balanced accuracy of the multi-label MLP readout)."""
    run_dir = tmp_path / "run"
    assert main(["run", "experiment=scenes", f"data.root={tmp_path / 'scenes'}",
                 f"run_dir={run_dir}", "data.generate.videos=400", "data.generate.frames=4",
                 "data.generate.size=32", "data.size=32", "data.generate.categories=8",
                 "pairs.k=4", "data.batch_size=64", "trainer.max_steps=150",
                 "trainer.val_check_interval=50", "checkpoint_every=150", "readout.every=null",
                 "readout.control=none", "trainer.enable_progress_bar=false"]) == 0
    summary = pd.read_csv(run_dir / "summary.csv").set_index("kind")
    content, style = summary.loc["content"], summary.loc["style"]
    assert content["trained"] > content["untrained"] + 0.05
    assert content["trained"] > style["trained"] + 0.05
