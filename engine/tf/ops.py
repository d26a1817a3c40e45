"""Numpy-in, numpy-out wrappers of engine/tf/physics.py with engine.physics' signatures (level-0 parity).

Inputs are cast to single precision (complex64 / float32) the way the training graph sees them; losses return
python floats like the oracle. Eager execution: these are for tests and the parity report, not for speed.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from engine.refine_loop import level0_ops
from engine.tf import physics as tp


def _c(a) -> tf.Tensor:
    return tf.constant(np.asarray(a, dtype=np.complex64))


def _f(a) -> tf.Tensor:
    return tf.constant(np.asarray(a, dtype=np.float32))


def _d(a) -> tf.Tensor:
    return tf.constant(np.asarray(a, dtype=np.float64))


def fourier_shift(a: np.ndarray, dy, dx) -> np.ndarray:
    return tp.fourier_shift(_c(a), _d(dy), _d(dx)).numpy()


def merge_group(patches: np.ndarray, offsets: np.ndarray, mask: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    region, cov = tp.merge_group(_c(patches), _f(offsets), None if mask is None else _f(mask))
    return region.numpy(), cov.numpy()


def reextract_group(region: np.ndarray, offsets: np.ndarray, N: int) -> np.ndarray:
    return tp.reextract_group(_c(region), _f(offsets), N).numpy()


def forward_intensity(probe: np.ndarray, obj_patches: np.ndarray, photon_scale: float = 1.0) -> np.ndarray:
    return tp.forward_intensity(_c(probe), _c(obj_patches), float(photon_scale)).numpy()


def _b(valid) -> tf.Tensor | None:
    return None if valid is None else tf.constant(np.asarray(valid, dtype=bool))


def poisson_deviance(pred_counts: np.ndarray, counts: np.ndarray, valid: np.ndarray | None = None) -> float:
    return float(tp.poisson_deviance(_f(pred_counts), _f(counts), _b(valid)))


def amplitude_mae(pred_counts: np.ndarray, counts: np.ndarray, valid: np.ndarray | None = None) -> float:
    return float(tp.amplitude_mae(_f(pred_counts), _f(counts), _b(valid)))


# ------------------------------------------------------------------------------------------- refinement
#: engine.refine's level-0 ops through engine/tf/refine.py's Refiner (the problem set up as in engine.refine_loop).
refine_patches, refine_gradients = level0_ops("engine.tf.refine", _c)
