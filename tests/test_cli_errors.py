"""Errors a user can act on and validation before writing, through the ``blockident`` command."""

import pytest
from PIL import Image

from blockident.cli import main
from blockident.data.realworld import RealWorldData
from cli_subprocess import blockident
from test_cli import TINY
from test_realworld import PAIRS, _burst_with_frames
from test_realworld import TINY as REALWORLD_TINY


@pytest.mark.parametrize("args, message", [
    (["evaluate", "run_dir={tmp}/absent"], "{tmp}/absent/config.yaml: not a blockident run"),
    (["train", "experiment=numerical", "trainer.max_stepz=3"], "Could not override"),
    (["run", "experiment=realworld"], "data.root has no value: pass data.root=..."),
    (["pairs", "{tmp}/absent"], "{tmp}/absent/categories.json: category list not found"),
    (["prepare", "burst", "{tmp}/absent"], "{tmp}/absent/categories.json"),
    (["report", "{tmp}/absent"], "{tmp}/absent/results.csv does not exist"),
])
def test_user_errors_are_one_message_on_stderr_with_exit_code_2(tmp_path, args, message):
    result = blockident(*(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 2
    assert result.stderr.startswith(f"blockident {args[0]}: error: ")
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr
    assert "error:" not in result.stdout
    assert len(result.stderr.splitlines()) <= 5


def test_blockident_debug_shows_the_traceback(tmp_path):
    result = blockident("evaluate", f"run_dir={tmp_path}", env={"BLOCKIDENT_DEBUG": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "blockident.errors.MissingError" in result.stderr


def test_zero_pairs_is_an_error_not_a_silent_success(tmp_path):
    root = _burst_with_frames(tmp_path / "burst")
    (root / "val.json").write_text('{"split": "val", "sequences": []}')
    out = tmp_path / "pairs.csv"
    result = blockident("pairs", root, "--n", "9", "--out", out)
    assert result.returncode == 2 and not out.exists()
    assert f"warning: {root / 'val.json'}: no sequences" in result.stderr
    assert f"blockident pairs: error: {root}: no pairs" in result.stderr
    assert "warning:" not in result.stdout and "error:" not in result.stdout


def test_a_bad_frame_names_the_option_and_leaves_no_run_directory(tmp_path):
    root = _burst_with_frames(tmp_path / "burst")
    probe = RealWorldData(str(root), PAIRS, size=16, cache_dir=str(tmp_path / "probe"))
    probe.prepare()
    victim = probe.cache.paths[0]  # a frame the run's pairs use
    victim.write_bytes(b"not a jpeg")
    run_dir = tmp_path / "run"
    result = blockident("run", *REALWORLD_TINY, f"data.root={root}", f"run_dir={run_dir}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data.skip_bad_images=true" in result.stderr and str(victim) in result.stderr
    assert not run_dir.exists()
    Image.new("RGB", (24, 20)).save(victim)  # repaired: the same command now trains
    assert main(["train", *REALWORLD_TINY, f"data.root={root}", f"run_dir={run_dir}",
                 "trainer.max_steps=1"]) == 0


def test_an_invalid_config_fails_before_a_run_directory_exists(tmp_path):
    run_dir = tmp_path / "run"
    result = blockident("run", *TINY, "trainer.max_steps=-5", "checkpoint_every=0",
                        "data.batch_size=0", "data.content_dim=0", f"run_dir={run_dir}")
    assert result.returncode == 2
    for message in ["trainer.max_steps must be > 0, got -5", "checkpoint_every must be > 0",
                    "data.batch_size must be > 0", "data.content_dim must be > 0"]:
        assert message in result.stderr
    assert not run_dir.exists()


def test_a_run_failing_before_training_removes_what_it_wrote(tmp_path):
    """A bad trainer option fails once the config, the simulation and the initial checkpoint
    are written."""
    run_dir = tmp_path / "run"
    result = blockident("train", *TINY, "trainer.precision=bogus", f"run_dir={run_dir}")
    assert result.returncode == 2 and "trainer: Precision 'bogus' is invalid" in result.stderr
    assert not run_dir.exists()
    kept = tmp_path / "mine"  # a folder of the user's: only the run's files go
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert main(["train", *TINY, "trainer.precision=bogus", f"run_dir={kept}"]) == 2
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]


def test_a_run_failing_during_training_is_kept_marked_failed(tmp_path):
    """A readout that cannot be built fails at step 2, before the first trained checkpoint:
    the curves and the log stay, and evaluate and report refuse the run."""
    run_dir = tmp_path / "run"
    result = blockident("run", *TINY, "checkpoint_every=100", "readout.every=2",
                        "readout.regressors.linear._target_=no.such.Regressor",
                        f"run_dir={run_dir}")
    assert result.returncode != 0
    assert {"FAILED", "metrics.csv", "blockident.log", "config.yaml"} <= {
        p.name for p in run_dir.iterdir()}
    assert "no.such.Regressor" in (run_dir / "FAILED").read_text()
    for args in (["evaluate", f"run_dir={run_dir}"], ["report", str(run_dir)]):
        refused = blockident(*args)
        assert refused.returncode == 2
        assert "training failed before the first trained checkpoint" in refused.stderr
