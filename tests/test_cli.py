"""End-to-end runs of the ``blockident`` command on a tiny numerical simulation."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from omegaconf import OmegaConf

import blockident as blockident_pkg
from blockident.cli import main
from blockident.validate import check_config

TINY = [
    "experiment=numerical", "data.content_dim=2", "data.style_dim=2", "data.modality_dim=1",
    "data.batch_size=32",
    "data.readout_train=150", "data.readout_test=100", "model.hidden_multipliers=[2]",
    "readout.regressors.kernel_ridge.max_samples=60", "readout.regressors.mlp.max_iter=20",
    "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
    "trainer.val_check_interval=10", "checkpoint_every=10", "trainer.max_steps=20",
]


def blockident(*args):
    assert main(list(args)) == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    blockident("run", *TINY, f"run_dir={run_dir}", "seed=3")
    return run_dir


def test_run_directory_holds_everything_to_understand_the_run(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"config.yaml", "checkpoints", "metrics.csv", "results.csv", "results.png",
            "simulation.pt", "tensorboard", "evaluations"} <= names
    assert {p.name for p in (trained / "checkpoints").iterdir()} >= {
        "step=10.ckpt", "step=20.ckpt", "last.ckpt"}
    config = yaml.safe_load((trained / "config.yaml").read_text())
    assert config["seed"] == 3 and config["data"]["content_dim"] == 2
    assert config["run_dir"] == str(trained) and config["version"]
    metrics = pd.read_csv(trained / "metrics.csv")
    assert metrics["train/loss"].notna().sum() == 20 and metrics["val/loss"].notna().sum() == 2


def test_results_table_has_the_stable_schema(trained):
    results = pd.read_csv(trained / "results.csv")
    assert list(results.columns) == ["encoding", "factor", "kind", "readout", "metric", "value"]
    assert set(results.encoding) == {"view1", "view2", "untrained:view1", "untrained:view2",
                                     "supervised:view1", "supervised:view2"}
    assert set(results.readout) == {"linear", "kernel_ridge", "mlp"}
    kinds = dict(zip(results.factor, results.kind, strict=False))
    assert kinds == {"c": "content", "s": "style", "s~": "style", "m1": "modality",
                     "m2": "modality", "c'": "content"}
    r2 = results[results.metric == "r2"]
    # trained, untrained and control; 2 views, 6 factors, 3 readouts
    assert len(r2) == 3 * 2 * 6 * 3 and r2.value.notna().all()
    shares = results[results.metric == "identified_share"]
    assert len(shares) == 2 * 6 * 3 and set(shares.encoding) == {"view1", "view2"}
    # one control encoder per kind (the 2-d encoding cannot hold every factor)
    assert {p.name for p in (trained / "control").iterdir()} == {
        "content.pt", "style.pt", "modality.pt"}
    summary = pd.read_csv(trained / "summary.csv")
    assert set(summary.kind) == {"content", "style", "modality"}
    assert {"trained", "supervised", "identified_share", "unreadable"} <= set(summary.columns)


def test_evaluate_a_chosen_checkpoint(trained, capsys):
    blockident("evaluate", f"run_dir={trained}", "ckpt=10", "~readout.regressors.kernel_ridge")
    out = trained / "evaluations" / "step_10"
    table = pd.read_csv(out / "results.csv")
    assert set(table.readout) == {"linear", "mlp"}
    assert (out / "encodings_test.npz").exists() and (out / "results.png").exists()
    assert "step 10" in capsys.readouterr().out
    # the run's own results.csv still describes the latest checkpoint
    assert set(pd.read_csv(trained / "results.csv").readout) == {"linear", "kernel_ridge", "mlp"}
    assert main(["evaluate", f"run_dir={trained}", "ckpt=15"]) == 2
    assert "no checkpoint for step 15; available: [0, 10, 20]" in capsys.readouterr().err


def test_evaluate_again_reuses_the_encodings_of_an_unchanged_checkpoint(trained, capsys):
    out = trained / "evaluations" / "step_20"
    before = dict(np.load(out / "encodings_test.npz"))
    capsys.readouterr()
    blockident("evaluate", f"run_dir={trained}", "~readout.regressors.kernel_ridge")
    log = capsys.readouterr().out
    # trained, untrained (step 0) and the three control encoders
    assert log.count("reusing the encodings") == 5
    assert set(pd.read_csv(trained / "results.csv").readout) == {"linear", "mlp"}
    ckpt = trained / "checkpoints" / "step=20.ckpt"
    os.utime(ckpt, ns=(ckpt.stat().st_atime_ns, ckpt.stat().st_mtime_ns + 10**9))  # touched
    blockident("evaluate", f"run_dir={trained}", "~readout.regressors.kernel_ridge")
    # untrained and controls only
    assert capsys.readouterr().out.count("reusing the encodings") == 4
    after = np.load(out / "encodings_test.npz")
    assert all(np.allclose(before[k], after[k], atol=1e-6) for k in before)  # same weights


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    blockident("train", *TINY, f"run_dir={whole}")
    blockident("train", *TINY, f"run_dir={split}", "trainer.max_steps=10")
    blockident("train", f"resume={split}", "trainer.max_steps=20")
    a, b = (pd.read_csv(d / "metrics.csv").dropna(subset=["train/loss"]) for d in (whole, split))
    assert list(b.step) == list(range(20))
    assert a["train/loss"].tolist() == pytest.approx(b["train/loss"].tolist(), rel=1e-6)
    assert yaml.safe_load((split / "config.yaml").read_text())["trainer"]["max_steps"] == 20


def test_resume_of_a_non_run_is_a_clear_error(tmp_path, capsys):
    assert main(["train", f"resume={tmp_path}"]) == 2
    assert f"{tmp_path}/config.yaml: not a blockident run directory" in capsys.readouterr().err


def test_multirun_sweeps_into_one_directory_per_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blockident("train", "-m", *TINY, "trainer.max_steps=2", "seed=0,1")
    jobs = sorted(tmp_path.glob("runs/numerical/sweep_*/*/config.yaml"))
    assert [yaml.safe_load(p.read_text())["seed"] for p in jobs] == [0, 1]


def test_listing_and_help(capsys):
    blockident("experiments")
    blockident("--help")
    out = capsys.readouterr().out
    assert "numerical " in out and "numerical_paper" in out and "resume=RUN_DIR" in out
    assert main(["frobnicate"]) == 2


def test_experiment_names_are_their_file_names():
    # evaluate and resume find a run's experiment again through info.name
    for path in (Path(blockident_pkg.__file__).parent / "conf" / "experiment").glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["info"]["name"] == path.stem


def test_wandb_logger_works_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    blockident("train", *TINY, "trainer.max_steps=3", "logger=wandb", f"run_dir={tmp_path / 'r'}")
    assert list((tmp_path / "r" / "wandb").glob("offline-run-*"))


def test_shared_encoder_and_mixing_are_one_module(tmp_path):
    blockident("train", *TINY, "trainer.max_steps=2", "model.shared_encoder=true",
               "data.shared_mixing=true", f"run_dir={tmp_path}")
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state["encoders.encoder1.0.weight"].equal(state["encoders.encoder2.0.weight"])


def test_a_run_shorter_than_its_checkpoint_interval_leaves_one_checkpoint_per_step(tmp_path):
    blockident("train", *TINY, "trainer.max_steps=5", f"run_dir={tmp_path}")
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step=0.ckpt", "step=5.ckpt"]


def test_a_run_shorter_than_the_log_interval_still_writes_its_curve(tmp_path):
    run_dir = tmp_path / "short"
    blockident("train", *TINY, f"run_dir={run_dir}", "trainer.max_steps=5",
               "trainer.log_every_n_steps=25")
    assert pd.read_csv(run_dir / "metrics.csv")["train/loss"].notna().any()


def test_training_keeps_freed_memory_unless_told_not_to(tmp_path, monkeypatch):
    import blockident.runner as runner

    calls = []
    monkeypatch.setattr(runner, "retain_freed_memory", lambda: calls.append(True))
    blockident("train", *TINY, "trainer.max_steps=2", f"run_dir={tmp_path / 'kept'}")
    assert calls == [True]
    blockident("train", *TINY, "trainer.max_steps=2", "retain_freed_memory=false",
               f"run_dir={tmp_path / 'defaults'}")
    assert calls == [True]


@pytest.mark.parametrize("name", sorted(p.stem for p in (
    Path(blockident_pkg.__file__).parent / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_composes(name, capsys):
    blockident("train", "--cfg", "job", f"experiment={name}")
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["info"]["name"] == name and config["data"]["_target_"]
    check_config(OmegaConf.create(config))  # every shipped experiment passes validation
