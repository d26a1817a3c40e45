"""How objects are shown: numpy only, no UI, no files.

Display rules (the same on every screen): phase is shown after removing its global offset (the phase of the object's
amplitude-weighted mean over the shown pixels), on the object's own range (1st–99th percentile, so one hot pixel
does not flatten the picture) with a sequential map; only a phase that really spans the circle is shown on
[-π, π] with the cyclic map. Amplitude is shown on its own 1st–99th percentile range. Uncovered pixels are NaN (drawn
as background, never as a colour of the scale).
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


def difference_scale(diff: np.ndarray, unit: str = "rad") -> Scale:
    """Symmetric about 0 so that no difference is the map's centre colour."""
    finite = np.abs(np.asarray(diff, np.float64)[np.isfinite(diff)])
    lim = float(np.percentile(finite, 99)) if finite.size else 0.0
    lim = lim if lim > 0 else 1e-6
    return Scale(-lim, lim, "coolwarm", unit)


def phase_difference(obj: np.ndarray, ref: np.ndarray) -> np.ndarray | None:
    """Wrapped phase of ``obj`` minus ``ref`` after matching their global phase offset; NaN where either is
    uncovered. None when the grids differ (nothing meaningful to subtract)."""
    a, b = np.asarray(obj).astype(np.complex128), np.asarray(ref).astype(np.complex128)
    if a.shape != b.shape:
        return None
    m = covered(a) & covered(b)
    if not m.any():
        return None
    prod = a * np.conj(b)
    ref_phase = np.sum(prod[m])
    rot = prod * (np.conj(ref_phase) / abs(ref_phase)) if abs(ref_phase) > 0 else prod
    return np.where(m, np.angle(rot), np.nan)


def crop(a: np.ndarray | None, region: tuple[int, int, int, int] | None) -> np.ndarray | None:
    """``a[y0:y1, x0:x1]`` when the region lies inside ``a``, else ``a`` unchanged."""
    if a is None or region is None:
        return a
    y0, y1, x0, x1 = region
    if 0 <= y0 < y1 <= a.shape[0] and 0 <= x0 < x1 <= a.shape[1]:
        return a[y0:y1, x0:x1]
    return a


def raster_pitch(xy: np.ndarray) -> float | None:
    """The pitch of the grid the positions lie on (a raster jittered by a fraction of a step), or None.

    The median nearest-neighbour distance (engine.dataset.scan_step) underestimates a jittered raster's pitch, and
    a few percent off is a whole row over 14 rows. So candidates around it are tried and the largest one that puts
    every position within a fifth of a step of a grid node wins; a scan that is not a raster (a spiral) has none.
    """
    from engine.dataset import scan_step

    step = scan_step(xy)
    if not step:
        return None
    rel = xy - xy.min(axis=0)
    candidates = np.linspace(0.8 * step, 1.6 * step, 161)
    off = np.abs(rel[None] / candidates[:, None, None] - np.round(rel[None] / candidates[:, None, None]))
    fits = candidates[off.max(axis=(1, 2)) < 0.2]
    return float(fits.max()) if fits.size else None


def scatter_image(positions: np.ndarray, max_size: int = 64) -> np.ndarray:
    """Scan positions as an image ([y, x], equal axes), with one cell per scan step when they form a raster.

    Why not a fixed-size histogram: rounding a 14 × 14 raster (jittered by a fraction of a pixel, as real stages
    are) onto 64 cells spaces the dots 4 or 5 cells apart, and the picture looks like an irregular scatter. On the
    raster's own pitch (``raster_pitch``) a raster stays a raster; an empty cell between neighbours keeps the dots
    apart when the image is scaled. Other scans fall back to a max_size/2 grid.
    """
    xy = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    lo = xy.min(axis=0)
    span = float(np.max(xy.max(axis=0) - lo))
    if span <= 0:
        return np.ones((1, 1))
    step = max(raster_pitch(xy) or span / (max_size // 2), span / (max_size // 2))  # never more than max_size cells
    size = 2 * int(round(span / step)) + 1
    idx = np.clip(np.round((xy - lo) / step).astype(int) * 2, 0, size - 1)
    img = np.zeros((size, size))
    np.add.at(img, (idx[:, 1], idx[:, 0]), 1.0)
    return img
