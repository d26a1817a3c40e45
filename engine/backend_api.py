"""What every backend implements, and the numpy-side data both of them consume.

The pipeline (backend-neutral) prepares ``TrainingData`` and ``PhysicsConstants`` in numpy, draws the initial
weights (engine.weights) and the batch order (engine.grouping), then calls the backend module's functions:

    train(cfg: RunConfig, data: TrainingData, consts: PhysicsConstants, weights: dict, hooks: TrainHooks,
          checkpoint_dir: Path, resume: Path | None, *, accelerator, devices,
          replicas: engine.distributed.Topology | None) -> TrainResult
           (replicas: this process is one rank of a data-parallel training — each rank takes its
           engine.distributed.shard of every global batch, the framework reduces the gradients, every rank stops
           after the same step, rank 0 alone writes checkpoints; docs/scaling.md)
    predict(cfg: ModelConfig, weights: dict, consts: PhysicsConstants, x, offsets, batch_size, *, progress,
            accelerator, replicas) -> complex patches
           (accelerator None: the framework's default placement; replicas: this process is one rank of a
           distributed inference and predicts one shard on its own device or share of the cores; engine/shards.py)
    batch_loss(cfg: ModelConfig, weights: dict, consts: PhysicsConstants, batch: Batch, loss: str) -> float
    sgd_step(cfg: RunConfig, weights: dict, consts: PhysicsConstants, batch: Batch) -> dict  (one Adam step)
    gradients(cfg: ModelConfig, weights: dict, consts: PhysicsConstants, batch: Batch, loss: str) -> dict
           (∂loss/∂parameter for every canonical parameter, canonical layout; level-2 parity)
    optimizer_steps(cfg: RunConfig, weights: dict, consts: PhysicsConstants, gradients: list[dict]) -> dict
           (the training optimiser applied to the given gradients, one step each; level-2 parity)
    refine(problem: RefineProblem, start: RefineState, cfg: RefineConfig, hooks: RefineHooks) -> RefineResult
    refine_step(problem, state, sel, cfg, update_probe) -> (RefineState, deviance)   (level-2 parity)
           (engine/refine.py: the object, optionally the probe, fitted to the counts; numpy in and out)
    ops  — a module mirroring engine.physics for level-0 parity: fourier_shift, merge_group, reextract_group,
           forward_intensity, poisson_deviance, amplitude_mae (numpy in, numpy out)
    check_devices(accelerator: str, devices, num_nodes=1) -> None   (refuses a device request; starts with
           ``check_accelerator``)
    replica_processes(accelerator: str, devices) -> int   (processes per node for ``devices`` replicas)

Tensors cross this boundary as numpy, channels-first ``(B, C, N, N)``; a backend transposes internally if it wants.
Both backends batch with ``gather_batch`` so they see identical arrays in identical order, and ``predict`` runs
its batches through ``predict_in_batches`` (each backend supplies the per-batch call).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from engine.errors import InputError
from engine.grouping import Groups


@dataclass(frozen=True)
class PhysicsConstants:
    probe: np.ndarray  # (N, N) complex64, as measured/guessed (not rescaled)
    photon_scale: float
    input_scale: float
    N: int
    C: int
    valid: np.ndarray | None = None  # (N, N) bool detector mask, True = measured: the loss averages over these only

    @property
    def predicted(self) -> int:
        """Side of the central region the network predicts."""
        return self.N // 2


@dataclass(frozen=True)
class Batch:
    x: np.ndarray  # (B, C, N, N) float32 network input (amplitude × input_scale)
    counts: np.ndarray  # (B, C, N, N) float32 measured counts (amplitude²)
    offsets: np.ndarray  # (B, C, 2) float32 (dx, dy) from the group centre

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class TrainingData:
    amplitude: np.ndarray  # (M, N, N) float32 measured amplitude
    train: Groups
    val: Groups
    input_scale: float
    #: engine/augment.py: the orientations the training order may draw (identity first); (0,): none.
    orientations: tuple[int, ...] = (0,)

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """The training order of ``epoch``: group indices into ``train``, each carried into a random orientation
        slot (slot × len(train) + group) when there is more than one orientation."""
        from engine import augment

        return augment.epoch_order(len(self.train), seed, epoch, len(self.orientations))

    def batch(self, groups: Groups, sel: np.ndarray) -> Batch:
        """The batch of ``sel``: indices into ``groups``, or entries of ``epoch_order`` (slot × len(groups) +
        index) whose slot picks the orientation."""
        sel = np.asarray(sel)
        slot, index = np.divmod(sel, len(groups))
        codes = np.asarray(self.orientations)[slot] if slot.any() else None
        return gather_batch(self.amplitude, groups.take(index), self.input_scale, codes)


def predict_in_batches(step: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray,
                       offsets: np.ndarray | None, batch_size: int, channels: int, N: int,
                       progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The batched loop of every backend's ``predict``: (M, C, N, N) complex64 from ``step(xb, ob)``, the backend's
    call on one batch (numpy slices of x and offsets in, numpy out); offsets None means zeros.
    ``progress(done, total)`` after every batch (it may raise to cancel)."""
    M = len(x)
    if offsets is None:
        offsets = np.zeros((M, channels, 2), np.float32)
    out = np.empty((M, channels, N, N), np.complex64)
    for s in range(0, M, batch_size):
        out[s:s + batch_size] = step(x[s:s + batch_size], offsets[s:s + batch_size])
        if progress is not None:
            progress(min(s + batch_size, M), M)
    return out


def gather_batch(amplitude: np.ndarray, groups: Groups, input_scale: float,
                 orientations: np.ndarray | None = None) -> Batch:
    """The batch of ``groups``; ``orientations`` (B,): each group's patterns and offsets turned by that code
    (engine/augment.py), None: as measured."""
    amp = amplitude[groups.indices]  # (B, C, N, N)
    offsets = groups.offsets
    if orientations is not None:
        from engine.augment import orient, orient_offsets

        amp = np.stack([orient(a, int(c)) for a, c in zip(amp, orientations)])
        offsets = np.stack([orient_offsets(d, int(c)) for d, c in zip(offsets, orientations)])
    return Batch(
        x=(amp * np.float32(input_scale)).astype(np.float32),
        counts=(amp.astype(np.float32) ** 2),
        offsets=offsets.astype(np.float32),
    )


def check_accelerator(accelerator: str) -> None:
    """The first check of every backend's ``check_devices``: an accelerator name both backends know (InputError)."""
    if accelerator not in ("cpu", "gpu", "cuda", "auto"):
        raise InputError("--accelerator", accelerator, "one of cpu, gpu, auto")


#: The training optimiser of both backends: Adam with Keras' defaults and Keras' update rule (epsilon added to the
#: uncorrected sqrt(v); engine/torch/optim.py writes it out for torch).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-7


class TrainHooks(Protocol):
    """Called by a backend's training loop; the pipeline turns these into events (docs/protocol.md) and checkpoints."""

    def on_train_start(self, epochs: int, batches_per_epoch: int) -> None: ...
    def on_batch_end(self, epoch: int, batch: int, batches: int, loss: float, samples: int) -> None: ...
    def on_epoch_end(self, epoch: int, train_loss: float, val_loss: float | None, lr: float,
                     seconds: float, samples_per_s: float, weights: "WeightsGetter") -> None: ...
    def should_stop(self) -> bool: ...


class WeightsGetter(Protocol):
    def __call__(self) -> dict[str, np.ndarray]: ...


class RefineHooks(Protocol):
    """Called by a backend's refinement loop (engine/refine.py); the job turns these into events."""

    def on_start(self, epochs: int, patterns: int) -> None: ...
    def on_batch_end(self, epoch: int, done: int, loss: float) -> None: ...
    def on_epoch_end(self, epoch: int, loss: float, seconds: float, patterns_per_s: float,
                     state: "Callable[[], object]") -> None: ...  # state(): the RefineState now (a copy)
    def should_stop(self) -> bool: ...


@dataclass
class RefineResult:
    state: "object"  # engine.refine.RefineState (numpy)
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, loss (deviance/pixel), seconds, patterns_per_s
    status: str = "ok"  # ok | cancelled | diverged


@dataclass
class TrainResult:
    weights: dict[str, np.ndarray]
    history: list[dict] = field(default_factory=list)  # one dict per epoch: epoch, train_loss, val_loss, lr, seconds
    status: str = "ok"  # ok | cancelled


@runtime_checkable
class Backend(Protocol):
    """The contract, typed: what ``engine.backends.load_backend`` returns. A backend is a module (engine/tf/backend.py,
    engine/torch/backend.py) whose public functions match these (PEP 544: a module satisfies a protocol through its
    attributes; ``self`` is not part of the module's signature). tests/test_backend_contract.py checks that every
    registered backend has each member with at least these parameters, so a third backend that misses one fails
    there rather than in the middle of a job. Extra keyword options a backend accepts beyond these (e.g. a device)
    are its own; nothing outside the backend passes them."""

    ops: ModuleType  # engine.physics's level-0 ops, framework-side (numpy in, numpy out)

    def train(self, cfg, data: TrainingData, consts: PhysicsConstants, weights: dict[str, np.ndarray],
              hooks: TrainHooks, checkpoint_dir, resume=None, *, accelerator: str = "cpu", devices=1,
              replicas=None) -> TrainResult: ...

    def predict(self, cfg, weights: dict[str, np.ndarray], consts: PhysicsConstants, x: np.ndarray,
                offsets: np.ndarray | None, batch_size: int, *, progress: Callable[[int, int], None] | None = None,
                accelerator: str | None = None, replicas=None) -> np.ndarray: ...

    def batch_loss(self, cfg, weights: dict[str, np.ndarray], consts: PhysicsConstants, batch: Batch,
                   loss: str) -> float: ...

    def sgd_step(self, cfg, weights: dict[str, np.ndarray], consts: PhysicsConstants,
                 batch: Batch) -> dict[str, np.ndarray]: ...

    def gradients(self, cfg, weights: dict[str, np.ndarray], consts: PhysicsConstants, batch: Batch,
                  loss: str) -> dict[str, np.ndarray]: ...

    def optimizer_steps(self, cfg, weights: dict[str, np.ndarray], consts: PhysicsConstants,
                        gradients: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]: ...

    def refine(self, problem, start, cfg, hooks: RefineHooks) -> RefineResult: ...

    def refine_step(self, problem, state, sel: np.ndarray, cfg, update_probe: bool) -> tuple: ...

    def check_devices(self, accelerator: str, devices, num_nodes: int = 1) -> None: ...

    def replica_processes(self, accelerator: str, devices) -> int: ...
