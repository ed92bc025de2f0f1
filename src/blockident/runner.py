"""``blockident train | evaluate | run``: Hydra composes the config, this module runs it.

A run directory holds the resolved ``config.yaml``, ``checkpoints/`` (``step=N.ckpt`` and
``last.ckpt``), ``metrics.csv`` and TensorBoard logs of training, and per evaluated checkpoint
``evaluations/step_N/`` with the cached encodings, ``results.csv`` and the figure; the latest
evaluation's ``results.csv`` and ``results.png`` are also copied to the run directory itself.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import time
import uuid
import warnings
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import hydra
import lightning as L
import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_class, instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

import blockident
from blockident import runinfo
from blockident.engine import ContrastiveModule
from blockident.errors import ConfigError, MissingError, debug, user_message
from blockident.heap import retain_freed_memory
from blockident.io import atomic_savez, atomic_torch_save, atomic_write, atomic_write_text
from blockident.logs import log, progress_bars
from blockident.readouts.control import (
    control_groups,
    control_names,
    oracle_encodings,
    train_supervised,
)
from blockident.readouts.evaluate import (
    ReadoutCallback,
    cached_encodings,
    encode_splits,
    readout_rows,
    save_encodings,
    with_copies,
)
from blockident.readouts.object_evaluation import object_rows
from blockident.readouts.share import chance_levels, identified_share_rows, kind_summary
from blockident.report import plot_boxes, plot_categories, plot_results, summary, write_results
from blockident.report_html import write_run_report
from blockident.runlock import LOCK_FILE, run_lock
from blockident.validate import check_config

CONFIG_FILE = "config.yaml"
CKPT_DIR = "checkpoints"
METRICS_FILE = "metrics.csv"
HYDRA_LOG = "blockident.log"  # Hydra's log of the job, created with the run directory


def _default_run_dir(resume: str | None, name: str) -> str:
    if resume:
        return str(resume)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return f"runs/{name}/{stamp}_{uuid.uuid4().hex[:6]}"


OmegaConf.register_new_resolver("sum", lambda *xs: sum(xs), replace=True)
# cached: the resolved value travels with the config, so a sweep has one folder even when its
# jobs run in other processes (submitit)
OmegaConf.register_new_resolver("pid", os.getpid, replace=True, use_cache=True)
OmegaConf.register_new_resolver("default_run_dir", _default_run_dir, replace=True)
# the CSV logger warns about any non-empty log folder; a run directory is never empty
warnings.filterwarnings("ignore", "Experiment logs directory")
warnings.filterwarnings("ignore", "Checkpoint directory .* exists and is not empty")  # step=0


# -- configuration ------------------------------------------------------------------------------
def _with_overrides(saved: DictConfig, composed: DictConfig) -> DictConfig:
    """The saved run config with this command line's plain ``key=value`` overrides applied.

    Config-group choices (``experiment=...``, ``data=...``) cannot change an existing run and
    are ignored.
    """
    overrides = OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))
    for override in overrides:
        key = override.key_or_group
        if override.is_delete():
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(saved, parent) if parent else saved
            if isinstance(node, DictConfig):
                node.pop(leaf, None)
            continue
        value = OmegaConf.select(composed, key, default=None)
        if key in ("resume", "run_dir") or isinstance(value, DictConfig):
            continue
        OmegaConf.update(saved, key, value, force_add=True)
    return saved


def load_run_config(run_dir: Path, composed: DictConfig) -> DictConfig:
    """The config saved in ``run_dir`` plus command-line overrides."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise MissingError(f"{path}: not a blockident run directory (no {CONFIG_FILE})")
    return _with_overrides(OmegaConf.load(path), composed)


def save_config(cfg: DictConfig, run_dir: Path) -> None:
    cfg = cfg.copy()
    cfg.version = blockident.__version__
    atomic_write_text(Path(run_dir) / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))


# -- building blocks ------------------------------------------------------------------------------
def build_module(cfg: DictConfig, data) -> ContrastiveModule:
    """The model of ``cfg.model`` (plus the data module's ``model_kwargs()``) with the loss, in
    the Lightning module class ``cfg.engine`` (default :class:`ContrastiveModule`; any class
    with its constructor)."""
    model_cfg = cfg.model.copy()
    model_cfg.pop("untrained", None)
    extra = data.model_kwargs() if hasattr(data, "model_kwargs") else {}
    engine = get_class(cfg.engine) if cfg.get("engine") else ContrastiveModule
    return engine(instantiate(model_cfg, **extra), instantiate(cfg.loss),
                             optim=OmegaConf.to_container(cfg.optim, resolve=True),
                             max_steps=cfg.trainer.max_steps,
                             batch_size=cfg.data.get("batch_size"))


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    from lightning.pytorch import loggers

    out = []
    if cfg.logger.csv:
        out.append(loggers.CSVLogger(run_dir, name="", version=""))
    if cfg.logger.tensorboard:
        out.append(loggers.TensorBoardLogger(run_dir, name="tensorboard", version=""))
    if cfg.logger.wandb:
        out.append(loggers.WandbLogger(save_dir=str(run_dir), **cfg.logger.wandb))
    return out


def find_checkpoint(run_dir: Path, step: int | None) -> tuple[int, Path, bool]:
    """(step, path, is the latest) of ``step=STEP.ckpt``, or of the latest when ``step`` is None."""
    ckpts = {int(m.group(1)): p for p in (Path(run_dir) / CKPT_DIR).glob("step=*.ckpt")
             if (m := re.fullmatch(r"step=(\d+)\.ckpt", p.name))}
    if not ckpts:
        raise MissingError(f"{Path(run_dir) / CKPT_DIR}: no checkpoints")
    latest = max(ckpts)
    step = latest if step is None else step
    if step not in ckpts:
        raise MissingError(f"{run_dir}: no checkpoint for step {step}; "
                           f"available: {sorted(ckpts)}")
    return step, ckpts[step], step == latest


def _read_metrics(run_dir: Path) -> pd.DataFrame | None:
    path = run_dir / METRICS_FILE
    return pd.read_csv(path) if path.exists() else None


def _prepend_metrics(run_dir: Path, earlier: pd.DataFrame) -> None:
    """Put the training curves from before a resume back in front of the new ones."""
    later = _read_metrics(run_dir)
    if later is not None:
        earlier = earlier[earlier["step"] < later["step"].min()]
    merged = pd.concat([earlier, later], ignore_index=True)
    atomic_write(run_dir / METRICS_FILE, lambda tmp: merged.to_csv(tmp, index=False))


# -- commands -------------------------------------------------------------------------------------
def train(cfg: DictConfig, run_dir: Path) -> Path:
    """Train (or resume) the run in ``run_dir``; returns the final checkpoint.

    The initial weights are saved as ``step=0.ckpt`` (the untrained baseline); with
    ``model.untrained=true`` nothing is trained.
    """
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = instantiate(cfg.data)
    last = run_dir / CKPT_DIR / "last.ckpt"
    resuming = cfg.resume is not None
    if resuming:
        if not last.exists():
            raise MissingError(f"{last}: nothing to resume from")
        data.load_state(run_dir)
    else:
        data.save_state(run_dir)
    save_config(cfg, run_dir)
    module = build_module(cfg, data)
    initial = run_dir / CKPT_DIR / "step=0.ckpt"
    if not resuming:
        atomic_torch_save({"state_dict": module.state_dict(), "global_step": 0}, initial)
    if cfg.model.get("untrained"):
        return initial
    # a name holds one step: writing it again replaces it (no `last-v1.ckpt` beside the
    # `last.ckpt` of FinalCheckpoint when a run ends before its first periodic checkpoint)
    checkpoints = ModelCheckpoint(
        dirpath=run_dir / CKPT_DIR, filename="step={step}", auto_insert_metric_name=False,
        every_n_train_steps=cfg.checkpoint_every, save_top_k=-1, save_last=True,
        enable_version_counter=False)
    options = dict(cfg.trainer)  # a run shorter than the log interval still logs its curve
    options["log_every_n_steps"] = max(1, min(options.get("log_every_n_steps", 50),
                                              cfg.trainer.max_steps))
    callbacks = [checkpoints, FinalCheckpoint(run_dir, cfg.checkpoint_every),
                 *progress_bars(options.get("enable_progress_bar", True), options["max_steps"],
                                options["log_every_n_steps"])]
    if cfg.trainer.get("enable_model_summary", True):  # a plain one logs (Rich's prints)
        callbacks.append(ModelSummary())
    if cfg.readout.get("every"):
        callbacks.append(ReadoutCallback(data, cfg.readout, cfg.readout.every))
    try:
        trainer = L.Trainer(**options, default_root_dir=run_dir, callbacks=callbacks,
                            logger=build_loggers(cfg, run_dir))
    except (ValueError, TypeError, MisconfigurationException) as error:  # a bad trainer.* value
        raise ConfigError(f"trainer: {error}") from error
    earlier = _read_metrics(run_dir) if resuming else None  # the CSV logger starts afresh
    trainer.fit(module, datamodule=data, ckpt_path=last if resuming else None)
    if earlier is not None and trainer.is_global_zero:
        _prepend_metrics(run_dir, earlier)
    return find_checkpoint(run_dir, None)[1]


class FinalCheckpoint(L.Callback):
    """Saves ``step=N.ckpt`` and ``last.ckpt`` when training ends at a step that is no multiple
    of ``every`` (at a multiple the periodic checkpoint holds it). It runs in the training
    processes (every rank takes part; rank 0 writes), so the final step is right under any
    strategy: after ``ddp_spawn`` the launching process's trainer does not know it."""

    def __init__(self, run_dir: Path, every: int):
        self.run_dir, self.every = run_dir, every

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step % self.every:
            for name in (f"step={trainer.global_step}.ckpt", "last.ckpt"):
                trainer.save_checkpoint(self.run_dir / CKPT_DIR / name, weights_only=False)


def _load_weights(module: ContrastiveModule, ckpt: Path) -> ContrastiveModule:
    module.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    return module.to("cuda" if torch.cuda.is_available() else "cpu")


def _readouts(cfg: DictConfig, data, module, splits, out: Path, prefix: str = "",
              encodings: dict | None = None, source: Path | None = None):
    """Encode, read out; rows with ``prefix`` before each encoding name. The encodings are
    saved in ``out`` and, while the weights file ``source`` is unchanged, reused by a later
    evaluation. Given ``encodings`` (split -> input set -> array) are read out as they are."""
    log.info("%s encoder:", prefix.rstrip(":") or "trained")
    copies = cfg.readout.get("augment", 0)
    if encodings is not None:  # given: the oracle's true latents
        save_encodings(out, encodings, splits, None)
    elif source is not None and (cached := cached_encodings(out, splits, source, copies)):
        log.info("reusing the encodings in %s (its checkpoint is unchanged)", out)
        splits, encodings = with_copies(splits, copies), cached
    else:
        splits, encodings = encode_splits(module, splits, getattr(data, "augment", None), copies)
        save_encodings(out, encodings, splits, source, copies)
    rows, predictions = readout_rows(splits, encodings, cfg.readout)
    if predictions:
        atomic_savez(out / "predictions_test.npz", predictions)
    for row in rows:
        row["encoding"] = prefix + row["encoding"]
    return rows


def _figures(table: pd.DataFrame, out: Path, title: str) -> list[Path]:
    """Per-category bars and box plots for category readouts, else the factor heat map."""
    if "balanced_accuracy" in set(table["metric"]):
        return [plot_categories({title: table}, out / "categories.png"),
                plot_boxes({title: table}, out / "boxes.png")]
    return [plot_results(table, out / "results.png", title=title)]


def _control_rows(cfg: DictConfig, data, splits, run_dir: Path, out: Path) -> list[dict]:
    """Rows of every positive control ``readout.control`` names (see
    :mod:`blockident.readouts.control`); the supervised encoders are kept in ``control/``."""
    rows = []
    for name in control_names(cfg.readout):
        if name == "oracle":
            rows += _readouts(cfg, data, None, splits, out / "oracle", "oracle:",
                              encodings=oracle_encodings(splits))
            continue
        source = data.control_data()
        for group, part in control_groups(source, cfg.readout.control_groups).items():
            L.seed_everything(cfg.seed, verbose=False)
            weights = run_dir / "control" / f"{group}.pt"
            control = train_supervised(
                build_module(cfg, data).encoders, part, weights,
                steps=cfg.readout.control_steps or cfg.trainer.max_steps, lr=cfg.optim.lr,
                batch_size=cfg.data.get("batch_size", 256), trainer=dict(cfg.trainer),
                augment=getattr(data, "augment", None), seed=cfg.seed)
            control.to("cuda" if torch.cuda.is_available() else "cpu")
            group_splits = {s: replace(split, tasks=[
                t for t in split.tasks if group == "all" or split.kinds[t.factor] == group])
                for s, split in splits.items()}
            suffix = "" if group == "all" else f"_{group}"
            rows += _readouts(cfg, data, control, group_splits, out / f"supervised{suffix}",
                              "supervised:", source=weights)
    return rows


def _summary(table: pd.DataFrame, kinds: pd.DataFrame, excluded: dict[str, str]) -> str:
    """Means per kind with the identified share, the factors left out, and for factor
    experiments (a few factors) every factor's scores."""
    text = ["per kind, over readable factors (identified share = (trained - chance) / "
            "(control - chance)):",
            kinds.round(3).to_string(index=False) if len(kinds) else "  no factor was scored"]
    if excluded:
        text.append(f"left out ({len(excluded)}, too few positives):")
        text += [f"  {name}: {why}" for name, why in excluded.items()]
    if "balanced_accuracy" not in set(table["metric"]):
        text.append(summary(table))
    return "\n".join(text)


def evaluate(cfg: DictConfig, run_dir: Path, step: int | None = None) -> pd.DataFrame:
    """Encode the readout splits with a checkpoint, fit every readout, write the results.

    With ``readout.baseline=true`` the initial weights (``step=0.ckpt``) are read out too and
    their rows added with encodings named ``untrained:<encoding>``; the positive controls of
    ``readout.control`` add ``supervised:<encoding>`` / ``oracle:<encoding>`` rows, and every
    trained factor gets its ``identified_share``. ``summary.csv`` holds the means per kind.
    """
    step, ckpt, latest = find_checkpoint(run_dir, step)
    data = instantiate(cfg.data)
    data.load_state(run_dir)
    module = _load_weights(build_module(cfg, data), ckpt)
    out = run_dir / "evaluations" / f"step_{step}"
    splits = data.readout_data()
    objects = hasattr(data, "object_data")  # object annotations: object-level readouts too
    rows = _readouts(cfg, data, module, splits, out, source=ckpt)
    rows += object_rows(module, data, cfg.readout, out) if objects else []
    if cfg.readout.get("baseline") and step != 0:
        initial = find_checkpoint(run_dir, 0)[1]
        rows += _readouts(cfg, data, _load_weights(module, initial), splits, out / "untrained",
                          prefix="untrained:", source=initial)
        if objects:
            rows += object_rows(module, data, cfg.readout, out / "untrained", "untrained:")
    rows += _control_rows(cfg, data, splits, run_dir, out)
    chance, margin = chance_levels(splits["test"]), cfg.readout.get("readable_margin", 0.2)
    table = pd.DataFrame(rows)
    rows += identified_share_rows(table, chance, margin)
    kinds = kind_summary(table, chance, margin)
    table = write_results(rows, out / "results.csv")
    atomic_write(out / "summary.csv", lambda tmp: kinds.to_csv(tmp, index=False))
    figures = _figures(table[table.metric != "identified_share"], out,
                       f"{cfg.info.name}, step {step}")
    if latest:
        for path in [out / "results.csv", out / "summary.csv", *figures]:
            atomic_write(run_dir / path.name, lambda tmp, p=path: shutil.copyfile(p, tmp))
    summary_text = _summary(table, kinds, splits["test"].excluded)
    log.info("\n%s at step %d (%s):\n%s\n", cfg.info.name, step, run_dir, summary_text)
    log.info("results: %s", out / "results.csv")
    for path in figures:
        log.info("figure:  %s", path)
    return table


def _task(cfg: DictConfig, command: str) -> None:
    started = time.time()
    if cfg.retain_freed_memory:
        retain_freed_memory()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    OmegaConf.set_struct(cfg, False)
    if command == "evaluate" or cfg.resume is not None:
        cfg = load_run_config(run_dir, cfg)
        cfg.resume = str(run_dir) if command != "evaluate" else None
    cfg.run_dir = str(run_dir)
    with run_lock(run_dir):
        if command in ("train", "run"):
            _train_or_clean_up(cfg, run_dir)
        if rank_zero_only.rank != 0:  # a DDP process started by the first one: it only trains
            return
        if command == "evaluate" and (why := runinfo.failure(run_dir)) is not None:
            raise MissingError(f"{run_dir}: its training failed before the first trained "
                               f"checkpoint ({why}); nothing to evaluate: run it again or "
                               "delete it")
        if command in ("evaluate", "run"):
            evaluate(cfg, run_dir, cfg.ckpt)
        if command in ("train", "run"):
            _record(cfg, command, run_dir, started)


def _train_or_clean_up(cfg: DictConfig, run_dir: Path) -> None:
    """Check the config, then train. A new run that fails before it saved a trained
    checkpoint removes what it wrote, so that no directory is left that looks like a run; one
    that had trained some steps keeps its curves and log, marked by a ``FAILED`` file that
    ``evaluate`` and ``report`` refuse."""
    existed = {p.name for p in run_dir.iterdir()} - {HYDRA_LOG, LOCK_FILE}
    try:
        check_config(cfg)
        control_names(cfg.readout)  # a misspelt control fails before training, not after
        train(cfg, run_dir)
    except BaseException as error:
        if cfg.resume is None and not _trained(run_dir):
            if (run_dir / METRICS_FILE).exists():  # it trained: keep the curves and the log
                atomic_write_text(run_dir / runinfo.FAILED, f"{type(error).__name__}: {error}\n")
            else:
                _remove_new(run_dir, existed)
        raise


@rank_zero_only
def _record(cfg: DictConfig, command: str, run_dir: Path, started: float) -> None:
    """``run.json`` (the command that repeats the run, wall time); after ``run`` the report."""
    repeat = runinfo.repeat_command(command, list(HydraConfig.get().overrides.task),
                                    cfg.info.name, cfg.seed)
    runinfo.record(run_dir, repeat, started)
    if command == "run":
        log.info("report:  %s", write_run_report(run_dir))


def _trained(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint of a training step (not only the initial one)."""
    return (run_dir / CKPT_DIR / "last.ckpt").exists() or any(
        p.name != "step=0.ckpt" for p in (run_dir / CKPT_DIR).glob("step=*.ckpt"))


def _remove_new(run_dir: Path, existed: set[str]) -> None:
    """Remove every entry of ``run_dir`` but those in ``existed``, and ``run_dir`` itself when
    nothing else is left."""
    for path in run_dir.iterdir():
        if path.name not in existed:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    if not existed:
        run_dir.rmdir()


def _existing_run_experiment(command: str, argv: list[str]) -> list[str]:
    """``["experiment=NAME"]`` for a command on an existing run, so that Hydra composes the
    run's own experiment (the default one may lack keys an override names); else ``[]``."""
    key = "run_dir" if command == "evaluate" else "resume"
    values = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith(("~", "+")))
    if key not in values or "experiment" in values:
        return []
    path = Path(values[key]) / CONFIG_FILE
    name = OmegaConf.select(OmegaConf.load(path), "info.name") if path.exists() else None
    known = Path(__file__).parent / "conf" / "experiment" / f"{name}.yaml"
    return [f"experiment={name}"] if name and known.exists() else []


def hydra_main(command: str, argv: list[str]) -> int:
    """Run ``command`` under Hydra with ``argv`` as its command line."""

    failures: list[Exception] = []

    argv = [*_existing_run_experiment(command, argv), *argv]
    # Lightning's DDP launcher starts the other processes as `python sys.argv[0] sys.argv[1:]`
    # (or `python -m MODULE sys.argv[1:]`) plus its hydra.* overrides: once Hydra has read the
    # overrides, sys.argv is the command line that repeats this command
    relaunch = [sys.argv[0], command, *argv]

    @hydra.main(config_path="conf", config_name="config", version_base="1.3")
    def entry(cfg: DictConfig) -> None:
        sys.argv = relaunch
        try:
            _task(cfg, command)
        except Exception as error:  # a user's error is reported by the CLI, not as a failed job
            if user_message(error) is None or debug():
                raise
            failures.append(error)

    sys.argv = [f"blockident {command}", *argv]
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # errors reach blockident.cli, which reports them
    logging.captureWarnings(True)  # Python warnings on stderr and in the run's log
    try:
        entry()
    finally:
        logging.captureWarnings(False)
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR")
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error
    if failures:
        raise failures[0]
    return 0
