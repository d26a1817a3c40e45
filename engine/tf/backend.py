"""The backend module API of engine/backend_api.py, on TensorFlow/Keras 3 (the default backend).

Training is an explicit loop around a ``tf.GradientTape`` step compiled once with ``tf.function`` (fixed input
signature, free batch dimension, so the short last batch does not retrace). Model.fit would read worse here: the
batch order must be the shared numpy order (grouping.epoch_order/batches, identical in both backends), the loss
needs the physics constants (probe, photon scale, merge window) rather than (y_true, y_pred), and the pipeline's
hooks must fire after every batch so that a cancel request stops at once — all three fight fit()'s data adapters
and callback timing. Weights cross the boundary as canonical numpy dicts (engine.weights); the caller draws them.
Hook epochs and batches are 0-based (the ``epoch`` that ``grouping.epoch_order`` takes), as in the torch backend.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from engine.tf.framework import keras, tf  # first: imports TF without matplotlib.pyplot
from engine import grouping
from engine.backend_api import (ADAM_BETAS, ADAM_EPS, Batch, PhysicsConstants, TrainHooks, TrainingData, TrainResult,
                                check_accelerator, predict_in_batches)
from engine.config import ModelConfig, RunConfig
from engine.distributed import Topology, check_device_count, device_count
from engine.errors import InputError
from engine.physics import merge_pad, merge_window
from engine.schedule import learning_rate
from engine.tf import ops  # noqa: F401  (part of the backend API: level-0 parity ops)
from engine.tf.refine import refine, refine_step  # noqa: F401  (part of the backend API)
from engine.tf import physics as tp
from engine.tf.network import build_network, canonical_variables, canonical_weights, load_canonical
from engine.weights import from_hwio, to_hwio

#: Checkpoints kept in checkpoint_dir (the newest is what ``resume`` restores).
KEEP_CHECKPOINTS = 2


class Pinn:
    """Network + physics constants + the compiled steps. One instance per job; nothing global."""

    def __init__(self, cfg: ModelConfig, consts: PhysicsConstants, weights: dict[str, np.ndarray],
                 loss: str = "poisson", learning_rate: float | None = None):
        self.cfg = cfg
        self.model = build_network(cfg)
        load_canonical(self.model, weights, cfg)
        N, C = cfg.N, cfg.channels
        R = N + 2 * merge_pad(N)
        self.probe = tf.constant(np.asarray(consts.probe, np.complex64))
        self.photon_scale = float(consts.photon_scale)
        self.window = tf.constant(merge_window(N))
        self.k = tp.fftfreq(R)  # ky = kx: the merged region is square
        valid = None if consts.valid is None else tf.constant(np.asarray(consts.valid, bool))  # detector mask
        self.loss_fn = tp.LOSSES[loss] if valid is None else functools.partial(tp.LOSSES[loss], valid=valid)
        self.optimizer = None
        if learning_rate is not None:
            self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=ADAM_BETAS[0],
                                                   beta_2=ADAM_BETAS[1], epsilon=ADAM_EPS)
            self.optimizer.build(self.model.trainable_variables)
        # Fixed signature with a free batch dimension: one trace per job. No tensor-dependent Python control
        # flow below, so autograph is off (it only slows the trace).
        x = tf.TensorSpec((None, C, N, N), tf.float32)
        off = tf.TensorSpec((None, C, 2), tf.float32)
        self.predict_step = tf.function(self._objects, input_signature=[x, off], autograph=False)
        self.eval_step = tf.function(self._loss, input_signature=[x, x, off], autograph=False)
        self.train_step = tf.function(self._train_step, input_signature=[x, x, off], autograph=False)
        self.grad_step = tf.function(self._gradients, input_signature=[x, x, off], autograph=False)
        self.named = canonical_variables(self.model)  # [(canonical name, variable)], parameter_specs order

    # ------------------------------------------------------------------------------ model, top to bottom
    def _objects(self, x: tf.Tensor, offsets: tf.Tensor) -> tf.Tensor:
        """Complex object patches (B, C, N, N) after the overlap constraint (merge → re-extract when C > 1)."""
        amp, phase = self.model(x, training=False)
        obj = tp.object_patches(amp, phase)
        if self.cfg.channels > 1:
            region, _ = tp.merge_group(obj, offsets, self.window, self.k, self.k)
            obj = tp.reextract_group(region, offsets, self.cfg.N, self.k, self.k)
        return obj

    def _loss(self, x: tf.Tensor, counts: tf.Tensor, offsets: tf.Tensor) -> tf.Tensor:
        lam = tp.forward_intensity(self.probe, self._objects(x, offsets), self.photon_scale)
        return self.loss_fn(lam, counts)

    def _gradients(self, x: tf.Tensor, counts: tf.Tensor, offsets: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        variables = [v for _, v in self.named]
        with tf.GradientTape() as tape:
            loss = self._loss(x, counts, offsets)
        return loss, tape.gradient(loss, variables)

    def _train_step(self, x: tf.Tensor, counts: tf.Tensor, offsets: tf.Tensor) -> tf.Tensor:
        loss, grads = self._gradients(x, counts, offsets)
        self.optimizer.apply_gradients(zip(grads, [v for _, v in self.named]))
        return loss

    # --------------------------------------------------------------------------------------- helpers
    def loss_of(self, batch: Batch) -> float:
        return float(self.eval_step(*_tensors(batch)))

    def step(self, batch: Batch) -> float:
        return float(self.train_step(*_tensors(batch)))

    def weights(self) -> dict[str, np.ndarray]:
        return canonical_weights(self.model)

    def gradients(self, batch: Batch) -> dict[str, np.ndarray]:
        """∂loss/∂parameter in canonical names and layout (OIHW kernels)."""
        _, grads = self.grad_step(*_tensors(batch))
        return {name: _to_canonical(name, g.numpy()) for (name, _), g in zip(self.named, grads)}

    def apply(self, gradients: dict[str, np.ndarray]) -> None:
        """One optimiser step with the given canonical gradients (not this model's own)."""
        grads = [tf.constant(_from_canonical(name, gradients[name])) for name, _ in self.named]
        self.optimizer.apply_gradients(zip(grads, [v for _, v in self.named]))


def _to_canonical(name: str, a: np.ndarray) -> np.ndarray:
    return from_hwio(a) if name.endswith(".weight") else np.asarray(a, np.float32)


def _from_canonical(name: str, a: np.ndarray) -> np.ndarray:
    return to_hwio(np.asarray(a, np.float32)) if name.endswith(".weight") else np.asarray(a, np.float32)


def _tensors(batch: Batch) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    return tuple(tf.constant(np.asarray(a, np.float32)) for a in (batch.x, batch.counts, batch.offsets))


def _val_loss(pinn: Pinn, data: TrainingData, batch_size: int) -> float | None:
    """Sample-weighted mean loss over the validation groups, in order; None when there are none."""
    if len(data.val) == 0:
        return None
    total, samples = 0.0, 0
    for sel in grouping.batches(np.arange(len(data.val)), batch_size):
        batch = data.batch(data.val, sel)
        total += pinn.loss_of(batch) * len(batch)
        samples += len(batch)
    return total / samples


class _Checkpoints:
    """Weights + Adam state + finished-epoch history in one ``tf.train.Checkpoint`` (one atomic write per epoch)."""

    def __init__(self, pinn: Pinn, directory: Path | None):
        self.epoch = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.history = tf.Variable("[]", dtype=tf.string, trainable=False)
        self.ckpt = tf.train.Checkpoint(model=pinn.model, optimizer=pinn.optimizer, epoch=self.epoch,
                                        history=self.history)
        self.manager = None
        if directory is not None:
            self.manager = tf.train.CheckpointManager(self.ckpt, str(directory), max_to_keep=KEEP_CHECKPOINTS,
                                                      checkpoint_name="ckpt")

    def save(self, epoch: int, history: list[dict]) -> None:
        if self.manager is None:
            return
        self.epoch.assign(epoch)
        self.history.assign(json.dumps(history))
        self.manager.save(checkpoint_number=epoch)

    def restore(self, directory: Path) -> tuple[int, list[dict]]:
        """(last finished epoch, history) from the newest checkpoint in ``directory``."""
        path = tf.train.latest_checkpoint(str(directory))
        if path is None:
            raise InputError(str(directory), None, "a directory holding a TensorFlow checkpoint of this backend")
        try:
            self.ckpt.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as exc:
            raise InputError(str(directory), None, f"a checkpoint of this model and config ({exc})") from exc
        return int(self.epoch.numpy()), json.loads(self.history.numpy().decode())


def check_devices(accelerator: str, devices, num_nodes: int = 1) -> None:
    """Refuse (InputError, exit 2) a device request this machine cannot honour, before the run starts.
    TensorFlow places work on a visible GPU by itself; ``cpu`` hides GPUs for this process (in ``train``). On CPU a
    "device" is a worker process (MultiWorkerMirroredStrategy), up to one per core; on GPUs one per visible GPU."""
    check_accelerator(accelerator)
    gpus = tf.config.list_physical_devices("GPU")
    if accelerator in ("gpu", "cuda") and not gpus:
        raise InputError("--accelerator", accelerator, "a GPU that TensorFlow can use; none is visible here "
                         "(tensorflow-cpu, or no CUDA device): use --accelerator cpu, or install tensorflow[and-cuda] "
                         "(README, GPU install)")
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and bool(gpus))
    available = len(gpus) if gpu else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    check_device_count(devices, available, gpu)


def replica_processes(accelerator: str, devices) -> int:
    """Processes per node: one per CPU replica; one driving all of a node's GPUs (tf.distribute mirrors them)."""
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and bool(tf.config.list_physical_devices("GPU")))
    return 1 if gpu else device_count(devices)


def train(cfg: RunConfig, data: TrainingData, consts: PhysicsConstants, weights: dict[str, np.ndarray],
          hooks: TrainHooks, checkpoint_dir: Path | None, resume: Path | None = None, *,
          accelerator: str = "cpu", devices=1, replicas: Topology | None = None) -> TrainResult:
    """Train from ``weights`` (or from the newest checkpoint in ``resume``) for cfg.training.epochs epochs in total.

    A checkpoint goes to ``checkpoint_dir`` after every finished epoch (None: no checkpoints).
    ``replicas``: this process is one worker of several (engine/tf/distributed.py); checkpoints are then always on,
    rank 0's in ``checkpoint_dir``, the others' (every worker saves: tf.distribute's rule) into a scratch directory.
    """
    from engine.tf.distributed import ReplicatedStep, make_strategy, share_cores

    tc = cfg.training
    if accelerator == "cpu" and tf.config.list_physical_devices("GPU"):
        tf.config.set_visible_devices([], "GPU")
    if replicas is not None and accelerator == "cpu":
        share_cores(replicas.per_node)
    strategy = make_strategy(replicas, accelerator, devices)  # before the first op (collectives start with it)
    scratch = None
    if replicas is not None and not replicas.chief:
        checkpoint_dir = scratch = Path(tempfile.mkdtemp(prefix="pinnacle-rank-"))
    try:
        tf.random.set_seed(tc.seed)  # nothing here draws random numbers; seeded anyway so that stays deterministic
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            pinn = Pinn(cfg.model, consts, weights, loss=tc.loss, learning_rate=tc.learning_rate)
        step = ReplicatedStep(pinn, strategy) if strategy is not None else None
        return _train_loop(cfg, data, pinn, step, hooks, checkpoint_dir, resume)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _train_loop(cfg: RunConfig, data: TrainingData, pinn: Pinn, step, hooks: TrainHooks,
                checkpoint_dir: Path | None, resume: Path | None) -> TrainResult:
    """The epochs; ``step`` (engine/tf/distributed.py) runs each global batch over the replicas, None: here."""
    tc = cfg.training
    checkpoints = _Checkpoints(pinn, None if checkpoint_dir is None else Path(checkpoint_dir))
    history: list[dict] = []
    start = 0
    if resume is not None:
        last, history = checkpoints.restore(Path(resume))
        start = last + 1
    n_batches = len(grouping.batches(np.arange(len(data.train)), tc.batch_size))
    hooks.on_train_start(tc.epochs, n_batches)
    for epoch in range(start, tc.epochs):
        t0 = time.perf_counter()
        lr = learning_rate(tc.learning_rate, tc.lr_schedule, epoch, tc.epochs)  # the same call as the torch backend's
        pinn.optimizer.learning_rate.assign(lr)
        total, samples = 0.0, 0
        order = data.epoch_order(tc.seed, epoch)  # with an orientation per group (engine/augment.py)
        for b, sel in enumerate(grouping.batches(order, tc.batch_size)):
            if step is None:
                batch = data.batch(data.train, sel)
                loss, n, stop = pinn.step(batch), len(batch), None
            else:  # the stop request travels with the step, so every replica stops after the same batch
                loss, n, stop = step(data, data.train, sel, hooks.should_stop())
            total += loss * n
            samples += n
            hooks.on_batch_end(epoch, b, n_batches, loss, n)
            if hooks.should_stop() if stop is None else stop:  # a partial epoch is neither reported nor saved
                return TrainResult(weights=pinn.weights(), history=history, status="cancelled")
        train_seconds = max(time.perf_counter() - t0, 1e-9)
        val_loss = _val_loss(pinn, data, tc.batch_size)
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch, "train_loss": total / samples, "val_loss": val_loss, "lr": lr,
                  "seconds": seconds, "samples_per_s": samples / train_seconds}
        history.append(record)
        checkpoints.save(epoch, history)
        hooks.on_epoch_end(epoch, record["train_loss"], val_loss, lr, seconds, record["samples_per_s"],
                           pinn.weights)
    return TrainResult(weights=pinn.weights(), history=history, status="ok")


def predict(cfg: ModelConfig, weights: dict[str, np.ndarray], consts: PhysicsConstants, x: np.ndarray,
            offsets: np.ndarray | None, batch_size: int, *,
            progress: Callable[[int, int], None] | None = None, accelerator: str | None = None,
            replicas: Topology | None = None) -> np.ndarray:
    """Complex object patches (M, C, N, N) complex64, after merge/re-extract when C > 1 (before the probe).

    One model and one traced graph for all batches; ``progress(done, total)`` after each (it may raise to cancel).
    ``accelerator`` None: TensorFlow's own placement; else this process's device — one rank of ``replicas``
    (engine/shards.py) takes its node's ``local_rank``-th GPU, or its share of the CPU cores.
    """
    with _placement(accelerator, replicas):
        pinn = Pinn(cfg, consts, weights)

        def step(xb: np.ndarray, ob: np.ndarray) -> np.ndarray:
            xt, ot = (tf.constant(np.asarray(a, np.float32)) for a in (xb, ob))
            return pinn.predict_step(xt, ot).numpy()

        return predict_in_batches(step, x, offsets, batch_size, cfg.channels, cfg.N, progress)


def _placement(accelerator: str | None, replicas: Topology | None):
    """The device scope of ``predict`` (see there)."""
    if accelerator is None:
        return contextlib.nullcontext()
    gpus = tf.config.list_logical_devices("GPU") if accelerator != "cpu" else []
    if gpus:
        return tf.device(gpus[(replicas.local_rank if replicas is not None else 0) % len(gpus)].name)
    if replicas is not None:
        from engine.tf.distributed import share_cores

        share_cores(replicas.per_node)
    return tf.device("/CPU:0")


def batch_loss(cfg: ModelConfig, weights: dict[str, np.ndarray], consts: PhysicsConstants, batch: Batch,
               loss: str) -> float:
    """The training loss of one batch for these weights (no update)."""
    return Pinn(cfg, consts, weights, loss=loss).loss_of(batch)


def sgd_step(cfg: RunConfig, weights: dict[str, np.ndarray], consts: PhysicsConstants,
             batch: Batch) -> dict[str, np.ndarray]:
    """One Adam step (cfg.training's loss and learning rate) from ``weights`` on ``batch``; canonical weights after."""
    tf.random.set_seed(cfg.training.seed)
    pinn = Pinn(cfg.model, consts, weights, loss=cfg.training.loss, learning_rate=cfg.training.learning_rate)
    pinn.step(batch)
    return pinn.weights()


def gradients(cfg: ModelConfig, weights: dict[str, np.ndarray], consts: PhysicsConstants, batch: Batch,
              loss: str) -> dict[str, np.ndarray]:
    """∂loss/∂parameter of one batch for every canonical parameter (canonical layout), as training computes it."""
    return Pinn(cfg, consts, weights, loss=loss).gradients(batch)


def optimizer_steps(cfg: RunConfig, weights: dict[str, np.ndarray], consts: PhysicsConstants,
                    gradients: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The training optimiser (cfg.training's learning rate) applied to each given gradient in turn."""
    pinn = Pinn(cfg.model, consts, weights, loss=cfg.training.loss, learning_rate=cfg.training.learning_rate)
    for g in gradients:
        pinn.apply(g)
    return pinn.weights()
