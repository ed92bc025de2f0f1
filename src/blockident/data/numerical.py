"""The multimodal numerical simulation as a Lightning data module.

View 1 observes ``x1 = f1(c, s, m1)``, view 2 observes ``x2 = f2(c, s~, m2)`` with invertible
MLP mixings ``f1``, ``f2`` (the same one with ``shared_mixing``). Theory predicts that
contrastive learning recovers ``c`` (content) and discards ``s``, ``s~`` (style) and ``m1``,
``m2`` (modality-specific). The latent parameters and mixings are saved in the run directory
(``simulation.pt``) so evaluation uses the same ones.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from blockident.data.base import ReadoutSplit, ReadoutTask, StepStream
from blockident.data.latents import GROUPS, LatentSizes, MultimodalLatents
from blockident.data.mixing import InvertibleMLP
from blockident.errors import MissingError
from blockident.io import atomic_torch_save

KINDS = {"c": "content", "s": "style", "s~": "style", "m1": "modality", "m2": "modality",
         "c'": "content"}
STATE_FILE = "simulation.pt"


class Simulation(nn.Module):
    """Latent sampler plus the two mixing functions; ``sample(n, g)`` gives views and latents."""

    def __init__(self, latents: MultimodalLatents, mixing_layers: int, shared_mixing: bool,
                 seed: int):
        super().__init__()
        sizes = latents.sizes
        n = sizes.content + sizes.style + sizes.modality
        self.latents = latents
        self.f1 = InvertibleMLP(n, mixing_layers, seed=seed + 101)
        self.f2 = self.f1 if shared_mixing else InvertibleMLP(n, mixing_layers, seed=seed + 202)

    def mix(self, z: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Observations (x1, x2), each (N, content + style + modality)."""
        x1 = self.f1(torch.cat([z["c"], z["s"], z["m1"]], dim=1))
        x2 = self.f2(torch.cat([z["c"], z["s~"], z["m2"]], dim=1))
        return x1, x2

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        z = self.latents.sample(n, generator)
        z["x1"], z["x2"] = self.mix(z)
        return z

    @torch.no_grad()
    def permute_content(self, z: dict[str, torch.Tensor], generator: torch.Generator):
        """Views of the same latents with content permuted across samples: (x1', x2', c')."""
        perm = torch.randperm(len(z["c"]), generator=generator)
        z_perm = {**z, "c": z["c"][perm]}
        return (*self.mix(z_perm), z_perm["c"])


class NumericalData(L.LightningDataModule):
    """Infinite training stream of view pairs, fixed validation batches and readout draws.

    ``negatives=true`` adds a separately drawn batch (``neg1``, ``neg2``) to every training
    batch, for losses such as ``lp_infonce``. Readouts are fitted on a draw of ``readout_train``
    samples and scored on an independent draw of ``readout_test`` samples. ``num_workers``
    DataLoader processes draw the training batches beside the training process (the same
    batches as without them, see :class:`StepStream`).
    """

    def __init__(self, content_dim: int = 5, style_dim: int = 5, modality_dim: int = 5,
                 style_change_prob: float = 1.0, c_param: float = 1.0, m_param: float = 1.0,
                 statistical_dependence: bool = False, content_dependent_style: bool = False,
                 shared_mixing: bool = False, mixing_layers: int = 3, batch_size: int = 512,
                 negatives: bool = False, val_batches: int = 2, readout_train: int = 5000,
                 readout_test: int = 5000, seed: int = 0, wishart: str = "independent",
                 num_workers: int = 0):
        super().__init__()
        sizes = LatentSizes(content_dim, style_dim, modality_dim)
        latents = MultimodalLatents(sizes, style_change_prob, c_param, m_param,
                                    statistical_dependence, content_dependent_style, seed,
                                    wishart)
        self.simulation = Simulation(latents, mixing_layers, shared_mixing, seed)
        self.batch_size, self.negatives, self.seed = batch_size, negatives, seed
        self.val_batches, self.num_workers = val_batches, num_workers
        self.readout_sizes = {"train": readout_train, "test": readout_test}
        self.stream: StepStream | None = None

    # -- state saved with the run ---------------------------------------------------------
    def save_state(self, run_dir: Path) -> None:
        atomic_torch_save(self.simulation.state_dict(), Path(run_dir) / STATE_FILE)

    def load_state(self, run_dir: Path) -> None:
        path = Path(run_dir) / STATE_FILE
        if not path.exists():
            raise MissingError(f"{path}: the run's saved simulation is missing")
        self.simulation.load_state_dict(torch.load(path, weights_only=True))

    # -- training ---------------------------------------------------------------------------
    def _training_batch(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        z = self.simulation.sample(self.batch_size, generator)
        batch = {"view1": z["x1"], "view2": z["x2"]}
        if self.negatives:
            neg = self.simulation.sample(self.batch_size, generator)
            batch.update(neg1=neg["x1"], neg2=neg["x2"])
        return batch

    def train_dataloader(self) -> DataLoader:
        self.stream = StepStream.of_trainer(self._training_batch, self.seed, self.trainer)
        return DataLoader(self.stream, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed + 7919)
        batches = [self._training_batch(generator) for _ in range(self.val_batches)]
        return DataLoader(batches, batch_size=None)

    # -- readouts ---------------------------------------------------------------------------
    def readout_data(self) -> dict[str, ReadoutSplit]:
        """``train`` and ``test`` draws with every latent group and the permuted-content control.

        Encodings: ``view1`` (of x1) and ``view2`` (of x2); the control ``c'`` is read from the
        encodings of views whose content was permuted across samples.
        """
        splits = {}
        for offset, (split, n) in enumerate(self.readout_sizes.items(), start=1):
            generator = torch.Generator().manual_seed(self.seed + 10_000 * offset)
            z = self.simulation.sample(n, generator)
            x1p, x2p, c_perm = self.simulation.permute_content(z, generator)
            factors = {g: z[g].numpy() for g in GROUPS} | {"c'": c_perm.numpy()}
            tasks = [ReadoutTask(view, view, g) for view in ("view1", "view2") for g in GROUPS]
            tasks += [ReadoutTask(view, f"{view}_permuted", "c'") for view in ("view1", "view2")]
            observed = {"view1": [z["c"], z["s"], z["m1"], z["x1"]],
                        "view2": [z["c"], z["s~"], z["m2"], z["x2"]],
                        "view1_permuted": [c_perm, z["s"], z["m1"], x1p],
                        "view2_permuted": [c_perm, z["s~"], z["m2"], x2p]}
            splits[split] = ReadoutSplit(
                inputs={"view1": (1, z["x1"]), "view2": (2, z["x2"]),
                        "view1_permuted": (1, x1p), "view2_permuted": (2, x2p)},
                factors=factors, kinds=KINDS, tasks=tasks,
                oracle={k: torch.cat(v, 1).numpy() for k, v in observed.items()})
        return splits

    def control_data(self) -> ReadoutSplit:
        """A fresh draw of ``readout_train`` samples of the training distribution with every
        latent group, each read from both views: what the supervised control learns from."""
        z = self.simulation.sample(self.readout_sizes["train"],
                                   torch.Generator().manual_seed(self.seed + 30_000))
        return ReadoutSplit(inputs={"view1": (1, z["x1"]), "view2": (2, z["x2"])},
                            factors={g: z[g].numpy() for g in GROUPS}, kinds=KINDS,
                            tasks=[ReadoutTask(v, v, g) for v in ("view1", "view2")
                                   for g in GROUPS])
