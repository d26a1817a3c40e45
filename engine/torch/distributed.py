"""Lightning DDP for engine/torch/backend.py's ``train`` when it runs as one rank of several (engine/distributed.py).

The processes are already started (by engine/launcher.py on one node, or by srun/torchrun), so Lightning must not
launch any: ``GivenEnvironment`` hands it the rank, address and port we resolved, and says the processes were
created outside. Only ``train`` imports this (it imports Lightning).
"""
from __future__ import annotations

from datetime import timedelta

import torch
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.strategies import DDPStrategy

from engine.distributed import Topology


class GivenEnvironment(LightningEnvironment):
    """Lightning's default environment, told our topology instead of reading (or inventing) it."""

    def __init__(self, topology: Topology):
        super().__init__()
        self.topology = topology

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return self.topology.address

    @property
    def main_port(self) -> int:
        return self.topology.ports[0]

    def local_rank(self) -> int:
        return self.topology.local_rank

    def node_rank(self) -> int:
        return self.topology.node_rank


def ddp_strategy(topology: Topology, accelerator: str) -> DDPStrategy:
    """DDP over gloo on CPU (NCCL on GPUs); collectives time out after ``topology.timeout_s`` (a dead rank fails
    the run). DDP averages the replicas' gradients: each replica's loss is weighted by ``share · world``
    (engine.distributed.shard), so the average is the gradient of the global batch's mean loss."""
    backend = "gloo" if accelerator == "cpu" else None  # None: Lightning's choice for the device (NCCL on CUDA)
    return DDPStrategy(cluster_environment=GivenEnvironment(topology), process_group_backend=backend,
                       timeout=timedelta(seconds=topology.timeout_s))


def reduce_step(trainer, device, loss_sum: float, samples: int, stop: bool) -> tuple[float, int, bool]:
    """One small all-reduce after every step: the global batch's summed loss and sample count, and whether any rank
    (rank 0, whose job was cancelled) asks to stop — so every rank stops after the same step, none waits alone."""
    t = torch.tensor([loss_sum, float(samples), float(stop)], dtype=torch.float64, device=device)
    t = trainer.strategy.reduce(t, reduce_op="sum")
    return float(t[0]), int(round(float(t[1]))), bool(float(t[2]) > 0)
