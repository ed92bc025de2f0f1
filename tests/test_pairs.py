"""Content/style configuration, strata, pair sampling, statistics and ``blockident pairs``."""

import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockident.cli import main
from blockident.data.burst import SPLITS, read_burst
from blockident.pairs import stats
from blockident.pairs.categories import (
    CSV_COLUMNS,
    PairConfig,
    _unique_rows,
    build_pairs,
    select_content,
)
from blockident.pairs.strata import STRATA, assign_strata
from burst_fixtures import Burst, Seq, parsed, random_burst, write_burst

# category frequencies (instances): 4 -> 6 (in 2 frames), 9 -> 5 (5 frames), 2 -> 3, 3 -> 3
FREQ = Burst(splits={
    "train": [Seq(1, {1: 4, 2: 4, 3: 4}, [[1, 2, 3], [1, 2, 3]]),
              Seq(2, {1: 9, 2: 2}, [[1, 2], [1, 2], [1], [1], [1, 2]])],
    "test": [Seq(3, {1: 3}, [[1], [1], [1]])],
})


def frame_sets(ps, frames, categories):
    """Counter of categories (instances) among ``categories`` per frame."""
    a = ps.annotations
    return [Counter({c: m for c, m in zip(a.category[a.offsets[f]:a.offsets[f + 1]],
                                          a.count[a.offsets[f]:a.offsets[f + 1]], strict=True)
                     if c in set(categories.tolist())}) for f in frames]


def check_invariants(ps, config):
    a, pairs = ps.annotations, ps.pairs
    # content is the top-k set by instances, ties to the smaller id (or the explicit lists)
    if config.content_categories is None:
        freq = Counter()
        for cats, counts in zip(a.table()["categories"], a.table()["instances"], strict=True):
            freq.update(dict(zip(cats, counts, strict=True)))
        ranked = sorted(freq, key=lambda c: (-freq[c], c))
        assert ps.content.tolist() == sorted(ranked[:config.k])
        assert ps.style.tolist() == sorted(ranked[config.k:])
    # both frames show the same content set (multiset when counting instances), size allowed
    first, second = (frame_sets(ps, pairs[:, i], ps.content) for i in (0, 1))
    for x, y in zip(first, second, strict=True):
        assert set(x) == set(y) and len(x) > 0
        if config.count_instances:
            assert x == y
        number = sum(x.values()) if config.count_instances else len(x)
        assert number in config.allowed
    # no frame is used twice; pairs stay in the stratum of their sequences
    assert len(np.unique(pairs)) == pairs.size
    seq_stratum = ps.sequence_stratum[a.frame_seq[pairs]]
    assert (seq_stratum == ps.pair_stratum[:, None]).all()
    if config.same_sequence == "forbid":
        assert (a.frame_seq[pairs[:, 0]] != a.frame_seq[pairs[:, 1]]).all()
    else:  # every (stratum, content) group pairs all but at most one frame
        eligible = ps.frame_group >= 0
        key = ps.frame_stratum[eligible] * (len(ps.groups) + 1) + ps.frame_group[eligible]
        sizes = Counter(key.tolist())
        paired = Counter((ps.pair_stratum * (len(ps.groups) + 1) + ps.pair_group).tolist())
        assert all(paired[k] == n // 2 for k, n in sizes.items())


def test_content_is_top_k_by_instances_with_ties_to_the_smaller_id():
    a = parsed(FREQ)
    content, style = select_content(a, PairConfig(k=1))
    assert content.tolist() == [4] and style.tolist() == [2, 3, 9]  # 6 instances beat 5 frames
    content, style = select_content(a, PairConfig(k=3))
    assert content.tolist() == [2, 4, 9] and style.tolist() == [3]  # 2 and 3 tie: 2 wins
    content, style = select_content(a, PairConfig(k=50))
    assert content.tolist() == [2, 3, 4, 9] and style.tolist() == []


def test_explicit_content_and_style_lists():
    a = parsed(FREQ)
    ps = build_pairs(a, PairConfig(content_categories=[3, 9], style_categories=[4], n=[1]))
    assert ps.content.tolist() == [3, 9] and ps.style.tolist() == [4]
    table = ps.table()
    assert set(table["content"]) <= {"3", "9"}
    assert not table["style1"].str.contains("2").any()  # 2 is neither content nor style


@pytest.mark.parametrize("kwargs, match", [
    ({"content_categories": [1]}, "both"),
    ({"content_categories": [1, 2], "style_categories": [2]}, "both content and style"),
    ({"n": []}, "positive"), ({"n": [0, 1]}, "positive"), ({"k": 0}, "k must"),
    ({"same_sequence": "sometimes"}, "same_sequence"), ({"strata_weights": (1, 1)}, "4"),
])
def test_invalid_configurations(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PairConfig(**kwargs)


def test_n_leq_n_and_count_instances_choose_the_frames():
    a = parsed(FREQ)  # content {4, 9} with k=2
    numbers = build_pairs(a, PairConfig(k=2)).number.tolist()
    assert numbers == [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    instances = build_pairs(a, PairConfig(k=2, count_instances=True)).number.tolist()
    assert instances == [3, 3, 1, 1, 1, 1, 1, 0, 0, 0]
    assert PairConfig(n=[3], leq_n=True).allowed.tolist() == [1, 2, 3]
    assert PairConfig(n=[3, 1]).allowed.tolist() == [1, 3]
    ps = build_pairs(a, PairConfig(k=2, n=[3], count_instances=True, strata_weights=(1, 0, 0, 0)))
    assert sorted(ps.pairs[0].tolist()) == [0, 1] and len(ps.pairs) == 1  # the two 3x4 frames
    ps = build_pairs(a, PairConfig(k=2, n=[2], leq_n=True, count_instances=True,
                                   strata_weights=(1, 0, 0, 0)))
    assert len(ps.pairs) == 2 and all(ps.groups[g] == ((9, 1),) for g in ps.pair_group)
    ps = build_pairs(a, PairConfig(k=2, n=[2]))  # no frame shows two content categories
    assert len(ps.pairs) == 0 and (ps.frame_group == -1).all()


def test_frames_without_content_are_never_paired():
    a = parsed(FREQ)
    ps = build_pairs(a, PairConfig(k=1, n=[1, 2, 3], leq_n=True, strata_weights=(1, 0, 0, 0)))
    assert set(ps.pairs.ravel().tolist()) <= {0, 1}


def test_strata_are_deterministic_disjoint_by_video_and_follow_the_weights():
    a = parsed(random_burst(1, n_sequences=300, max_frames=8))
    s0, again, s1 = (assign_strata(a, seed=seed) for seed in (0, 0, 1))
    assert np.array_equal(s0, again) and not np.array_equal(s0, s1)
    frames = np.bincount(s0[a.frame_seq], minlength=4) / a.n_frames
    assert np.allclose(frames, [0.5, 1 / 6, 1 / 6, 1 / 6], atol=0.03)
    only = assign_strata(a, weights=(0, 0, 1, 0))
    assert (only == 2).all()
    by_k = [build_pairs(a, PairConfig(k=k, n=n)).sequence_stratum for k, n in ((1, (1,)),
                                                                               (5, (2, 3)))]
    assert np.array_equal(by_k[0], s0) and np.array_equal(by_k[1], s0)
    with pytest.raises(ValueError, match="non-negative"):
        assign_strata(a, weights=(1, -1, 1, 1))


def with_copies(burst, copies):
    """``burst`` with its first ``copies`` train videos listed again in val under new ids."""
    again = [Seq(9000 + i, seq.tracks, seq.frames, seq.dataset, seq.seq_name)
             for i, seq in enumerate(burst.splits["train"][:copies])]
    return Burst(splits={**burst.splits, "val": burst.splits["val"] + again},
                 categories=burst.categories)


def single_category_burst(seed, n_sequences):
    """Videos that each show one category (1-3 tracks of it, frames may be empty)."""
    rng = np.random.default_rng(seed)
    splits = {s: [] for s in SPLITS}
    for i in range(n_sequences):
        category = int(rng.choice([1, 2, 3, 4, 5, 6, 7, 8], p=[.3, .2, .15, .1, .1, .05, .05, .05]))
        tracks = {t: category for t in range(1, int(rng.integers(1, 4)) + 1)}
        frames = [sorted(rng.choice(list(tracks), int(rng.integers(0, len(tracks) + 1)),
                                    replace=False).tolist()) for _ in range(rng.integers(1, 6))]
        splits[SPLITS[i % 3]].append(Seq(10 + i, tracks, frames))
    return Burst(splits=splits)


def quietly_parsed(burst):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate videos
        return parsed(burst)


def category_strata(a, strata):
    """Observed category -> set of strata of the duplicate groups showing it, and group counts."""
    groups = a.seq_group[a.frame_seq[a.entry_frame]]
    pairs = set(zip(a.category.tolist(), groups.tolist(), strict=True))
    found, videos = {}, Counter()
    for category, group in pairs:
        found.setdefault(category, set()).add(int(strata[group]))
        videos[category] += 1
    return found, videos


WEIGHT = st.sampled_from([0.0, 0.5, 1.0, 3.0])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n_sequences=st.integers(0, 40), copies=st.integers(0, 4),
       weights=st.tuples(WEIGHT, WEIGHT.filter(bool), WEIGHT.filter(bool), WEIGHT),
       strata_seed=st.integers(0, 3))
def test_categories_in_two_videos_reach_both_readout_strata(seed, n_sequences, copies, weights,
                                                            strata_seed):
    # guaranteed when no video shows two categories (see the limit in pairs.strata)
    a = quietly_parsed(with_copies(single_category_burst(seed, n_sequences), copies))
    strata = assign_strata(a, weights, strata_seed)
    found, videos = category_strata(a, strata)
    for category, where in found.items():
        if videos[category] >= 2:
            assert {1, 2} <= where, (category, where)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n_sequences=st.integers(0, 40), copies=st.integers(0, 4),
       weights=st.tuples(WEIGHT, WEIGHT, WEIGHT, WEIGHT).filter(any),
       strata_seed=st.integers(0, 3))
def test_strata_keep_duplicates_together_skip_zero_weights_and_are_deterministic(
        seed, n_sequences, copies, weights, strata_seed):
    burst = with_copies(random_burst(seed, n_sequences=n_sequences, n_categories=12), copies)
    a = quietly_parsed(burst)
    strata = assign_strata(a, weights, strata_seed)
    assert strata.shape == (a.n_sequences,) and set(strata.tolist()) <= {
        j for j, w in enumerate(weights) if w > 0}
    assert np.array_equal(strata, strata[a.seq_group])  # every copy with its first copy
    assert np.array_equal(strata, assign_strata(quietly_parsed(burst), weights, strata_seed))


def test_rare_categories_go_first_to_the_readouts_then_to_the_encoder():
    # category 5 in two videos, 6 in three, 7 in ten; videos 30 and 31 show nothing
    seqs = ([Seq(i, {1: 5}, [[1]] * 2) for i in (1, 2)] + [Seq(i, {1: 6}, [[1]]) for i in (3, 4, 5)]
            + [Seq(i, {1: 7}, [[1]] * 3) for i in range(10, 20)] + [Seq(30, {}, [[]] * 4),
                                                                   Seq(31, {}, [[]])])
    a = parsed(Burst(splits={"train": seqs}))
    for seed in range(5):
        strata = dict(zip(a.seq_id.tolist(), assign_strata(a, seed=seed).tolist(), strict=True))
        assert sorted(strata[i] for i in (1, 2)) == [1, 2]
        assert sorted(strata[i] for i in (3, 4, 5)) == [0, 1, 2]
        assert {strata[i] for i in range(10, 20)} == {0, 1, 2, 3}
    # without readout strata, a rare category goes to encoder_train first, then by need
    strata = dict(zip(a.seq_id.tolist(), assign_strata(a, weights=(1, 0, 0, 1)).tolist(),
                      strict=True))
    assert sorted(strata[i] for i in (1, 2)) == [0, 3] and set(strata.values()) == {0, 3}


def test_duplicate_video_warns_naming_both_copies_and_shares_a_stratum(tmp_path):
    burst = random_burst(9, n_sequences=30)
    first = burst.splits["train"][2]
    copy = Seq(999, first.tracks, first.frames, first.dataset, first.seq_name)
    data = write_burst(tmp_path, Burst(splits={**burst.splits, "test": [*burst.splits["test"],
                                                                       copy]}), frames_at=None)
    with pytest.warns(UserWarning, match="duplicate video") as caught:
        a = read_burst(data)
    (message,) = [str(w.message) for w in caught]
    assert f"train.json: sequence id={first.id} ({first.seq_name})" in message
    assert f"test.json: sequence id=999 ({first.seq_name})" in message
    pair = np.flatnonzero(np.isin(a.seq_id, [first.id, 999]))
    for seed in range(20):
        stratum = build_pairs(a, PairConfig(k=3, seed=seed)).sequence_stratum[pair]
        assert stratum[0] == stratum[1]


def test_strata_and_pairs_do_not_depend_on_file_order():
    burst = random_burst(2, n_sequences=60)
    shuffled = Burst(splits={s: burst.splits[s][::-1] for s in ("test", "val", "train")},
                     categories=burst.categories)
    config = PairConfig(k=3, n=[1, 2], seed=5)
    a, b = (build_pairs(parsed(x), config) for x in (burst, shuffled))
    pd.testing.assert_frame_equal(a.table(), b.table())


def test_forbidding_same_sequence_pairs():
    burst = random_burst(4, n_sequences=40, max_frames=10, max_tracks=2)
    a = parsed(burst)
    allow = build_pairs(a, PairConfig(k=2, n=[1, 2]))
    forbid = build_pairs(a, PairConfig(k=2, n=[1, 2], same_sequence="forbid"))
    assert stats.summary(allow).loc["total", "same_video_pairs"] > 0
    assert stats.summary(forbid).loc["total", "same_video_pairs"] == 0
    check_invariants(forbid, forbid.config)
    # one video only: nothing can be paired
    single = Burst(splits={"train": [Seq(1, {1: 4}, [[1]] * 6)]})
    assert len(build_pairs(parsed(single), PairConfig(k=1, same_sequence="forbid")).pairs) == 0


def test_seed_changes_the_pairs_but_not_their_number_per_group():
    a = parsed(random_burst(5, n_sequences=80))
    x, y = (build_pairs(a, PairConfig(k=3, n=[1, 2], seed=s, strata_weights=(1, 0, 0, 0)))
            for s in (0, 1))
    assert not np.array_equal(x.pairs, y.pairs)
    assert len(x.pairs) == len(y.pairs)


def test_table_columns_and_multi_hot_labels():
    a = parsed(random_burst(6, n_sequences=50))
    ps = build_pairs(a, PairConfig(k=3, n=[1, 2, 3]))
    table = ps.table()
    assert tuple(table.columns) == CSV_COLUMNS and len(table) == len(ps.pairs)
    for column in ("content", "style1", "style2"):
        for value in table[column]:
            ids = [int(v) for v in value.split(";")] if value else []
            assert ids == sorted(set(ids))
    assert set(table["stratum"]) <= set(STRATA)
    readout = ps.table("readout_test")
    assert (readout["stratum"] == "readout_test").all()
    assert len(readout) == len(ps.stratum_pairs("readout_test"))
    frames = ps.pairs[:, 0]
    content = ps.multi_hot(frames, "content")
    style = ps.multi_hot(frames, "style")
    for row, c, s in zip(table.itertuples(), content, style, strict=True):
        assert ";".join(map(str, ps.content[c == 1])) == row.content
        assert ";".join(map(str, ps.style[s == 1])) == row.style1
    # style columns against the frames' entries, read one frame at a time
    style_ids = set(ps.style.tolist())
    for (first, second), row in zip(ps.pairs.tolist(), table.itertuples(), strict=True):
        for frame, value in ((first, row.style1), (second, row.style2)):
            cats = a.category[a.offsets[frame]:a.offsets[frame + 1]].tolist()
            assert value == ";".join(str(c) for c in cats if c in style_ids)
        assert row.image1 == a.image_paths([first])[0] and row.image2 == a.image_paths([second])[0]


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 30), width=st.integers(1, 4), high=st.integers(0, 3),
       seed=st.integers(0, 1000))
def test_unique_rows_matches_numpy_unique(rows, width, high, seed):
    keys = np.random.default_rng(seed).integers(-1, high + 1, size=(rows, width))
    unique, inverse = _unique_rows(keys)
    expected, expected_inverse = np.unique(keys, axis=0, return_inverse=True)
    assert np.array_equal(unique, expected)
    assert np.array_equal(inverse, expected_inverse.reshape(-1))


def test_summary_counts():
    a = parsed(FREQ)
    ps = build_pairs(a, PairConfig(k=2, n=[1], strata_weights=(1, 0, 0, 0)))
    total = stats.summary(ps).loc["total"]
    assert total.to_dict() == {"sequences": 3, "frames": 10, "eligible_frames": 7,
                               "content_combinations": 2, "pairs": 3, "same_video_pairs": 3}
    dist = stats.distributions(ps)
    assert dist["content_frequency"].to_dict() == {4: 6, 9: 5}
    assert dist["style_frequency"].to_dict() == {2: 3, 3: 3}
    assert dist["content_per_frame"].to_dict() == {0: 3, 1: 7}
    assert dist["frames_per_combination"].to_dict() == {"9": 5, "4": 2}


def test_many_content_combinations():
    a = parsed(random_burst(8, n_sequences=300, n_categories=40, max_frames=8, max_tracks=8))
    config = PairConfig(k=40, n=(8,), leq_n=True, count_instances=True)
    ps = build_pairs(a, config)
    assert len(ps.groups) > 300
    check_invariants(ps, config)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 8), n=st.sets(st.integers(1, 4), min_size=1),
       leq_n=st.booleans(), count_instances=st.booleans(), forbid=st.booleans(),
       pair_seed=st.integers(0, 3))
def test_pair_invariants(seed, k, n, leq_n, count_instances, forbid, pair_seed):
    a = parsed(random_burst(seed, n_sequences=25, max_frames=8))
    config = PairConfig(k=k, n=tuple(n), leq_n=leq_n, count_instances=count_instances,
                        seed=pair_seed, same_sequence="forbid" if forbid else "allow")
    check_invariants(build_pairs(a, config), config)


def test_pairs_command_writes_csv_statistics_and_figures(tmp_path, capsys):
    data = write_burst(tmp_path / "data", random_burst(7, n_sequences=40))
    out = tmp_path / "out" / "pairs.csv"
    assert main(["pairs", str(data), "--k", "4", "--n", "1", "2", "--seed", "3",
                 "--same-sequence", "forbid", "--out", str(out), "--plots",
                 str(tmp_path / "plots")]) == 0
    printed = capsys.readouterr().out
    assert "images root" in printed and "encoder_train" in printed and "held_out" in printed
    table = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert tuple(table.columns) == CSV_COLUMNS
    assert (table["sequence1"] != table["sequence2"]).all()
    assert [p.name for p in out.parent.iterdir()] == ["pairs.csv"]  # no temporary left behind
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "content_frequency.png", "content_per_frame.png", "frames_per_combination.png",
        "style_frequency.png"]
    config = PairConfig(k=4, n=(1, 2), seed=3, same_sequence="forbid")
    expected = build_pairs(parsed(random_burst(7, n_sequences=40)), config).table()
    assert table["image1"].tolist() == expected["image1"].tolist()


def test_pairs_command_options_and_errors(tmp_path, capsys):
    burst = Burst(splits={"train": [Seq(1, {1: 4, 2: 99999}, [[1, 2], [1]])]})
    data = write_burst(tmp_path / "data", burst, frames_at=None)
    out = tmp_path / "p.csv"
    assert main(["pairs", str(data), "--content", "4", "--style", "99999", "--n", "1",
                 "--leq-n", "--count-instances", "--weights", "1", "0", "0", "0",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "99999" in printed.err and "absent from categories.json" in printed.err
    assert "neither" in printed.err and "no split file for val, test" in printed.err
    assert "warning: no pairs in stratum readout_test" in printed.err
    assert "warning" not in printed.out
    table = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert table["content"].tolist() == ["4"]  # both frames show one 4; 99999 is style
    assert sorted(table.loc[0, ["style1", "style2"]]) == ["", "99999"]
    assert main(["pairs", str(data), "--content", "4", "--out", str(out)]) == 2
    printed = capsys.readouterr()
    assert "both" in printed.err and printed.out == ""
    assert main(["pairs", str(tmp_path / "absent"), "--out", str(out)]) == 2
