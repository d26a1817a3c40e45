"""The backend module API of engine/backend_api.py, on PyTorch/Lightning.

``train`` runs a ``lightning.Trainer`` over the shared numpy batching and forwards progress to the pipeline's
TrainHooks through a Lightning Callback (engine/torch/module.py, imported only there: Lightning's import is ~4 s of
a cold ``infer``); ``predict``/``batch_loss``/``gradients``/``sgd_step`` use the same computation as a plain
``nn.Module`` (engine/torch/model.py). Weights cross the boundary as canonical numpy dicts (engine.weights); the caller draws them.
Hook epochs and batches are 0-based (the same ``epoch`` that ``grouping.epoch_order`` takes).
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.backend_api import (Batch, PhysicsConstants, TrainHooks, TrainingData, TrainResult, check_accelerator,
                                predict_in_batches)
from engine.config import ModelConfig, RunConfig, TrainingConfig
from engine.distributed import Topology, check_device_count, device_count
from engine.errors import InputError
from engine.torch import ops  # noqa: F401  (part of the backend API: level-0 parity ops)
from engine.torch.refine import refine, refine_step  # noqa: F401  (part of the backend API)
from engine.torch.model import PinnModel
from engine.torch.network import canonical_state
from engine.weights import check_weights

#: Lightning messages that are expected here (single process, in-memory numpy data, no logger).
_HARMLESS = (
    r".*does not have many workers.*",
    r".*num_workers.*",
    r".*is smaller than the logging interval.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*LightningModule.*has parameters that were not used.*",
    r".*You defined a `validation_step` but have no `val_dataloader`.*",  # no validation groups
    r".*The dirpath has changed from.*",  # resuming from another run's checkpoint directory
    r".*isinstance\(treespec, LeafSpec\).*",  # torch 2.13 deprecation inside Lightning's batch-size probe
)


def cpu_threads() -> int:
    """Cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _quiet_lightning():
    """Silence the known-harmless Lightning warnings and info banners, only while we run."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for pattern in _HARMLESS:
            warnings.filterwarnings("ignore", message=pattern)
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


@contextlib.contextmanager
def _restore_determinism():
    """Deterministic algorithms for the run only; Lightning would leave the global switch on afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _tensors(batch: Batch, device="cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(device)
                 for a in (batch.x, batch.counts, batch.offsets))


def check_devices(accelerator: str, devices, num_nodes: int = 1) -> None:
    """Refuse (InputError, exit 2) a device request this machine cannot honour, before the run starts.
    On CPU a "device" is a process (DDP over gloo), up to one per core; on GPUs one per visible GPU."""
    check_accelerator(accelerator)
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise InputError("--accelerator", accelerator, "a GPU that PyTorch can use; none is visible here (this is "
                         "the CPU build, or no CUDA device): use --accelerator cpu, or install the CUDA build (README, "
                         "GPU install)")
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    check_device_count(devices, torch.cuda.device_count() if gpu else cpu_threads(), gpu)


def replica_processes(accelerator: str, devices) -> int:
    """Processes per node for ``devices``: one per device (DDP), CPU or GPU."""
    return device_count(devices)


def resume_checkpoint(resume: Path | str | None, cfg: ModelConfig) -> Path | None:
    """The .ckpt to resume from (a file, or a directory holding last.ckpt), checked before Lightning sees it.

    Loaded with ``weights_only=True`` (no arbitrary unpickling); a checkpoint of another model is bad input.
    """
    if resume is None:
        return None
    path = Path(resume)
    if path.is_dir():
        path = path / "last.ckpt"
    if not path.is_file():
        raise InputError(str(resume), None, "a Lightning checkpoint (.ckpt) or a directory holding last.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = {k[len("net."):]: v.numpy() for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    except Exception as exc:  # any unreadable file is the user's input, not our failure
        raise InputError(str(path), None, f"a readable Lightning checkpoint ({type(exc).__name__})") from exc
    problem = check_weights(cfg, state)
    if problem:
        raise InputError(str(path), "state_dict", f"a checkpoint of this model ({problem})")
    return path


def train(cfg: RunConfig, data: TrainingData, consts: PhysicsConstants, weights: dict[str, np.ndarray],
          hooks: TrainHooks, checkpoint_dir: Path | None, resume: Path | None = None, *,
          accelerator: str = "cpu", devices=1, replicas: Topology | None = None) -> TrainResult:
    """Train from ``weights`` (or from ``resume``) for cfg.training.epochs epochs in total.

    ``checkpoint_dir``: Lightning writes ``last.ckpt`` there after every epoch (None: no checkpoints).
    ``resume``: a .ckpt file or a directory holding ``last.ckpt``; its weights, Adam state, epoch counter and
    history replace ``weights``.
    ``replicas``: this process is one rank of several (Lightning DDP, engine/torch/distributed.py); checkpoints are
    then always on and written by rank 0 alone (the other ranks' ``checkpoint_dir`` is ignored).
    """
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from engine.torch.module import HookBridge, PtychoModule, make_loader

    tc: TrainingConfig = cfg.training
    ckpt_path = resume_checkpoint(resume, cfg.model)
    torch.manual_seed(tc.seed)
    world = replicas.world if replicas is not None else 1
    if accelerator == "cpu":
        torch.set_num_threads(max(1, cpu_threads() // (replicas.per_node if replicas is not None else 1)))
    module = PtychoModule(cfg, consts, weights)
    rank = replicas.rank if replicas is not None else 0
    train_loader = make_loader(data, data.train, tc.batch_size, tc.seed, shuffle=True, replica=rank, replicas=world)
    val_loader = make_loader(data, data.val, tc.batch_size, tc.seed, shuffle=False) if len(data.val) else None
    bridge = HookBridge(hooks, tc.epochs)
    callbacks: list[L.Callback] = [bridge]
    distributed: dict = {}
    if replicas is not None and world > 1:
        import tempfile

        from engine.torch.distributed import ddp_strategy

        # every rank needs the same callbacks (ModelCheckpoint broadcasts rank 0's directory; only rank 0 writes)
        checkpoint_dir = checkpoint_dir if replicas.chief else Path(tempfile.gettempdir()) / "pinnacle-unused"
        distributed = {"strategy": ddp_strategy(replicas, accelerator), "num_nodes": replicas.num_nodes,
                       "use_distributed_sampler": False}
    if checkpoint_dir is not None:
        callbacks.append(ModelCheckpoint(dirpath=str(checkpoint_dir), save_last=True))
    with _quiet_lightning(), _restore_determinism():
        trainer = L.Trainer(
            accelerator=accelerator, devices=devices, max_epochs=tc.epochs,
            enable_progress_bar=False, logger=False, enable_model_summary=False,
            deterministic=accelerator == "cpu", callbacks=callbacks, enable_checkpointing=checkpoint_dir is not None,
            num_sanity_val_steps=0, log_every_n_steps=1,
            default_root_dir=str(checkpoint_dir) if checkpoint_dir is not None else None, **distributed,
        )
        trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader,
                    ckpt_path=str(ckpt_path) if ckpt_path else None)
    return TrainResult(weights=canonical_state(module.net), history=list(module.history),
                       status="cancelled" if bridge.cancelled else "ok")


def _module(cfg: ModelConfig, weights: dict[str, np.ndarray], consts: PhysicsConstants,
            loss: str = "poisson", learning_rate: float = 1e-3) -> PinnModel:
    run = RunConfig(model=cfg, training=TrainingConfig(loss=loss, learning_rate=learning_rate), backend="torch")
    return PinnModel(run, consts, weights)


def predict(cfg: ModelConfig, weights: dict[str, np.ndarray], consts: PhysicsConstants, x: np.ndarray,
            offsets: np.ndarray | None, batch_size: int, *, progress: Callable[[int, int], None] | None = None,
            device: str = "cpu", accelerator: str | None = None, replicas: Topology | None = None) -> np.ndarray:
    """Complex object patches (M, C, N, N) complex64, after merge/re-extract when C > 1 (before the probe).

    ``progress(done, total)`` is called after every batch (it may raise to cancel). ``accelerator`` (None: use
    ``device``) picks the device: one rank of ``replicas`` (engine/shards.py) takes its node's ``local_rank``-th
    GPU, or its share of the CPU cores.
    """
    if accelerator is not None:
        gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
        device = f"cuda:{replicas.local_rank if replicas is not None else 0}" if gpu else "cpu"
    if device == "cpu":
        torch.set_num_threads(max(1, cpu_threads() // (replicas.per_node if replicas is not None else 1)))
    module = _module(cfg, weights, consts).to(device).eval()  # channels-last inside (engine/torch/model.py)

    def step(xb: np.ndarray, ob: np.ndarray) -> np.ndarray:
        xt, ot = (torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(device) for a in (xb, ob))
        return module(xt, ot).cpu().numpy()

    with torch.inference_mode():
        return predict_in_batches(step, x, offsets, batch_size, cfg.channels, cfg.N, progress)


def batch_loss(cfg: ModelConfig, weights: dict[str, np.ndarray], consts: PhysicsConstants, batch: Batch,
               loss: str) -> float:
    """The training loss of one batch for these weights (no update)."""
    module = _module(cfg, weights, consts, loss=loss).eval()
    with torch.inference_mode():
        return float(module.loss(_tensors(batch)))


def sgd_step(cfg: RunConfig, weights: dict[str, np.ndarray], consts: PhysicsConstants,
             batch: Batch) -> dict[str, np.ndarray]:
    """One Adam step (cfg.training's loss and learning rate) from ``weights`` on ``batch``; canonical weights after."""
    torch.manual_seed(cfg.training.seed)
    module = PinnModel(cfg, consts, weights)
    optimizer = module.configure_optimizers()
    optimizer.zero_grad()
    module.loss(_tensors(batch)).backward()
    optimizer.step()
    return canonical_state(module.net)


def gradients(cfg: ModelConfig, weights: dict[str, np.ndarray], consts: PhysicsConstants, batch: Batch,
              loss: str) -> dict[str, np.ndarray]:
    """∂loss/∂parameter of one batch for every canonical parameter (canonical layout), as training computes it."""
    module = _module(cfg, weights, consts, loss=loss)
    module.loss(_tensors(batch)).backward()
    return {name: p.grad.detach().numpy().copy() for name, p in module.net.named_parameters()}


def optimizer_steps(cfg: RunConfig, weights: dict[str, np.ndarray], consts: PhysicsConstants,
                    gradients: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The training optimiser (cfg.training's learning rate) applied to each given gradient in turn."""
    module = PinnModel(cfg, consts, weights)
    optimizer = module.configure_optimizers()
    for g in gradients:
        for name, p in module.net.named_parameters():
            p.grad = torch.from_numpy(np.ascontiguousarray(g[name], np.float32))
        optimizer.step()
    return canonical_state(module.net)
