"""The objects experiment end to end, tiny: stand-in TFRecord -> ViT + slots -> object readouts."""

import pandas as pd
import pytest

from blockident.cli import main

TINY = ["experiment=objects", "data.scenes=400", "data.batch_size=16", "trainer.max_steps=6",
        "checkpoint_every=3", "trainer.val_check_interval=3", "readout.control_steps=3",
        "readout.probe_steps=20", "data.min_positives=2", "readout.mlp.max_epochs=3",
        "model.backbone.depth=1", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("clevr")


def test_objects_run_reads_segmentation_presence_and_objects(data_root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", *TINY, f"data.root={data_root}", f"run_dir={run_dir}"]) == 0
    results = pd.read_csv(run_dir / "results.csv")
    values = results.set_index(["encoding", "factor", "readout", "metric"]).value
    for encoding in ("slots", "untrained:slots"):
        for metric in ("fg_ari", "mean_iou", "dice"):
            assert 0 <= values[encoding, "segmentation", "slot_attention", metric] <= 1
        for metric in ("average_precision", "roc_auc"):
            assert 0 <= values[encoding, "object_presence", "slot_probe", metric] <= 1
        assert 0 < values[encoding, "object_color", "logistic", "accuracy"] <= 1
        assert "object_x" in set(results[results.encoding == encoding].factor)
    # scene level: presence labels and the count, trained / untrained / supervised control
    assert {"image", "untrained:image", "supervised:image"} <= set(results.encoding)
    present = results[results.factor.str.startswith("present_")]
    assert len(set(present.factor)) > 10 and set(present.kind) == {"content"}
    assert (run_dir / "evaluations" / "step_6" / "slots.png").stat().st_size > 10_000
    assert (run_dir / "report.html").exists()
    curves = pd.read_csv(run_dir / "metrics.csv")
    assert {"train/loss", "train/ctr", "train/ctr_img"} <= set(curves.columns)


def test_global_architecture_is_probed_on_its_global_encoding(data_root, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["run", *TINY, f"data.root={data_root}", f"run_dir={run_dir}",
                 "model.architecture=global", "losses=global", "readout.control=none"]) == 0
    results = pd.read_csv(run_dir / "results.csv")
    probe = results[results.factor == "object_presence"]
    assert set(probe.encoding) == {"global", "untrained:global"}
    assert "segmentation" not in set(results.factor)
