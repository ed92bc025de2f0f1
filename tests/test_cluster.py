"""Sweeps through the submitit launcher (``pip install blockident[cluster]``): one folder per
sweep, whichever process resolves its name, and the sweep's summary written at the end."""

import pandas as pd
import pytest

from blockident.cli import main
from test_cli import TINY

pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                    reason="hydra-submitit-launcher is not installed (pip install .[cluster])")


def test_a_submitit_local_sweep_has_one_folder_and_a_summary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-m", "hydra/launcher=submitit_local", *TINY, "trainer.max_steps=2",
                 "checkpoint_every=2", "trainer.val_check_interval=2", "readout.control_steps=2",
                 "~readout.regressors.mlp", "seed=0,1"]) == 0
    sweeps = list((tmp_path / "runs" / "numerical").iterdir())
    assert len(sweeps) == 1
    assert sorted(p.name for p in sweeps[0].iterdir() if p.name.isdigit()) == ["0", "1"]
    summary = pd.read_csv(sweeps[0] / "summary.csv")
    assert sorted(summary.groupby("job")["seed"].first()) == [0, 1]
    assert (sweeps[0] / "report.html").stat().st_size > 0
