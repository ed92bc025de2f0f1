"""Lightning DDP on 2 CPU processes (gloo): the library's training module and the CLI."""

import os
from pathlib import Path

import lightning as L
import pandas as pd
import torch
import torch.multiprocessing as mp
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from blockident.engine import ContrastiveModule
from blockident.losses import InfoNCE
from blockident.models.pair import EncoderPair
from cli_subprocess import blockident
from test_cli import TINY
from test_losses import _free_port

STEPS, BATCH = 3, 8  # union batch of 2 x BATCH pairs per step


class UnionBatches(IterableDataset):
    """Step t's union batch of 2 x BATCH pairs (seeded by t); a process of rank r among
    ``world`` gets its r-th share."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world

    def __iter__(self):
        for step in range(STEPS):
            g = torch.Generator().manual_seed(step)
            x1, x2 = torch.randn(2 * BATCH, 4, generator=g), torch.randn(2 * BATCH, 4, generator=g)
            share = slice(self.rank * 2 * BATCH // self.world,
                          (self.rank + 1) * 2 * BATCH // self.world)
            yield {"view1": x1[share], "view2": (x1 + 0.1 * x2)[share]}


class Module(ContrastiveModule):
    def train_dataloader(self):
        return DataLoader(UnionBatches(self.global_rank, self.trainer.world_size), batch_size=None)


def _module() -> Module:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    return Module(EncoderPair(encoder, encoder), InfoNCE(tau=0.5, within_view=True), lr=0.05)


def _fit(devices: int, strategy: str, root: Path) -> dict[str, torch.Tensor]:
    """Weights after training; the logged train/loss per step goes to ``root/metrics.csv``."""
    module = _module()
    L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, max_steps=STEPS,
              logger=CSVLogger(root, name="", version=""), log_every_n_steps=1,
              enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=root).fit(module)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _ddp_worker(rank: int, port: int, root: str) -> None:
    """Rank ``rank`` of 2 launched here, as a cluster launches them (Lightning reads the
    environment and starts no process itself); the weights go to ``root/rank{rank}.pt``. The
    process ends with ``os._exit``: gloo's threads can abort the interpreter's teardown
    (SIGABRT, "terminate called without an active exception") after the work is done."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2",
                      NODE_RANK="0", LOCAL_RANK=str(rank), RANK=str(rank))
    weights = _fit(2, "ddp", Path(root))
    torch.save({"weights": weights, "world": torch.distributed.get_world_size()},
               Path(root) / f"rank{rank}.pt")
    torch.distributed.barrier()
    os._exit(0)


def _logged_loss(root: Path) -> pd.Series:
    return pd.read_csv(root / "metrics.csv").set_index("step")["train/loss"]


def test_two_processes_train_like_one_on_the_union_batch(tmp_path):
    one = _fit(1, "auto", tmp_path / "one")
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path / "two")), nprocs=2)
    ranks = [torch.load(tmp_path / "two" / f"rank{r}.pt") for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    start = _module().state_dict()
    assert any(not torch.equal(start[k], one[k]) for k in one)  # it trained
    for rank in ranks:  # both processes hold the weights of one process on the union batch
        for name in one:
            torch.testing.assert_close(rank["weights"][name], one[name], atol=1e-5, rtol=1e-4)
    # the logged loss is the union batch's (the mean over processes), once per step
    two_loss = _logged_loss(tmp_path / "two")
    assert list(two_loss.index) == list(range(STEPS))
    pd.testing.assert_series_equal(two_loss, _logged_loss(tmp_path / "one"), atol=1e-5)


def test_the_cli_trains_and_evaluates_on_two_processes(tmp_path):
    for strategy in ("ddp", "ddp_spawn"):
        run_dir = tmp_path / strategy
        result = blockident("run", *TINY, "trainer.max_steps=15", "readout.control=none",
                            "trainer.accelerator=cpu", "trainer.devices=2",
                            f"trainer.strategy={strategy}", f"run_dir={run_dir}")
        assert result.returncode == 0, result.stderr[-2000:]
        # the final checkpoint is the trained one, read out once
        assert sorted(p.name for p in (run_dir / "evaluations").iterdir()) == ["step_15"]
        assert (run_dir / "checkpoints" / "step=15.ckpt").exists()
        assert result.stdout.count("results: ") == 1
        metrics = pd.read_csv(run_dir / "metrics.csv")
        steps = metrics.dropna(subset=["train/loss"])["step"]
        assert steps.is_unique and steps.max() == 14
