"""Concurrent commands and kills, through the ``blockident`` command in subprocesses."""

import signal

import pandas as pd

from blockident.cli import main
from blockident.runlock import run_lock
from cli_subprocess import blockident, start, wait_for
from test_cli import TINY


def test_a_second_command_on_a_run_directory_in_use_refuses(tmp_path):
    run_dir = tmp_path / "run"
    first = start("train", *TINY, "trainer.max_steps=100000", f"run_dir={run_dir}")
    try:
        wait_for(lambda: (run_dir / "checkpoints" / "step=0.ckpt").exists(), first)
        for args in (["evaluate", f"run_dir={run_dir}"], ["train", *TINY, f"run_dir={run_dir}"]):
            second = blockident(*args)
            assert second.returncode == 2
            assert f"{run_dir}: another blockident command (pid {first.pid})" in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with run_lock(run_dir):  # the killed run's lock went with it
        pass


def test_a_kill_during_evaluation_keeps_the_results_and_evaluate_completes_them(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["run", *TINY, f"run_dir={run_dir}", "readout.control=none",
                 "readout.baseline=false"]) == 0
    before = (run_dir / "results.csv").read_bytes()
    assert b"untrained:" not in before
    log = run_dir / "blockident.log"
    slow = ["readout.baseline=true", "readout.regressors.mlp.max_iter=3000",
            "readout.regressors.mlp.early_stopping=false", "+readout.regressors.mlp.tol=0"]
    evaluation = start("evaluate", f"run_dir={run_dir}", *slow)
    # the checkpoint's encodings are reused: from that line on it is reading out
    wait_for(lambda: "reusing the encodings" in log.read_text(), evaluation)
    evaluation.send_signal(signal.SIGKILL)
    evaluation.wait()
    assert (run_dir / "results.csv").read_bytes() == before
    result = blockident("evaluate", f"run_dir={run_dir}", "readout.baseline=true")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(run_dir / "results.csv")
    assert table.encoding.str.startswith("untrained:").any()
    assert set(table.readout) == {"linear", "kernel_ridge", "mlp"}
