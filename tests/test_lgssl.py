"""experiment=lgssl end to end on a tiny stand-in: LG-SimCLR and SimSiam, probe rows."""

import json

import pandas as pd
import pytest
from PIL import Image

from blockident.cli import main
from blockident.pairs import captions as cap
from test_captions import bag_of_words

TINY = ["data.generate.n=160", "data.generate.side=32", "data.size=32", "data.batch_size=16",
        "data.readout_max=60", "trainer.max_steps=3", "trainer.val_check_interval=3",
        "checkpoint_every=3", "model.hidden_size=16", "readout.control_steps=2",
        "optim.warmup_steps=1", "readout.probes.fewshot_5w5s.episodes=20",
        "readout.probes.fewshot_5w5s.queries=2", "readout.probes.fewshot_5w5s.shots=1",
        "readout.probes.fewshot_5w5s.ways=2",
        "readout.probes.linear_probe.coarse=[-3,-1]", "readout.probes.linear_probe.fine=[0.5]",
        "trainer.enable_progress_bar=false"]


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setattr(cap, "embed_captions", bag_of_words)
    return tmp_path / "captions"


def test_lg_simclr_run_writes_pairs_and_probe_rows_by_kind(root, tmp_path):
    run_dir, evals = tmp_path / "run", tmp_path / "eval"
    for label, colour in (("reds", (250, 0, 0)), ("blues", (0, 0, 250))):
        (evals / label).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (24, 24), colour).save(evals / label / f"{i}.png")
    assert main(["run", "experiment=lgssl", f"data.root={root}", f"run_dir={run_dir}",
                 f"eval.root={evals}", *TINY]) == 0
    records = json.loads((run_dir / "caption_pairs.json").read_text())
    assert len(records) == 3 * 112 and all(len(a) == 2 and len(b) == 2 for a, b, _ in records)
    results = pd.read_csv(run_dir / "results.csv")
    assert set(results.encoding) == {f"{role}{inputs}" for role in ("", "untrained:", "supervised:")
                                     for inputs in ("images", "eval")}
    probes = results[results.readout.isin(["linear_probe", "fewshot_5w5s"])]
    assert set(zip(probes.readout, probes.metric, strict=True)) == {
        ("linear_probe", "top1"), ("linear_probe", "mean_per_class"),
        ("fewshot_5w5s", "top1"), ("fewshot_5w5s", "accuracy_ci95")}
    kinds = dict(zip(probes.factor, probes.kind, strict=False))
    assert kinds == {"colour": "content", "shape": "content", "background": "style",
                     "size": "style", "class": "eval"}
    eval_set = probes[(probes.factor == "class") & (probes.readout == "linear_probe")]
    assert set(eval_set.encoding) == {"eval", "untrained:eval", "supervised:eval"}
    assert (eval_set[eval_set.metric == "top1"].value == 1.0).all()  # two plain colours
    scores = probes[probes.metric != "accuracy_ci95"]
    assert scores.value.between(0, 1).all(), scores[~scores.value.between(0, 1)]
    assert (run_dir / "config.yaml").read_text().count("pairing: caption") == 1


def test_simsiam_method_trains_on_the_same_engine(root, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "experiment=lgssl", "method=simsiam", f"data.root={root}",
                 f"run_dir={run_dir}", *TINY]) == 0
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["train/loss"].dropna().between(-1, 1).all()
    assert (run_dir / "checkpoints" / "step=3.ckpt").exists()
