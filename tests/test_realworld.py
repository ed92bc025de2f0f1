"""The real-world experiment end to end on BURST-format fixtures with real (random) JPEG frames."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from blockident.cli import main
from blockident.data.images import BadImageError
from blockident.data.realworld import RealWorldData
from burst_fixtures import random_burst, write_burst

PAIRS = {"k": 3, "n": [1, 2], "seed": 0}
TINY = [
    "experiment=realworld", "data.size=16", "data.batch_size=8", "data.val_batches=1",
    "model.hidden_size=16", "model.encoding_size=8", "readout.mlp.max_epochs=3",
    "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
    "trainer.val_check_interval=2", "checkpoint_every=2", "trainer.max_steps=4",
    "pairs.k=3", "pairs.n=[1,2]", "readout.min_positives=0", "readout.min_videos=0",
]


def _burst_with_frames(path, seed=0):
    """A random BURST set whose frames are distinct 24x20 noise JPEGs."""
    root = write_burst(path, random_burst(seed, n_sequences=40, max_frames=6))
    rng = np.random.default_rng(seed)
    for jpg in sorted((root / "frames").rglob("*.jpg")):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(jpg)
    return root


@pytest.fixture(scope="module")
def burst(tmp_path_factory):
    return _burst_with_frames(tmp_path_factory.mktemp("burst"))


@pytest.fixture(scope="module")
def trained(burst, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "rw"
    assert main(["run", *TINY, f"data.root={burst}", f"run_dir={run_dir}", "readout.every=2",
                 "readout.binary=[mlp,logreg]"]) == 0
    return run_dir


def test_run_reads_out_every_content_and_style_category(trained, burst):
    data = RealWorldData(str(burst), PAIRS, size=16)
    data.prepare()
    results = pd.read_csv(trained / "results.csv")
    trained_rows = results[results.encoding == "frames"]
    kinds = trained_rows.drop_duplicates("factor").set_index("factor")["kind"]
    assert sorted(kinds[kinds == "content"].index) == sorted(data.category_names("content"))
    assert sorted(kinds[kinds == "style"].index) == sorted(data.category_names("style"))
    assert set(results.encoding) == {"frames", "untrained:frames", "supervised:frames"}
    assert set(results.readout) == {"mlp", "logreg"}
    positives = trained_rows[trained_rows.metric == "positives"]
    assert positives.value.notna().all() and (positives.value >= 0).all()
    # both frames of every readout-test pair are scored; the content sets are the pairs'
    pairs = data.stratum_pairs("readout_test")
    frames = np.flatnonzero(data.row >= 0)[pairs.reshape(-1)]
    expected = data.pairs.multi_hot(frames, "content").sum(0)
    counted = positives[(positives.kind == "content") & (positives.readout == "mlp")]
    assert counted.set_index("factor").loc[data.category_names("content"), "value"].tolist() \
        == expected.tolist()
    predictions = np.load(trained / "evaluations" / "step_4" / "predictions_test.npz")
    assert predictions["frames/mlp"].shape == (len(frames), len(kinds))


def test_run_directory_has_pairs_figures_and_logged_readouts(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"pairs.json", "pairs.csv", "results.csv", "categories.png", "boxes.png"} <= names
    assert {p.name for p in (trained / "checkpoints").iterdir()} >= {
        "step=0.ckpt", "step=2.ckpt", "step=4.ckpt"}
    metrics = pd.read_csv(trained / "metrics.csv")
    logged = metrics["readout/frames/mlp/content_balanced_accuracy"].dropna()
    assert len(logged) >= 1 and logged.between(0, 1).all()


def test_evaluate_a_checkpoint_content_only_with_augmented_copies(trained, burst):
    assert main(["evaluate", f"run_dir={trained}", "ckpt=2", "readout.only_content=true",
                 "readout.augment=1", "readout.baseline=false"]) == 0
    out = trained / "evaluations" / "step_2"
    results = pd.read_csv(out / "results.csv")
    assert set(results.kind) == {"content"}
    assert set(results.encoding) == {"frames", "supervised:frames"}  # the saved control, reused
    assert "identified_share" in set(results.metric)
    encodings = np.load(out / "encodings_train.npz")["frames"]
    data = RealWorldData(str(burst), PAIRS, size=16)
    data.prepare()
    assert len(encodings) == 2 * 2 * len(data.stratum_pairs("readout_train"))


def test_untrained_baseline_run_trains_nothing(burst, tmp_path):
    run_dir = tmp_path / "untrained"
    assert main(["run", *TINY, f"data.root={burst}", f"run_dir={run_dir}",
                 "model.untrained=true", "readout.baseline=false", "readout.control=none"]) == 0
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"step=0.ckpt"}
    assert (pd.read_csv(run_dir / "results.csv").encoding == "frames").all()
    assert not (run_dir / "control").exists()


def test_bad_image_stops_the_run_unless_skipped(tmp_path, caplog):
    caplog.set_level("INFO", "blockident")
    root = _burst_with_frames(tmp_path / "burst", seed=1)
    data = RealWorldData(str(root), PAIRS, size=16)
    data.prepare()
    victim = data.cache.paths[0]
    victim.write_bytes(b"not a jpeg")
    with pytest.raises(BadImageError, match=str(victim)):
        RealWorldData(str(root), PAIRS, size=16, cache_dir=str(tmp_path / "c1")).prepare()
    skipping = RealWorldData(str(root), PAIRS, size=16, cache_dir=str(tmp_path / "c2"),
                             skip_bad_images=True)
    skipping.prepare()
    assert "skipping" in caplog.text
    assert skipping.keep.sum() < len(skipping.keep)
    used = skipping.row[skipping.pairs.pairs[skipping.keep]]
    assert 0 not in used  # the bad frame's cache row


def test_changed_pairs_are_detected_when_evaluating(burst, tmp_path):
    RealWorldData(str(burst), PAIRS, size=16).save_state(tmp_path)
    other = RealWorldData(str(burst), {**PAIRS, "k": 2}, size=16)
    with pytest.raises(ValueError, match="differ"):
        other.load_state(tmp_path)


@pytest.mark.parametrize("override, message", [
    ("pairs.k=1000", "no style is left to test"),
    ("pairs.n=[9]", "no pairs in encoder_train"),
])
def test_a_run_without_style_or_pairs_fails_before_writing_anything(burst, tmp_path, capsys,
                                                                     override, message):
    run_dir = tmp_path / "run"
    assert main(["run", *TINY, f"data.root={burst}", f"run_dir={run_dir}", override]) == 2
    assert message in capsys.readouterr().err
    assert not run_dir.exists()


def test_categories_without_enough_readout_positives_are_left_out(burst, caplog):
    caplog.set_level("INFO", "blockident")
    data = RealWorldData(str(burst), PAIRS, size=16, min_positives=10**6)
    splits = data.readout_data()
    assert "left out of the readouts" in caplog.text
    every = set(data.category_names("content")) | set(data.category_names("style"))
    assert set(splits["test"].excluded) == every and not splits["test"].tasks
    assert "frames in" in next(iter(splits["test"].excluded.values()))
    everything = RealWorldData(str(burst), PAIRS, size=16, min_positives=0,
                               min_videos=0).readout_data()
    assert {t.factor for t in everything["test"].tasks} == every
    kept = RealWorldData(str(burst), PAIRS, size=16, min_positives=1, min_videos=1).readout_data()
    on_both_sides = {n for n in every if all(s.factors[n].sum() > 0 for s in everything.values())}
    assert 0 < len(on_both_sides) < len(every)
    assert {t.factor for t in kept["train"].tasks} == on_both_sides
    assert set(kept["train"].excluded) == every - on_both_sides


def test_control_data_labels_the_encoder_training_frames(burst):
    data = RealWorldData(str(burst), PAIRS, size=16)
    control = data.control_data()
    rows = data.stratum_pairs("encoder_train").reshape(-1)
    assert len(control.inputs["frames"][1]) == len(rows)
    frames = np.flatnonzero(data.row >= 0)[rows]
    content = data.pairs.multi_hot(frames, "content")
    for i, name in enumerate(data.category_names("content")):
        assert np.array_equal(control.factors[name], content[:, i])
    assert {t.factor for t in control.tasks} == set(control.kinds)
