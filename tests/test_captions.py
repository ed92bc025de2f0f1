"""Captioned images in the RedCaps layout: reader, stand-in, caption neighbours, data module."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from blockident.cli import main
from blockident.data.captions import format as fmt
from blockident.data.captions.generate import BACKGROUNDS, generate_captions
from blockident.data.captions.module import CaptionPairsData
from blockident.data.images import BadImageError
from blockident.errors import ConfigError
from blockident.pairs import captions as cap

CAPTIONS = {"pics_2020_a1": {"x1": "a red circle", "x2": "a blue square"},
            "pics_2021_b2": {"y1": "my red circle", "y2": "the square is blue"},
            "aww_2020_c3": {"z1": "a cute dog", "z2": "a sleepy dog"}}


def write_instance(root, directory, instance, caption, image=True, record=None):
    folder = root / directory
    folder.mkdir(parents=True, exist_ok=True)
    if image:
        Image.new("RGB", (20, 16), (200, 10, 10)).save(folder / f"{instance}.jpg")
    if record is not False:
        (folder / f"{instance}.json").write_text(json.dumps(
            record if record is not None else {"caption": caption, "score": 3}))


@pytest.fixture
def layout(tmp_path):
    for directory, items in CAPTIONS.items():
        for instance, caption in items.items():
            write_instance(tmp_path, directory, instance, caption)
    return tmp_path


def bag_of_words(captions, model=None, cache_dir=None, batch_size=256, device=None):
    """A stand-in sentence embedder: normalised tf-idf word vectors."""
    words = [c.replace(",", " ").replace("!", " ").split() for c in captions]
    vocab = sorted({w for ws in words for w in ws})
    x = np.array([[ws.count(w) for w in vocab] for ws in words], np.float32)
    x *= np.log(len(x) / (x > 0).sum(0))
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.arange(len(captions))


# -- reader ---------------------------------------------------------------------------------------
def test_reader_builds_the_dictionary_once_and_caches_it(layout, monkeypatch):
    data = fmt.read_captions(layout)
    assert data.keys[0] == ("aww_2020_c3", "z1") and len(data) == 6
    index, skipped = fmt.read_index(layout)
    assert index["pics_2020_a1"]["x2"] == ["pics_2020_a1/x2.jpg", "a blue square"]
    assert skipped == 0 and (layout / fmt.CACHE).exists()
    monkeypatch.setattr(fmt, "_directory", lambda *a: pytest.fail("rescanned"))
    assert fmt.read_captions(layout).captions == data.captions
    monkeypatch.undo()
    write_instance(layout, "aww_2020_c3", "z3", "a dog again")  # a new file: rebuilt
    assert len(fmt.read_captions(layout)) == 7


@pytest.mark.parametrize("case, message", [
    (dict(image=True, record=False), r"z9\.jpg: image without z9\.json"),
    (dict(image=False), r"z9\.json: caption without an image"),
    (dict(image=True, record={"text": "no caption"}), r"z9\.json: no 'caption' key"),
    (dict(image=True, record={"caption": "  "}), r"z9\.json: empty caption"),
])
def test_bad_instances_name_the_file_or_are_counted_with_skip_bad(layout, case, message):
    write_instance(layout, "aww_2020_c3", "z9", "a dog", **case)
    with pytest.raises(fmt.FormatError, match=message):
        fmt.read_captions(layout)
    data = fmt.read_captions(layout, skip_bad=True)
    assert data.skipped == 1 and len(data) == 6


def test_generated_stand_in_records_every_factor_and_what_captions_mention(tmp_path):
    root = generate_captions(tmp_path / "cap", n=60, side=32, seed=1)
    data, factors = fmt.read_captions(root), fmt.read_factors(root)
    assert len(data) == 60 and set(factors.mentioned) == {"colour", "shape"}
    assert set(factors.names) == {"colour", "shape", "background", "size", "pos_x", "pos_y"}
    values = factors.for_keys(data.keys)
    for caption, row in zip(data.captions, values, strict=True):
        words = caption.replace(",", " ").replace("!", " ").split()
        assert factors.classes["colour"][int(row[0])] in words
        assert factors.classes["shape"][int(row[1])] in words
        assert not set(BACKGROUNDS) & set(words)
    assert all(d.rsplit("_", 2)[1] in ("2019", "2020") for d in data.directories)
    with pytest.raises(FileExistsError):
        generate_captions(root, n=5)


# -- caption neighbours ---------------------------------------------------------------------------
def test_scopes_parse_redcaps_directories():
    dirs = ["my_sub_2020_a", "my_sub_2021_b", "my_sub_2020_c", "other_2020_d"]
    groups = {s: cap.scope_groups(dirs, s).tolist() for s in cap.SCOPES}
    assert groups["global"] == [0, 0, 0, 0]
    assert len(set(groups["directory"])) == 4
    assert groups["subreddit"][:3] == [groups["subreddit"][0]] * 3 != groups["subreddit"][3:]
    s = groups["subreddit_year"]
    assert s[0] == s[2] and len({s[0], s[1], s[3]}) == 3
    with pytest.raises(ValueError, match="<subreddit>_<year>_<id>"):
        cap.scope_groups(["cc3m_shard0"], "subreddit")
    with pytest.raises(ValueError, match="scope must be one of"):
        cap.scope_groups(dirs, "year")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
                          st.integers(2008, 2021), st.from_regex(r"[a-z0-9]{1,3}", fullmatch=True)),
                min_size=1, max_size=12))
def test_two_directories_share_a_scope_group_iff_their_scope_keys_agree(parts):
    dirs = [f"{s}_{y}_{i}" for s, y, i in parts]
    keys = {"global": lambda p: 0, "directory": lambda p: p, "subreddit": lambda p: p[0],
            "subreddit_year": lambda p: p[:2]}
    for scope, key in keys.items():
        groups = cap.scope_groups(dirs, scope)
        for a in range(len(parts)):
            for b in range(len(parts)):
                assert (groups[a] == groups[b]) == (key(parts[a]) == key(parts[b]))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 30), groups=st.integers(1, 4), k=st.integers(1, 4),
       duplicates=st.booleans(), seed=st.integers(0, 2**16),
       device=st.sampled_from([None, "cpu"]), rows=st.sampled_from([3, 4096]))
def test_neighbours_are_the_exact_top_k_within_the_group_never_self(n, groups, k, duplicates,
                                                                     seed, device, rows):
    """faiss (device None) and the blocked torch search (blocks of ``rows`` queries)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    if duplicates:
        x[n // 2:] = x[: n - n // 2]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    group = rng.integers(groups, size=n)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cap, "SEARCH_ROWS", rows)
        neighbours, cosines = cap.nearest_captions(x, group, k, device=device)
    sims = x @ x.T
    for i in range(n):
        candidates = [j for j in range(n) if j != i and group[j] == group[i]]
        found = neighbours[i][neighbours[i] >= 0]
        assert i not in found and len(found) == min(k, len(candidates))
        assert all(group[j] == group[i] for j in found)
        best = np.sort(sims[i, candidates])[::-1][:len(found)]
        np.testing.assert_allclose(cosines[i, :len(found)], best, atol=1e-5)
        np.testing.assert_allclose(sims[i, found], best, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without CUDA")
def test_a_cuda_search_without_cuda_is_a_config_error():
    x = np.eye(3, dtype=np.float32)
    with pytest.raises(ConfigError, match="data.pairs.device=cuda"):
        cap.nearest_captions(x, np.zeros(3, np.int64), device="cuda")


def test_threshold_drops_far_neighbours():
    x = np.eye(3, dtype=np.float32)
    x[1] = [0.8, 0.6, 0]
    neighbours, _ = cap.nearest_captions(x, np.zeros(3, np.int64), k=1, threshold=0.5)
    assert neighbours[:, 0].tolist() == [1, 0, -1]


def test_zero_norm_captions_are_dropped(monkeypatch):
    fake = lambda captions, *a, **k: (np.eye(3, dtype=np.float32)[[0, 0, 1]],  # noqa: E731
                                      np.array([0, 2, 3]))
    monkeypatch.setattr(cap, "embed_captions", fake)
    pairs = cap.caption_pairs(["a", "a", "", "b"], ["d"] * 4, scope="global")
    assert pairs.neighbours[:, 0].tolist()[:3] == [2, -1, 0]
    assert pairs.records([("d", str(i)) for i in range(4)])[0] == [["d", "0"], ["d", "2"], 1.0]


def test_pairs_command_with_the_real_model_writes_the_file_and_caches_embeddings(layout, capsys,
                                                                                tmp_path):
    out = tmp_path / "caption_pairs.json"
    argv = ["pairs", "captions", str(layout), "--k", "1", "--scope", "subreddit",
            "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "identical nearest caption: 0.000" in printed and "cosine of the nearest" in printed
    records = {tuple(a): (tuple(b), c) for a, b, c in json.loads(out.read_text())}
    assert records[("pics_2020_a1", "x1")][0] == ("pics_2021_b2", "y1")  # red circle, same sub
    assert records[("aww_2020_c3", "z1")][0] == ("aww_2020_c3", "z2")
    assert all(0 < c <= 1.0001 for _, c in records.values())
    cached = list((layout / ".blockident_cache").glob("caption_embeddings_*.npz"))
    assert len(cached) == 1
    embeddings, kept = cap.embed_captions(fmt.read_captions(layout).captions,
                                          cache_dir=cached[0].parent)
    assert embeddings.shape == (6, 384) and kept.tolist() == list(range(6))
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)


# -- data module ---------------------------------------------------------------------------------
@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    monkeypatch.setattr(cap, "embed_captions", bag_of_words)
    return tmp_path / "standin"


def _module(root, **kwargs):
    options = dict(pairs={"k": 3}, batch_size=16, readout_max=40,
                   generate={"n": 200, "side": 32}, size=32)
    return CaptionPairsData(str(root), **(options | kwargs))


def test_module_pairs_caption_neighbours_drawn_per_epoch_from_the_top_k(stand_in):
    data = _module(stand_in)
    data.prepare()
    n = len(data.anchors)
    assert (stand_in / "factors.json").exists() and n == len(data.splits["encoder_train"])
    anchors = np.arange(n)
    first, again = data.partners(anchors, 0), data.partners(anchors, 0)
    assert (first == again).all() and (first != anchors).all()
    assert all(p in data.pairs.neighbours[a] for a, p in zip(anchors, first, strict=True))
    assert (data.partners(anchors, 1) != first).any()
    batch = data.batch_at(0)
    assert batch["view1"].shape == (16, 3, 32, 32) and batch["view1"].dtype == torch.uint8
    epoch = np.concatenate([data.batch_at(s)["view1"] for s in range(n // 16)])
    assert len(np.unique(epoch.reshape(len(epoch), -1), axis=0)) > 0.9 * len(epoch)
    assert (_module(stand_in, pairing="self").batch_at(0)["view2"]
            == _module(stand_in, pairing="self").batch_at(0)["view1"]).all()


def test_module_readouts_have_content_and_style_kinds_and_an_eval_set(stand_in, tmp_path):
    evals = tmp_path / "eval"
    for c, colour in (("cats", (250, 0, 0)), ("dogs", (0, 0, 250))):
        (evals / c).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (24, 24), colour).save(evals / c / f"{i}.png")
    splits = _module(stand_in, eval_root=str(evals)).readout_data()
    test = splits["test"]
    assert test.kinds == {"colour": "content", "shape": "content", "background": "style",
                          "size": "style", "pos_x": "style", "pos_y": "style", "class": "eval"}
    assert test.inputs["images"][1].shape == (30, 3, 32, 32)
    assert len(splits["train"].factors["class"]) == 14 and test.factors["class"].tolist() == [
        0, 0, 0, 1, 1, 1]
    assert {t.inputs for t in test.tasks} == {"images", "eval"}


def test_module_unreadable_image_is_named_or_skipped(stand_in):
    _module(stand_in).prepare()
    bad = sorted(stand_in.glob("*/*.jpg"))[3]
    bad.write_bytes(b"not a jpeg")
    for cached in (stand_in / ".blockident_cache").glob("images_*"):
        cached.unlink()
    with pytest.raises(BadImageError, match=bad.name):
        _module(stand_in).prepare()
    data = _module(stand_in, skip_bad=True)
    data.prepare()
    assert len(data.data) == 199 and bad not in data.data.paths
