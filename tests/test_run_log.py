"""A run's log file, the noise kept off the console, and the progress of long readouts."""

import logging
import sys

import pytest

from blockident.logs import progress, progress_bars
from cli_subprocess import blockident

TINY = ["experiment=numerical", "data.content_dim=2", "data.style_dim=1", "data.modality_dim=1",
        "data.batch_size=16", "data.readout_train=60", "data.readout_test=40",
        "model.hidden_multipliers=[2]", "~readout.regressors.kernel_ridge",
        "~readout.regressors.mlp", "readout.control=none", "trainer.max_steps=3"]
NOISE = ["litlogger", "LeafSpec", "weights_only", "GPU available", "TPU available"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    result = blockident("run", *TINY, f"run_dir={run_dir}")
    assert result.returncode == 0, result.stderr
    return run_dir, result


def test_the_log_file_holds_what_stdout_shows_without_progress_bars(run):
    run_dir, result = run
    log = (run_dir / "blockident.log").read_text()
    for line in ("numerical at step 3", "per kind, over readable factors", "results: ",
                 "report:  ", "Total params",
                 "linear readouts of continuous factors, per input set: 4 of 4 in"):
        assert line in result.stdout and line in log, line
    assert "it/s" in result.stdout and "it/s" not in log  # Lightning's bar: console only


def test_a_run_shows_none_of_lightnings_and_torchs_noise(run):
    _, result = run
    for noise in NOISE:
        assert noise not in result.stderr and noise not in result.stdout, noise


def test_progress_logs_start_intermediate_and_end_lines(caplog):
    caplog.set_level(logging.INFO, "blockident")
    assert list(progress(range(3), "fitting", every=0)) == [0, 1, 2]
    assert caplog.messages[:3] == ["fitting: 0 of 3", "fitting: 1 of 3 (0 s)",
                                   "fitting: 2 of 3 (0 s)"]
    assert caplog.messages[3].startswith("fitting: 3 of 3 in ") and len(caplog.messages) == 4


@pytest.mark.parametrize(("terminal", "steps", "rate"),
                         [(False, 2000, 100), (True, 2000, 25), (True, 200, 10), (False, 5, 1)])
def test_the_progress_bar_never_reads_the_loss_every_step(monkeypatch, terminal, steps, rate):
    """A refresh reads the logged loss off the device (a GPU waits for its queue): about 20 per
    run, on a terminal also at the loggers' steps (every 25 here), never every step."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    [bar] = progress_bars(True, steps, 25)
    assert bar.refresh_rate == rate
    assert progress_bars(False, steps, 25) == []
