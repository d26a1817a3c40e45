"""The refinement loop both backends run around their own step (their level-0 refinement ops: engine/level0.py).

Why here: engine/tf/refine.py and engine/torch/refine.py ran the same loop line for line (batches in the shared
order, hooks after every batch, epoch momentum, StepControl's keep/revert); only the tensor operations differ. A
backend hands ``run`` its ``Refiner`` (the compiled step) and a ``Tensors`` of its framework's operations;
engine.refine.refine is the numpy reference of the same loop.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from engine import refine as R
from engine.backend_api import RefineHooks, RefineResult


@dataclass(frozen=True)
class Tensors:
    """What the loop asks of a framework. ``copy`` keeps a state that the next step must not change (identity where
    tensors are immutable); ``momentum(mask, eta, velocity, obj, begin)`` → (velocity, obj) after the epoch's
    momentum; ``state(obj, probe)`` → a numpy RefineState."""

    tensor: Callable[[np.ndarray], Any]
    copy: Callable[[Any], Any]
    zeros_like: Callable[[Any], Any]
    momentum: Callable[..., tuple[Any, Any]]
    state: Callable[[Any, Any], R.RefineState]


def run(ref, kit: Tensors, problem: R.RefineProblem, start: R.RefineState, cfg: R.RefineConfig,
        hooks: RefineHooks) -> RefineResult:
    """engine.refine.refine with ``ref.step`` (object, probe, sel, update_probe, step) → (object, probe, deviance),
    progress and cancel through ``hooks`` (checked after every batch)."""
    obj, probe = kit.tensor(start.object), kit.tensor(start.probe)
    velocity = kit.zeros_like(obj)
    lowpass = R.PhaseLowpass.of(problem, start.probe) if cfg.low_frequency_gain > 0 else None
    phase_velocity = np.zeros(start.object.shape)  # numpy: the low-pass is a grid operation, once per epoch
    control = R.StepControl(cfg)
    best = (obj, probe)
    pixels = problem.pixels
    history: list[dict] = []
    hooks.on_start(cfg.epochs, problem.M)
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        begin, total, done = (kit.copy(obj), kit.copy(probe)), 0.0, 0
        for sel in R.epoch_batches(problem.M, cfg, epoch):
            obj, probe, dev = ref.step(obj, probe, sel, cfg.refine_probe and epoch >= cfg.probe_start, control.step)
            total += dev
            done += len(sel)
            hooks.on_batch_end(epoch, done, dev / (len(sel) * pixels))
            if hooks.should_stop():
                return RefineResult(kit.state(obj, probe), history, "cancelled")
        loss = total / (problem.M * pixels)
        if cfg.momentum > 0:
            velocity, obj = kit.momentum(ref.mask, cfg.momentum, velocity, obj, begin[0])
        if lowpass is not None:
            turned, phase_velocity = R.phase_momentum(lowpass, kit.state(obj, probe).object,
                                                      kit.state(begin[0], begin[1]).object, phase_velocity,
                                                      cfg.momentum, cfg.low_frequency_gain)
            obj = kit.tensor(turned)
        decision = control.judge(loss)
        if decision == "best":
            best = begin
        elif decision == "revert":
            obj, probe, velocity = kit.copy(best[0]), kit.copy(best[1]), kit.zeros_like(velocity)
            phase_velocity = np.zeros_like(phase_velocity)
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch, "loss": loss, "seconds": seconds, "patterns_per_s": problem.M / max(seconds, 1e-9),
                  "step": control.step, "reverted": decision == "revert"}
        history.append(record)
        hooks.on_epoch_end(epoch, loss, seconds, record["patterns_per_s"], lambda: kit.state(obj, probe))
    return RefineResult(kit.state(obj, probe), history, "ok" if math.isfinite(control.best_loss) else "diverged")
