"""Numpy-in, numpy-out wrappers of engine/torch/physics.py with engine.physics' signatures (level-0 parity).

Inputs are cast to single precision (complex64 / float32) the way the training graph sees them; losses return
python floats like the oracle.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.refine_loop import level0_ops
from engine.torch import physics as tp


def _c(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.complex64))


def _f(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def fourier_shift(a: np.ndarray, dy, dx) -> np.ndarray:
    with torch.inference_mode():
        dy_t = torch.as_tensor(np.asarray(dy, dtype=np.float64))
        dx_t = torch.as_tensor(np.asarray(dx, dtype=np.float64))
        return tp.fourier_shift(_c(a), dy_t, dx_t).numpy()


def merge_group(patches: np.ndarray, offsets: np.ndarray, mask: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        region, cov = tp.merge_group(_c(patches), _f(offsets), None if mask is None else _f(mask))
        return region.numpy(), cov.numpy()


def reextract_group(region: np.ndarray, offsets: np.ndarray, N: int) -> np.ndarray:
    with torch.inference_mode():
        return tp.reextract_group(_c(region), _f(offsets), N).numpy()


def forward_intensity(probe: np.ndarray, obj_patches: np.ndarray, photon_scale: float = 1.0) -> np.ndarray:
    with torch.inference_mode():
        return tp.forward_intensity(_c(probe), _c(obj_patches), float(photon_scale)).numpy()


def _b(valid) -> torch.Tensor | None:
    return None if valid is None else torch.from_numpy(np.ascontiguousarray(valid, dtype=bool))


def poisson_deviance(pred_counts: np.ndarray, counts: np.ndarray, valid: np.ndarray | None = None) -> float:
    with torch.inference_mode():
        return float(tp.poisson_deviance(_f(pred_counts), _f(counts), _b(valid)))


def amplitude_mae(pred_counts: np.ndarray, counts: np.ndarray, valid: np.ndarray | None = None) -> float:
    with torch.inference_mode():
        return float(tp.amplitude_mae(_f(pred_counts), _f(counts), _b(valid)))


# ------------------------------------------------------------------------------------------- refinement
#: engine.refine's level-0 ops through engine/torch/refine.py's Refiner (the problem set up as in engine.refine_loop).
refine_patches, refine_gradients = level0_ops("engine.torch.refine", _c)
