"""One optimiser step of a backend's real ``train``, as one rank of a data-parallel training or in one process.

    python -m tests.dp_step_probe BACKEND OUT.npz        (rank from torchrun-style variables; none: one process)

The problem is backend_cases' tiny CI-size scan cut to exactly one global batch of 2b groups, one epoch: one step.
Rank 0 (or the single process) writes the weights after the step and Adam's first moment m = (1 − β₁)·g, i.e. the
gradient the optimiser actually applied (after the replicas' reduction), read back from the run's checkpoint.
One framework per process (tests/test_distributed.py runs this in children).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

GLOBAL_BATCH = 8  # 2 replicas × b = 4


def problem(backend: str):
    from engine.backend_api import TrainingData
    from tests.backend_cases import setup

    cfg, data, consts, w0 = setup(backend, M=16, epochs=1, batch_size=GLOBAL_BATCH, val_fraction=0.25)
    data = TrainingData(data.amplitude, data.train.take(np.arange(GLOBAL_BATCH)), data.val, data.input_scale)
    return cfg, data, consts, w0


def first_moment(backend: str, cfg, consts, weights: dict, ckpt: Path) -> dict[str, np.ndarray]:
    """Adam's m per canonical parameter, from the checkpoint the step wrote."""
    if backend == "torch":
        import torch

        from engine.torch.model import PinnModel

        state = torch.load(ckpt / "last.ckpt", map_location="cpu", weights_only=True)["optimizer_states"][0]["state"]
        names = [n for n, _ in PinnModel(cfg, consts, weights).net.named_parameters()]
        return {n: state[i]["m"].contiguous().numpy() for i, n in enumerate(names)}
    from engine.tf.backend import Pinn, _Checkpoints, _to_canonical

    pinn = Pinn(cfg.model, consts, weights, loss=cfg.training.loss, learning_rate=cfg.training.learning_rate)
    _Checkpoints(pinn, None).restore(ckpt)
    opt = pinn.optimizer
    return {n: _to_canonical(n, opt._momentums[opt._get_variable_index(v)].numpy()) for n, v in pinn.named}


def main(backend: str, out: str) -> int:
    from engine.backends import load_backend
    from engine.distributed import from_env
    from tests.backend_cases import RecordingHooks

    topology = from_env()
    module = load_backend(backend)
    cfg, data, consts, w0 = problem(backend)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        hooks = RecordingHooks()
        result = module.train(cfg, data, consts, w0, hooks, ckpt, accelerator="cpu",
                              devices=topology.per_node if topology else 1, replicas=topology)
        if topology is None or topology.chief:
            assert len(hooks.batches) == 1, hooks.batches  # one step
            m = first_moment(backend, cfg, consts, w0, ckpt)
            np.savez(out, **{f"w/{k}": v for k, v in result.weights.items()},
                     **{f"m/{k}": v for k, v in m.items()}, loss=hooks.batches[0][3], samples=hooks.batches[0][4])
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
