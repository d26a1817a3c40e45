"""A backend's level-0 parity ops (docs/parity.md): engine.physics' and engine.refine's signatures, numpy in and
numpy out, run through the backend's own physics module and Refiner.

Why here: engine/tf/ops.py and engine/torch/ops.py wrapped the same eight calls line for line (inputs cast the way
the training graph sees them, losses returned as python floats like the oracle); only turning a numpy array into a
tensor differs. A backend's ops.py hands ``level0_ops`` its physics module, its Refiner's module and that conversion.
Eager, one call at a time: these are for tests and the parity report, not for speed.
"""
from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Any, Callable, NamedTuple

import numpy as np

from engine import refine as R


class Level0Ops(NamedTuple):
    """The ops, in the order a backend's ops.py unpacks them (each with the signature of its engine.physics or
    engine.refine namesake)."""

    fourier_shift: Callable
    merge_group: Callable
    reextract_group: Callable
    forward_intensity: Callable
    poisson_deviance: Callable
    amplitude_mae: Callable
    refine_patches: Callable
    refine_gradients: Callable


def level0_ops(physics: ModuleType, refiner_module: str, tensor: Callable[[Any, type], Any],
               scope: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> Level0Ops:
    """``physics``: the backend's translation of engine.physics; ``refiner_module``: where its refinement
    ``Refiner`` lives (imported at the first refinement call); ``tensor(a, dtype)``: ``a`` (an array or a scalar)
    as the backend's tensor of numpy dtype ``dtype``; ``scope()``: entered around each physics op (torch: no
    autograd graph). Fields and patches go in as complex64, offsets and counts as float32, shifts as float64."""

    def c(a):
        return tensor(a, np.complex64)

    def f(a):
        return tensor(a, np.float32)

    def b(valid):
        return None if valid is None else tensor(valid, np.bool_)

    def fourier_shift(a: np.ndarray, dy, dx) -> np.ndarray:
        with scope():
            return physics.fourier_shift(c(a), tensor(dy, np.float64), tensor(dx, np.float64)).numpy()

    def merge_group(patches: np.ndarray, offsets: np.ndarray, mask: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        with scope():
            region, cov = physics.merge_group(c(patches), f(offsets), None if mask is None else f(mask))
            return region.numpy(), cov.numpy()

    def reextract_group(region: np.ndarray, offsets: np.ndarray, N: int) -> np.ndarray:
        with scope():
            return physics.reextract_group(c(region), f(offsets), N).numpy()

    def forward_intensity(probe: np.ndarray, obj_patches: np.ndarray, photon_scale: float = 1.0) -> np.ndarray:
        with scope():
            return physics.forward_intensity(c(probe), c(obj_patches), float(photon_scale)).numpy()

    def poisson_deviance(pred_counts: np.ndarray, counts: np.ndarray, valid: np.ndarray | None = None) -> float:
        with scope():
            return float(physics.poisson_deviance(f(pred_counts), f(counts), b(valid)))

    def amplitude_mae(pred_counts: np.ndarray, counts: np.ndarray, valid: np.ndarray | None = None) -> float:
        with scope():
            return float(physics.amplitude_mae(f(pred_counts), f(counts), b(valid)))

    def refiner(problem: R.RefineProblem, margin: int):
        return importlib.import_module(refiner_module).Refiner(problem, R.RefineConfig(margin=int(margin)))

    def refine_patches(obj: np.ndarray, corners: np.ndarray, fractions: np.ndarray, N: int, margin: int
                       ) -> np.ndarray:
        """engine.refine.refine_patches through this backend's refinement engine."""
        M = len(corners)
        counts = np.zeros((M, int(N), int(N)), np.float32)
        ref = refiner(R.refine_problem(corners, fractions, np.shape(obj), margin, counts), margin)
        return np.asarray(ref.patches(c(obj), np.arange(M)))

    def refine_gradients(obj: np.ndarray, probe: np.ndarray, counts: np.ndarray, corners: np.ndarray,
                         fractions: np.ndarray, margin: int, valid: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, float]:
        """engine.refine.refine_gradients through this backend's refinement engine (autodiff: no ``scope``)."""
        ref = refiner(R.refine_problem(corners, fractions, np.shape(obj), margin, counts, valid), margin)
        return ref.gradients(c(obj), c(probe), np.arange(len(corners)))

    return Level0Ops(fourier_shift, merge_group, reextract_group, forward_intensity, poisson_deviance, amplitude_mae,
                     refine_patches, refine_gradients)
