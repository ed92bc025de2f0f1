"""The default experiment (procedural scenes through the real-world pipeline), tiny."""

import pandas as pd

from blockident.cli import main
from blockident.data.burst import read_burst


def test_default_experiment_generates_trains_and_compares_with_untrained(tmp_path, capsys):
    root, run_dir = tmp_path / "scenes", tmp_path / "run"
    assert main(["run", f"data.root={root}", f"run_dir={run_dir}", "data.generate.videos=80",
                 "data.generate.frames=6", "data.generate.size=32", "data.size=16",
                 "data.batch_size=16", "model.hidden_size=16", "model.encoding_size=8",
                 "readout.mlp.max_epochs=3", "readout.every=null", "trainer.max_steps=3",
                 "trainer.val_check_interval=3", "trainer.enable_progress_bar=false",
                 "pairs.same_sequence=allow", "pairs.k=3", "readout.min_positives=1",
                 "readout.min_videos=1"]) == 0
    out = capsys.readouterr().out
    assert read_burst(root).n_sequences == 80  # the generated set is the BURST format
    results = pd.read_csv(run_dir / "results.csv")
    assert set(results.encoding) == {"frames", "untrained:frames", "supervised:frames"}
    assert set(results.kind) == {"content", "style"}
    assert results[results.metric == "positives"].value.notna().all()
    balanced = results[results.metric == "balanced_accuracy"].dropna(subset=["value"])
    assert set(balanced.encoding) == {"frames", "untrained:frames", "supervised:frames"}
    assert balanced.value.between(0, 1).all()
    assert "identified share" in out
    summary = pd.read_csv(run_dir / "summary.csv")
    assert {"trained", "untrained", "supervised", "identified_share"} <= set(summary.columns)
    assert str(run_dir / "evaluations" / "step_3" / "categories.png") in out
    # a second run reuses the generated videos
    mtime = (root / "train.json").stat().st_mtime_ns
    assert main(["train", f"data.root={root}", f"run_dir={tmp_path / 'again'}",
                 "data.generate.videos=80", "data.generate.frames=6", "data.generate.size=32",
                 "data.size=16", "data.batch_size=16", "model.hidden_size=16",
                 "readout.every=null", "trainer.max_steps=1", "pairs.same_sequence=allow",
                 "pairs.k=3", "trainer.enable_progress_bar=false"]) == 0
    assert (root / "train.json").stat().st_mtime_ns == mtime
