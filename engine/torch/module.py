"""The PINN as a LightningModule (engine/torch/model.py's PinnModel plus training steps), and the Lightning pieces
that train it: the DataLoader and the callback that reports to the pipeline's TrainHooks. Only ``train`` imports this.

Batches come from the shared numpy batching (engine.grouping + TrainingData.batch) through a DataLoader whose
sampler replays ``TrainingData.epoch_order``/``grouping.batches`` for Lightning's epoch counter, so this backend
sees exactly the arrays, in exactly the order, that the TensorFlow backend sees. Under DDP each rank's sampler
yields its slice of every global batch (engine.distributed.shard) — Lightning's DistributedSampler is off.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from engine import augment, grouping
from engine.distributed import shard
from engine.backend_api import PhysicsConstants, TrainHooks, TrainingData
from engine.config import RunConfig
from engine.grouping import Groups
from engine.schedule import learning_rate
from engine.torch.model import PinnModel
from engine.torch.network import canonical_state


class PtychoModule(PinnModel, L.LightningModule):
    """The PinnModel with Lightning's training steps; reports per-epoch, sample-weighted mean losses."""

    def __init__(self, cfg: RunConfig, consts: PhysicsConstants, weights: dict[str, np.ndarray]):
        super().__init__(cfg, consts, weights)
        self.history: list[dict] = []  # one dict per finished epoch; travels in checkpoints
        self.sums = {"train": [0.0, 0], "val": [0.0, 0]}  # loss·samples, samples — for this epoch
        self.last_step = (0.0, 0)  # loss·samples, samples of this rank's last training step

    # --------------------------------------------------------------------------------------- Lightning steps
    def training_step(self, batch: "ShardBatch", batch_idx: int) -> torch.Tensor:
        """The slice's mean loss, weighted for DDP's gradient averaging (1 in one process: exact)."""
        loss = self.loss(batch[:3])
        self.last_step = (float(loss.detach()) * batch.samples, batch.samples)  # HookBridge reduces over ranks
        return loss * batch.weight

    def validation_step(self, batch: "ShardBatch", batch_idx: int) -> None:
        if self.trainer.should_stop:  # cancelled: Lightning still enters validation; do no work there
            return
        self._accumulate("val", float(self.loss(batch[:3])) * batch.samples, batch.samples)

    # ------------------------------------------------------------------------------------ epoch bookkeeping
    def on_train_epoch_start(self) -> None:
        """Zero the epoch's sums and set this epoch's learning rate: engine/schedule.py, the call the TensorFlow
        loop makes (a Lightning LR scheduler would step at epoch ends and keep its own state to resume; one pure
        function of the epoch is simpler and the same in both backends)."""
        self.sums = {"train": [0.0, 0], "val": [0.0, 0]}
        tc = self.cfg.training
        lr = learning_rate(tc.learning_rate, tc.lr_schedule, self.current_epoch, tc.epochs)
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def _accumulate(self, split: str, loss_sum: float, samples: int) -> None:
        self.sums[split][0] += loss_sum
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
        """Reports the global batch (summed over ranks); every rank stops after the same step."""
        loss_sum, samples = pl_module.last_step
        stop = None
        if trainer.world_size > 1:  # the stop request travels with the reduction, as in the TensorFlow backend
            from engine.torch.distributed import reduce_step

            loss_sum, samples, stop = reduce_step(trainer, pl_module.device, loss_sum, samples,
                                                  self.hooks.should_stop())
        pl_module._accumulate("train", loss_sum, samples)
        self.samples += samples
        self.t_train = time.perf_counter()
        self.hooks.on_batch_end(trainer.current_epoch, batch_idx, int(trainer.num_training_batches),
                                loss_sum / samples, samples)
        if self.hooks.should_stop() if stop is None else stop:
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
class ShardBatch(NamedTuple):
    """One rank's slice of a global batch: the tensors, the loss weight for DDP, and the real groups in it."""

    x: torch.Tensor
    counts: torch.Tensor
    offsets: torch.Tensor
    weight: float  # share of the global batch × replicas (1.0 in one process)
    samples: int  # groups of this slice that count (0: a stand-in group, for a short last batch)


class GroupBatches(Dataset):
    """Indexed by (group indices, share of the global batch); returns that slice as a ShardBatch."""

    def __init__(self, data: TrainingData, groups: Groups, replicas: int = 1):
        self.data, self.groups, self.replicas = data, groups, replicas

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, item) -> ShardBatch:
        sel, share = item
        b = self.data.batch(self.groups, np.asarray(sel))
        return ShardBatch(torch.from_numpy(b.x), torch.from_numpy(b.counts), torch.from_numpy(b.offsets),
                          share * self.replicas, len(sel) if share else 0)


class EpochBatchSampler(Sampler):
    """Yields this replica's slice of whole batches: ``grouping.batches(augment.epoch_order(n, seed, epoch,
    orientations), batch_size)`` cut by ``engine.distributed.shard`` (the whole batch in one process), with its
    share — ``TrainingData.epoch_order``, the order the TensorFlow loop uses.

    Lightning calls ``set_epoch`` with its epoch counter before each epoch (also after a resume). Validation
    uses ``shuffle=False``: groups in order, every rank the whole set (no collectives; rank 0 reports it).
    """

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True, replica: int = 0,
                 replicas: int = 1, orientations: int = 1):
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.orientations = orientations
        self.replica, self.replicas = replica, replicas
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        """A generator, so the order is drawn at the first batch: Lightning may call iter() before set_epoch."""
        order = (augment.epoch_order(self.n, self.seed, self.epoch, self.orientations) if self.shuffle
                 else np.arange(self.n))
        for sel in grouping.batches(order, self.batch_size):
            yield shard(sel, self.replica, self.replicas)

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


def make_loader(data: TrainingData, groups: Groups, batch_size: int, seed: int, shuffle: bool, replica: int = 0,
                replicas: int = 1) -> DataLoader:
    """``batch_size=None``: the sampler already yields batches, the dataset gathers each one in one numpy call."""
    sampler = EpochBatchSampler(len(groups), batch_size, seed, shuffle, replica, replicas,
                                len(data.orientations) if shuffle else 1)
    return DataLoader(GroupBatches(data, groups, replicas), sampler=sampler, batch_size=None, num_workers=0)
