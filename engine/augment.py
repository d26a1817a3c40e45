"""Orientation augmentation: the flips and transposes of a pattern that are the patterns of a flipped object.

When the probe is unchanged by a flip or a transpose R (about its centre pixel N/2, the convention of
engine.refine.twin_asymmetry), the diffraction pattern of the object patch O(R r) is the measured pattern of O
turned by the same R: |F[P · (O∘R)]|² = |F[(P · O)∘R]|² = I∘R. So a training scan taken with such a probe holds, at
no cost, the scans of its object in every orientation the probe allows — up to 8 (the square's symmetries). A
network trained on one scan memorises that object (issue 12: the bundle's own training scan at the held-out scan's
density scored amplitude SSIM 0.79, the held-out scan 0.65); seeing each pattern in a random allowed orientation
each epoch closes most of that gap (docs/performance.md). A probe or a detector mask that is not symmetric under R
(any real optics, within ``SYMMETRY_TOL``) leaves R out: the patterns would then be of no real object.

An orientation is a code 0–7: bit 0 flips rows (y → −y), bit 1 flips columns (x → −x), bit 2 then transposes. The
training order encodes the orientation in the group index (``epoch_order``: slot × n + group), so both backends,
which batch through ``engine.backend_api.TrainingData``, see the same arrays in the same order.
"""
from __future__ import annotations

import numpy as np

from engine import grouping

#: Every orientation: identity, flips, transposes.
ALL = tuple(range(8))
#: Relative distance ‖P − P∘R‖ / ‖P‖ under which the probe counts as symmetric under R. Simulated probes are exact
#: (0, or round-off ~1e-7); a real probe's asymmetry is far larger, and a misfit of 1e-3 already exceeds the Poisson
#: noise of bright pixels, so the augmentation stays off for it.
SYMMETRY_TOL = 1e-3


def orient(a: np.ndarray, code: int) -> np.ndarray:
    """``a`` (..., N, N) in orientation ``code``: flips about pixel N/2 (a reversal that keeps index 0 — the centre
    of an fftshifted pattern and of a patch both stay put), then the transpose."""
    if code & 1:
        a = np.roll(np.flip(a, axis=-2), 1, axis=-2)
    if code & 2:
        a = np.roll(np.flip(a, axis=-1), 1, axis=-1)
    if code & 4:
        a = np.swapaxes(a, -1, -2)
    return a


def orient_offsets(offsets: np.ndarray, code: int) -> np.ndarray:
    """(..., 2) offsets (dx, dy) from a group's centre, in the orientation ``code``: where each member sits in the
    flipped object (its patch is flipped about its own centre by ``orient``)."""
    d = np.array(offsets, copy=True)
    if code & 1:
        d[..., 1] = -d[..., 1]
    if code & 2:
        d[..., 0] = -d[..., 0]
    if code & 4:
        d = d[..., ::-1]
    return d


def symmetric_orientations(probe: np.ndarray, valid: np.ndarray | None = None,
                           tol: float = SYMMETRY_TOL) -> tuple[int, ...]:
    """The orientations (identity first) under which the probe is unchanged within ``tol`` and the detector mask
    exactly (a masked pixel must stay masked)."""
    p = np.asarray(probe, np.complex128)
    norm = max(float(np.linalg.norm(p)), 1e-300)
    keep = []
    for code in ALL:
        if np.linalg.norm(p - orient(p, code)) / norm > tol:
            continue
        if valid is not None and not np.array_equal(np.asarray(valid), orient(np.asarray(valid), code)):
            continue
        keep.append(code)
    return tuple(keep)


def epoch_order(n: int, seed: int, epoch: int, orientations: int = 1) -> np.ndarray:
    """``grouping.epoch_order`` (the same array when ``orientations`` is 1), each group index then carried into a
    random orientation slot s < ``orientations`` as s·n + group — the same in every backend."""
    order = grouping.epoch_order(n, seed, epoch)
    if orientations <= 1:
        return order
    slots = np.random.default_rng([seed, 2000 + epoch]).integers(0, orientations, size=n)
    return order + n * slots[order]


def describe(orientations: tuple[int, ...]) -> str:
    """One line for the training log."""
    if len(orientations) <= 1:
        return "orientation augmentation off: the probe (or the detector mask) is not symmetric under a flip"
    return (f"orientation augmentation: the probe is symmetric under {len(orientations) - 1} flips/transposes, so "
            f"each pattern is seen in a random one of {len(orientations)} orientations per epoch")
