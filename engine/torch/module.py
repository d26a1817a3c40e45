"""The PINN as a LightningModule (engine/torch/model.py's PinnModel plus training steps), and the Lightning pieces
that train it: the DataLoader and the callback that reports to the pipeline's TrainHooks. Only ``train`` imports this.

Batches come from the shared numpy batching (engine.grouping + TrainingData.batch) through a DataLoader whose
sampler replays ``grouping.epoch_order``/``grouping.batches`` for Lightning's epoch counter, so this backend
sees exactly the arrays, in exactly the order, that the TensorFlow backend sees.
"""
from __future__ import annotations

import time

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from engine import grouping
from engine.backend_api import PhysicsConstants, TrainHooks, TrainingData
from engine.config import RunConfig
from engine.grouping import Groups
from engine.torch.model import PinnModel
from engine.torch.network import canonical_state


class PtychoModule(PinnModel, L.LightningModule):
    """The PinnModel with Lightning's training steps; reports per-epoch, sample-weighted mean losses."""

    def __init__(self, cfg: RunConfig, consts: PhysicsConstants, weights: dict[str, np.ndarray]):
        super().__init__(cfg, consts, weights)
        self.history: list[dict] = []  # one dict per finished epoch; travels in checkpoints
        self.sums = {"train": [0.0, 0], "val": [0.0, 0]}  # loss·samples, samples — for this epoch

    # --------------------------------------------------------------------------------------- Lightning steps
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self._accumulate("train", loss, len(batch[0]))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        if self.trainer.should_stop:  # cancelled: Lightning still enters validation; do no work there
            return
        self._accumulate("val", self.loss(batch), len(batch[0]))

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


class HookBridge(L.Callback):
    """Lightning events → TrainHooks; sets ``trainer.should_stop`` when the pipeline asks to stop."""

    def __init__(self, hooks: TrainHooks, epochs: int):
        self.hooks, self.epochs = hooks, epochs
        self.cancelled = False
        self.t0 = self.t_train = 0.0
        self.samples = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: PtychoModule) -> None:
        self.hooks.on_train_start(self.epochs, int(trainer.num_training_batches))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: PtychoModule) -> None:
        self.t0 = self.t_train = time.perf_counter()
        self.samples = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        samples = len(batch[0])
        self.samples += samples
        self.t_train = time.perf_counter()
        loss = float(outputs["loss"].detach())
        self.hooks.on_batch_end(trainer.current_epoch, batch_idx, int(trainer.num_training_batches), loss, samples)
        if self.hooks.should_stop():
            self.cancelled = True
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: PtychoModule) -> None:
        """Runs after this epoch's validation; a cancelled (partial) epoch is not reported."""
        if self.cancelled:
            return
        seconds = time.perf_counter() - self.t0
        train_seconds = max(self.t_train - self.t0, 1e-9)  # throughput of the training batches alone
        record = {
            "epoch": trainer.current_epoch,
            "train_loss": pl_module.epoch_loss("train"),
            "val_loss": pl_module.epoch_loss("val"),
            "lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
            "seconds": seconds,
            "samples_per_s": self.samples / train_seconds,
        }
        pl_module.history.append(record)
        self.hooks.on_epoch_end(record["epoch"], record["train_loss"], record["val_loss"], record["lr"],
                                seconds, record["samples_per_s"], lambda: canonical_state(pl_module.net))


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
