"""The PINN as a LightningModule: network → object → (merge, re-extract) → far field → loss, top to bottom.

Batches come from the shared numpy batching (engine.grouping + TrainingData.batch) through a DataLoader whose
sampler replays ``grouping.epoch_order``/``grouping.batches`` for Lightning's epoch counter, so this backend
sees exactly the arrays, in exactly the order, that the TensorFlow backend sees.
"""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from engine import grouping
from engine.backend_api import ADAM_BETAS, ADAM_EPS, PhysicsConstants, TrainingData
from engine.config import RunConfig
from engine.grouping import Groups
from engine.physics import merge_pad, merge_window
from engine.torch import physics as tp
from engine.torch.network import PtychoNet, load_canonical
from engine.torch.optim import KerasAdam


class PtychoModule(L.LightningModule):
    """Holds the network and the physics constants; reports per-epoch, sample-weighted mean losses."""

    def __init__(self, cfg: RunConfig, consts: PhysicsConstants, weights: dict[str, np.ndarray]):
        super().__init__()
        self.cfg = cfg
        self.net = PtychoNet(cfg.model)
        load_canonical(self.net, weights, cfg.model)
        N, R = consts.N, consts.N + 2 * merge_pad(consts.N)
        self.register_buffer("probe", torch.from_numpy(np.asarray(consts.probe, np.complex64)), persistent=False)
        self.register_buffer("window", torch.from_numpy(merge_window(N)), persistent=False)
        self.register_buffer("ky", tp.fftfreq(R), persistent=False)
        self.register_buffer("kx", tp.fftfreq(R), persistent=False)
        valid = None if consts.valid is None else torch.from_numpy(np.array(consts.valid, bool))  # detector mask
        self.register_buffer("valid", valid, persistent=False)
        self.photon_scale = float(consts.photon_scale)
        self.loss_fn = tp.LOSSES[cfg.training.loss]
        self.history: list[dict] = []  # one dict per finished epoch; travels in checkpoints
        self.sums = {"train": [0.0, 0], "val": [0.0, 0]}  # loss·samples, samples — for this epoch

    # ----------------------------------------------------------------------------------- model, top to bottom
    def forward(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Complex object patches (B, C, N, N) after the overlap constraint (merge → re-extract when C > 1)."""
        amp, phase = self.net(x)
        obj = torch.polar(amp, phase)
        if obj.shape[1] > 1:
            region, _ = tp.merge_group(obj, offsets, self.window, self.ky, self.kx)
            obj = tp.reextract_group(region, offsets, obj.shape[-1], self.ky, self.kx)
        return obj

    def predicted_counts(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return tp.forward_intensity(self.probe, self(x, offsets), self.photon_scale)

    def loss(self, batch) -> torch.Tensor:
        x, counts, offsets = batch
        lam = self.predicted_counts(x, offsets)
        return self.loss_fn(lam, counts) if self.valid is None else self.loss_fn(lam, counts, self.valid)

    # --------------------------------------------------------------------------------------- Lightning steps
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self._accumulate("train", loss, len(batch[0]))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        if self.trainer.should_stop:  # cancelled: Lightning still enters validation; do no work there
            return
        self._accumulate("val", self.loss(batch), len(batch[0]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Keras' Adam (its defaults and epsilon placement, engine/torch/optim.py), as the TensorFlow backend."""
        return KerasAdam(self.net.parameters(), lr=self.cfg.training.learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS)

    # ------------------------------------------------------------------------------------ epoch bookkeeping
    def on_train_epoch_start(self) -> None:
        self.sums = {"train": [0.0, 0], "val": [0.0, 0]}

    def _accumulate(self, split: str, loss: torch.Tensor, samples: int) -> None:
        self.sums[split][0] += float(loss.detach()) * samples
        self.sums[split][1] += samples

    def epoch_loss(self, split: str) -> float | None:
        total, samples = self.sums[split]
        return total / samples if samples else None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["pinnacle_history"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = list(checkpoint.get("pinnacle_history", []))


# ------------------------------------------------------------------------------------------------- data
class GroupBatches(Dataset):
    """Indexed by an array of group indices; returns that batch as (x, counts, offsets) tensors."""

    def __init__(self, data: TrainingData, groups: Groups):
        self.data, self.groups = data, groups

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, sel):
        b = self.data.batch(self.groups, np.asarray(sel))
        return torch.from_numpy(b.x), torch.from_numpy(b.counts), torch.from_numpy(b.offsets)


class EpochBatchSampler(Sampler):
    """Yields whole batches: ``grouping.batches(grouping.epoch_order(n, seed, epoch), batch_size)``.

    Lightning calls ``set_epoch`` with its epoch counter before each epoch (also after a resume). Validation
    uses ``shuffle=False``: groups in order.
    """

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True):
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        """A generator, so the order is drawn at the first batch: Lightning may call iter() before set_epoch."""
        order = grouping.epoch_order(self.n, self.seed, self.epoch) if self.shuffle else np.arange(self.n)
        yield from grouping.batches(order, self.batch_size)

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


def make_loader(data: TrainingData, groups: Groups, batch_size: int, seed: int, shuffle: bool) -> DataLoader:
    """``batch_size=None``: the sampler already yields batches, the dataset gathers each one in one numpy call."""
    sampler = EpochBatchSampler(len(groups), batch_size, seed, shuffle)
    return DataLoader(GroupBatches(data, groups), sampler=sampler, batch_size=None, num_workers=0)
