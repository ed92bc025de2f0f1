"""BURST reader, images-root detection, malformed input and ``blockident prepare burst``."""

import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockident.cli import main
from blockident.data.burst import SPLITS, BurstFormatError, read_burst, read_categories
from burst_fixtures import (
    DATASETS,
    TAO_CATEGORIES,
    Burst,
    Seq,
    parsed,
    random_burst,
    write_burst,
)

# video 7 (train): tracks 1 (cat 4), 2 (cat 4), 3 (cat 9); frame 2 has no objects
SMALL = Burst(splits={
    "train": [Seq(7, {1: 4, 2: 4, 3: 9}, [[1, 2, 3], [3], []], "BDD", "b1d0"),
              Seq(2, {5: 4}, [[5]], "LaSOT", "cat-3")],
    "val": [Seq(3, {1: 9}, [[1], [1]], "AVA", "clip")],
    "test": [Seq(1, {}, [[]], "HACS", "Walking_dog")],
})


def test_frame_table_holds_every_annotated_frame_with_categories_and_counts(tmp_path):
    a = read_burst(write_burst(tmp_path, SMALL))
    t = a.table()
    assert len(t) == a.n_frames == 7 and a.n_sequences == 4
    # canonical order: train, val, test; sequences by id within a split
    assert t["sequence"].tolist() == [2, 7, 7, 7, 3, 3, 1]
    assert t["split"].tolist() == ["train"] * 4 + ["val"] * 2 + ["test"]
    row = t.iloc[1]
    assert (row["dataset"], row["seq_name"], row["image"]) == (
        "BDD", "b1d0", "train/BDD/b1d0/frame00000.jpg")
    assert row["categories"] == (4, 9) and row["instances"] == (2, 1)
    assert t.iloc[3]["categories"] == () and t.iloc[6]["categories"] == ()  # empty frames stay
    assert np.array_equal(np.diff(a.offsets), [1, 2, 1, 0, 1, 1, 0])
    assert a.category_frequencies().to_dict() == {4: 3, 9: 4}
    assert a.unknown_categories == {} and a.missing_splits == ()


def test_file_order_does_not_change_the_table(tmp_path):
    shuffled = Burst(splits={s: list(reversed(v)) for s, v in reversed(SMALL.splits.items())})
    a, b = read_burst(write_burst(tmp_path / "a", SMALL)), read_burst(
        write_burst(tmp_path / "b", shuffled))
    for name in ("seq_id", "frame_seq", "offsets", "category", "count"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(a.image_paths(), b.image_paths())


@pytest.mark.parametrize("frames_at, root", [("root", "."), ("frames", "frames"), (None, None)])
def test_images_root_is_detected(tmp_path, frames_at, root):
    a = read_burst(write_burst(tmp_path, SMALL, frames_at=frames_at))
    expected = None if root is None else (tmp_path / root).resolve()
    assert a.images_root == expected
    if root is not None:
        assert all(p.startswith(str(expected)) for p in a.image_paths(absolute=True))
        assert all((expected / p).is_file() for p in a.image_paths())
    else:
        with pytest.raises(FileNotFoundError, match="neither"):
            a.image_paths(absolute=True)


def test_missing_split_files_are_listed_and_no_split_is_an_error(tmp_path):
    a = read_burst(write_burst(tmp_path, Burst(splits={"val": SMALL.splits["val"]})))
    assert a.missing_splits == ("train", "test") and a.n_frames == 2
    for split in ("val",):
        (tmp_path / f"{split}.json").unlink()
    with pytest.raises(FileNotFoundError, match="no BURST split file"):
        read_burst(tmp_path)
    (tmp_path / "categories.json").unlink()
    with pytest.raises(FileNotFoundError, match="categories.json"):
        read_burst(tmp_path)


def test_category_ids_absent_from_categories_json_are_reported(tmp_path):
    burst = Burst(splits={"train": [Seq(5, {1: 4, 2: 99999}, [[1, 2]], "BDD", "x")]})
    a = read_burst(write_burst(tmp_path, burst))
    assert list(a.unknown_categories) == [99999]
    assert "train.json" in a.unknown_categories[99999] and "id=5" in a.unknown_categories[99999]


@pytest.mark.skipif(not TAO_CATEGORIES.exists(), reason="../shared/data not available")
def test_real_tao_category_list():
    categories = read_categories(TAO_CATEGORIES)
    assert len(categories) == 1230 and categories[1] == "acorn"


def _corrupt(tmp_path, edit):
    """Write SMALL, apply ``edit`` to train.json's second sequence (id 7), return the error."""
    write_burst(tmp_path, SMALL, frames_at=None)
    path = tmp_path / "train.json"
    doc = json.loads(path.read_text())
    edit(doc["sequences"][0])
    path.write_text(json.dumps(doc))
    with pytest.raises(BurstFormatError) as error:
        read_burst(tmp_path)
    return str(error.value)


@pytest.mark.parametrize("edit, field", [
    (lambda s: s.pop("track_category_ids"), "'track_category_ids'"),
    (lambda s: s.pop("seq_name"), "'seq_name'"),
    (lambda s: s["segmentations"].pop(), "'segmentations'"),
    (lambda s: s["track_category_ids"].pop("3"), "segmentations[0]"),
    (lambda s: s["track_category_ids"].update({"3": "dog"}), "track_category_ids['3']"),
    (lambda s: s["segmentations"].__setitem__(1, [1]), "segmentations[1]"),
    # not objects, although iterating them yields a valid track id
    (lambda s: s["segmentations"].__setitem__(1, ["3"]), "segmentations[1]"),
    (lambda s: s["segmentations"].__setitem__(2, "3"), "segmentations[2]"),
    (lambda s: s.update(id="seven"), "'id'"),
])
def test_malformed_sequences_name_file_sequence_and_field(tmp_path, edit, field):
    message = _corrupt(tmp_path, edit)
    assert "train.json" in message and field in message
    assert "id=7" in message or "id='seven'" in message
    if "seq_name" not in field:
        assert "b1d0" in message


def test_track_id_missing_names_the_track_and_image(tmp_path):
    message = _corrupt(tmp_path, lambda s: s["track_category_ids"].pop("3"))
    assert "'3'" in message and "frame00000.jpg" in message


def test_the_first_malformed_frame_is_named(tmp_path):
    def edit(seq):  # frame 0: unknown track; frame 1: not an object
        seq["segmentations"][0]["8"] = seq["segmentations"][0]["1"]
        seq["segmentations"][1] = ["3"]

    message = _corrupt(tmp_path, edit)
    assert "segmentations[0]" in message and "'8'" in message


def test_duplicate_sequence_ids_and_unreadable_json(tmp_path):
    message = _corrupt(tmp_path, lambda s: s.update(id=2))
    assert "duplicate" in message and "train.json" in message
    (tmp_path / "val.json").write_text('{"split": "val", "sequences": [')
    (tmp_path / "train.json").write_text(json.dumps({"split": "train", "sequences": []}))
    with pytest.raises(BurstFormatError, match=r"val.json: unreadable JSON"):
        read_burst(tmp_path)
    (tmp_path / "val.json").write_bytes(b'{"split": "val\xff", "sequences": []}')
    with pytest.raises(BurstFormatError, match=r"val.json: unreadable JSON .*UTF-8"):
        read_burst(tmp_path)
    (tmp_path / "val.json").write_text('{"split": "val"}')
    with pytest.raises(BurstFormatError, match=r"val.json: .*'sequences'"):
        read_burst(tmp_path)
    (tmp_path / "categories.json").write_text('[{"name": "x"}]')
    with pytest.raises(BurstFormatError, match=r"categories.json: category #0"):
        read_burst(tmp_path)


def test_duplicate_videos_warn_naming_both_copies_and_share_a_group(tmp_path):
    video = SMALL.splits["train"][0]  # id 7, BDD/b1d0
    copy = Seq(11, video.tracks, video.frames, video.dataset, video.seq_name)
    again = Seq(5, {1: 9, 2: 9, 3: 9}, video.frames, video.dataset, video.seq_name)  # relabelled
    other_frames = Seq(12, video.tracks, video.frames[:2], video.dataset, video.seq_name)
    burst = Burst(splits={"train": [*SMALL.splits["train"], copy, other_frames],
                          "val": [*SMALL.splits["val"], again], "test": SMALL.splits["test"]})
    with pytest.warns(UserWarning, match="duplicate video") as caught:
        a = read_burst(write_burst(tmp_path, burst, frames_at=None))
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert all("train.json: sequence id=7 (b1d0)" in m for m in messages)
    assert "train.json: sequence id=11 (b1d0)" in messages[0]
    assert "val.json: sequence id=5 (b1d0)" in messages[1]
    # canonical order: train 2, 7, 11, 12; val 3, 5; test 1
    assert a.seq_id.tolist() == [2, 7, 11, 12, 3, 5, 1]
    assert a.seq_group.tolist() == [0, 1, 1, 3, 4, 1, 6]


def test_unique_videos_do_not_warn(tmp_path, recwarn):
    a = read_burst(write_burst(tmp_path, SMALL, frames_at=None))
    assert a.seq_group.tolist() == list(range(a.n_sequences)) and not recwarn.list


def test_large_random_set_matches_a_direct_count(tmp_path):
    burst = random_burst(3, n_sequences=60)
    a = read_burst(write_burst(tmp_path, burst, frames_at=None))
    expected = {}
    for split in ("train", "val", "test"):
        for seq in sorted(burst.splits[split], key=lambda s: s.id):
            for frame in seq.frames:
                cats = [seq.tracks[t] for t in frame]
                key = f"{split}/{seq.dataset}/{seq.seq_name}"
                expected.setdefault(key, []).append({c: cats.count(c) for c in cats})
    got = {}
    for _, row in a.table().iterrows():
        key = row["image"].rsplit("/", 1)[0]
        got.setdefault(key, []).append(dict(zip(row["categories"], row["instances"], strict=True)))
    assert got == expected


@st.composite
def bursts(draw) -> Burst:
    """Up to 8 videos with unique ids over the three splits; up to 4 tracks over 5 categories,
    up to 5 frames each showing any subset of the tracks."""
    ids = draw(st.lists(st.integers(0, 99), unique=True, max_size=8))
    splits: dict[str, list[Seq]] = {split: [] for split in SPLITS}
    for seq_id in ids:
        tracks = draw(st.dictionaries(st.integers(1, 9), st.integers(1, 5), max_size=4))
        visible = st.lists(st.sampled_from(sorted(tracks)), unique=True) if tracks else st.just([])
        frames = draw(st.lists(visible, max_size=5))
        seq = Seq(seq_id, tracks, frames, draw(st.sampled_from(DATASETS[:2])),
                  draw(st.sampled_from(["", "clip"])))  # "": v_<id>; "clip": duplicates
        splits[draw(st.sampled_from(SPLITS))].append(seq)
    return Burst(splits=splits)


def direct_table(burst: Burst) -> tuple[list[int], list[int], list[str], list[dict[int, int]]]:
    """Duplicate group of every sequence; sequence index, path and category -> masks of every
    frame; built one frame at a time."""
    groups, seqs, paths, entries = [], [], [], []
    ordered = [(split, seq) for split in SPLITS
               for seq in sorted(burst.splits[split], key=lambda seq: seq.id)]
    for index, (split, seq) in enumerate(ordered):
        groups.append(next(i for i, (_, other) in enumerate(ordered)
                           if (other.dataset, other.seq_name, other.images())
                           == (seq.dataset, seq.seq_name, seq.images())))
        for image, visible in zip(seq.images(), seq.frames, strict=True):
            seqs.append(index)
            paths.append(f"{split}/{seq.dataset}/{seq.seq_name}/{image}")
            entries.append(dict(Counter(seq.tracks[t] for t in visible)))
    return groups, seqs, paths, entries


@settings(max_examples=60, deadline=None)
@given(burst=bursts(), picks=st.lists(st.integers(0, 10**6), max_size=6))
def test_frame_table_matches_a_frame_by_frame_construction(burst, picks):
    groups, seqs, paths, entries = direct_table(burst)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = parsed(burst)
    assert a.seq_group.tolist() == groups
    assert sum("duplicate video" in str(w.message) for w in caught) == sum(
        g != i for i, g in enumerate(groups))
    assert a.frame_seq.tolist() == seqs and a.image_paths().tolist() == paths
    got = [dict(zip(a.category[lo:hi].tolist(), a.count[lo:hi].tolist(), strict=True))
           for lo, hi in zip(a.offsets[:-1], a.offsets[1:], strict=True)]
    assert got == entries
    assert all(list(e) == sorted(e) for e in got)  # entries sorted by category id
    frames = np.asarray([p % len(paths) for p in picks] if paths else [], dtype=np.int64)
    assert a.image_paths(frames).tolist() == [paths[f] for f in frames]
    a.images_root = Path("/data/burst")
    assert a.image_paths(frames, absolute=True).tolist() == [
        f"/data/burst/{paths[f]}" for f in frames]


def test_prepare_burst_lists_then_deletes_unannotated_frames(tmp_path, capsys):
    burst = Burst(splits={"train": [Seq(1, {1: 4}, [[1], [1]], "BDD", "v", 2)]})
    data = write_burst(tmp_path, burst, frames_at="frames", all_frames=True)
    folder = data / "frames" / "train" / "BDD" / "v"
    (folder / "frame00000.jpg").unlink()  # an annotated frame missing on disk
    (folder / "notes.txt").write_text("not a frame")
    assert main(["prepare", "burst", str(data)]) == 0
    out = capsys.readouterr().out
    assert "annotated frames missing on disk: 1" in out and "train/BDD/v/frame00000.jpg" in out
    assert "frames no annotation references: 4" in out and "dry run" in out
    assert len(list(folder.glob("*.jpg"))) == 5  # dry run by default
    assert main(["prepare", "burst", str(data), "--delete"]) == 0
    assert "deleted 4 frames" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == ["frame00003.jpg", "notes.txt"]
    assert (data / "train.json").exists() and (data / "categories.json").exists()


def test_prepare_burst_with_frames_in_data_dir_keeps_annotation_files(tmp_path, capsys):
    burst = Burst(splits={"val": [Seq(1, {1: 4}, [[1]], "AVA", "v", 1)]})
    data = write_burst(tmp_path, burst, frames_at="root", all_frames=True)
    assert main(["prepare", "burst", str(data), "--delete"]) == 0
    assert "deleted 1 frames" in capsys.readouterr().out
    assert sorted(p.name for p in data.iterdir()) == ["categories.json", "val", "val.json"]


def test_prepare_burst_errors_are_reported(tmp_path, capsys):
    write_burst(tmp_path, SMALL, frames_at=None)
    assert main(["prepare", "burst", str(tmp_path)]) == 2
    assert "neither" in capsys.readouterr().err
    assert main(["prepare", "burst", str(tmp_path / "absent")]) == 2
    assert "categories.json" in capsys.readouterr().err
