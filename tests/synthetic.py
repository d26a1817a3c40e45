"""Small synthetic ptychography scans for tests, built only with the numpy physics oracle.

Shared by the backend tests (torch and TF) so that both see the same kind of data. Everything is seeded.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from engine import physics


def smooth_object(size: int, rng: np.random.Generator, sigma: float = 3.0) -> np.ndarray:
    """Random smooth complex object: amplitude in [0.5, 1], phase in [-1, 1] rad (complex64, [y, x])."""
    def field() -> np.ndarray:
        f = gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
        f -= f.min()
        return f / max(float(f.max()), 1e-12)

    amp = 0.5 + 0.5 * field()
    phase = 2.0 * field() - 1.0
    return (amp * np.exp(1j * phase)).astype(np.complex64)


def disk_probe(N: int, radius: float, soft: float = 1.0) -> np.ndarray:
    """Soft-edged disk probe with peak 1 centred on pixel (N//2, N//2) (complex64)."""
    y, x = np.mgrid[:N, :N] - N // 2
    r = np.hypot(y, x)
    return (0.5 * (1.0 - np.tanh((r - radius) / soft))).astype(np.complex64)


def make_synthetic(N: int = 64, M: int = 16, seed: int = 0, nphotons: float = 1e6,
                   probe_radius: float | None = None, step: float = 6.0) -> dict[str, np.ndarray]:
    """A raster scan with sub-pixel jitter over a random smooth object.

    Returns positions (M, 2) as (x, y) in object pixels, probe (N, N) complex64, object (H, W) complex64,
    diffraction (M, N, N) float32 measured amplitude sqrt(Poisson counts), and intensity (expected counts).
    ``nphotons`` is the mean total count per pattern (probe energy scaled accordingly).
    """
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(M)))
    span = (side - 1) * step
    size = int(np.ceil(N + span + 4))
    obj = smooth_object(size, rng)
    grid = np.arange(side) * step
    gx, gy = np.meshgrid(grid, grid)
    pos = np.stack([gx.ravel(), gy.ravel()], axis=1)[:M]
    pos = pos + N / 2 + 2 + rng.uniform(-0.5, 0.5, size=pos.shape)
    probe = disk_probe(N, probe_radius if probe_radius is not None else N / 6)
    patches = physics.extract_patches(obj, pos, N)
    unit = physics.forward_intensity(probe, patches)
    scale = float(np.sqrt(nphotons / unit.sum(axis=(-2, -1)).mean()))
    probe = (probe * scale).astype(np.complex64)
    intensity = physics.forward_intensity(probe, patches)
    diffraction = physics.poisson_sample(intensity, rng)
    return {
        "positions": pos.astype(np.float64),
        "probe": probe,
        "object": obj,
        "diffraction": diffraction,
        "intensity": intensity,
    }
