"""How objects are shown on the console's screens: numpy only, no UI, no files. The display rules shared with the
PNG exports live in engine/display.py (re-exported here); this adds the console's own pictures.

Display rules (engine/display.py): phase is shown after removing its global offset (the phase of the object's
amplitude-weighted mean over the shown pixels), on the object's own range (1st–99th percentile, so one hot pixel
does not flatten the picture) with a sequential map; only a phase that really spans the circle is shown on
[-π, π] with the cyclic map. Amplitude is shown on its own 1st–99th percentile range. Uncovered pixels are NaN (drawn
as background, never as a colour of the scale).
"""
from __future__ import annotations

import numpy as np

from engine.display import (WRAP_SPAN, Scale, amplitude, amplitude_scale, covered, phase_scale,  # noqa: F401
                            remove_phase_offset)


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
