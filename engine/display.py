"""How objects are shown, everywhere (console screens, PNG exports, parity images): numpy only, no UI, no files.

Phase is shown after removing its global offset (the phase of the object's amplitude-weighted mean over the shown
pixels), on the object's own range (1st–99th percentile, so one hot pixel does not flatten the picture) with a
sequential map; only a phase that really spans the circle is shown on [-π, π] with the cyclic map. Amplitude is
shown on its own 1st–99th percentile range. Uncovered pixels are NaN (drawn as background, never as a colour of
the scale). Display scaling lives here and in the renderers only — never in the physics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Offset-free phase spanning more than this is treated as wrapping: shown on [-π, π] with the cyclic map.
WRAP_SPAN = 1.8 * np.pi


@dataclass(frozen=True)
class Scale:
    """A colour scale: the range the colours span, the colormap and the unit shown beside it."""

    vmin: float
    vmax: float
    cmap: str
    unit: str = ""


def covered(obj: np.ndarray) -> np.ndarray:
    """Pixels a reconstruction actually covers (stitching leaves the rest exactly 0)."""
    return np.abs(np.asarray(obj)) > 0


def remove_phase_offset(obj: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Phase (rad) with the global offset removed, NaN outside ``mask``."""
    z = np.asarray(obj).astype(np.complex128)
    m = covered(z) if mask is None else (np.asarray(mask, bool) & covered(z))
    if not m.any():
        return np.full(z.shape, np.nan)
    ref = np.sum(z[m])
    rot = z * (np.conj(ref) / abs(ref)) if abs(ref) > 0 else z
    return np.where(m, np.angle(rot), np.nan)


def amplitude(obj: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    z = np.asarray(obj)
    m = covered(z) if mask is None else (np.asarray(mask, bool) & covered(z))
    return np.where(m, np.abs(z), np.nan)


def _percentiles(a: np.ndarray) -> tuple[float, float] | None:
    finite = np.asarray(a, np.float64)[np.isfinite(a)]
    if not finite.size:
        return None
    lo, hi = np.percentile(finite, [1, 99])
    if not hi > lo:
        lo, hi = float(finite.min()), float(finite.max())
    return float(lo), float(hi)


def amplitude_scale(a: np.ndarray) -> Scale:
    lo, hi = _percentiles(a) or (0.0, 1.0)
    return Scale(lo, hi if hi > lo else lo + 1e-12, "viridis", "")


def phase_scale(phase: np.ndarray) -> Scale:
    """The offset-free phase's own range, sequential map; the cyclic map on [-π, π] when it wraps."""
    rng = _percentiles(phase)
    if rng is None:
        return Scale(-np.pi, np.pi, "twilight", "rad")
    lo, hi = rng
    if hi - lo > WRAP_SPAN:
        return Scale(-np.pi, np.pi, "twilight", "rad")
    return Scale(lo, hi if hi > lo else lo + 1e-6, "cividis", "rad")
