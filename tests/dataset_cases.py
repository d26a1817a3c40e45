"""A small valid scan as on-disk arrays, shared by the data-contract tests (built with the numpy physics oracle)."""
from __future__ import annotations

import numpy as np

from tests.synthetic import make_synthetic


def good_arrays(N: int = 16, M: int = 9, seed: int = 0) -> dict[str, np.ndarray]:
    """PtychoPINN keys: diffraction (M, N, N) float32 amplitude, x/ycoords, probeGuess, objectGuess."""
    s = make_synthetic(N=N, M=M, seed=seed, step=3.0)
    return {
        "diffraction": s["diffraction"],
        "xcoords": s["positions"][:, 0].copy(),
        "ycoords": s["positions"][:, 1].copy(),
        "probeGuess": s["probe"],
        "objectGuess": s["object"],
    }


#: A beamline geometry with a round object pixel: λ = 1 Å, z = 0.48 m, 75 µm pixels → Δ = λz/(Np) = 20 nm at N = 32.
ENERGY_EV = 12398.419843320026
DISTANCE_M = 0.48
DETECTOR_PIXEL_M = 75e-6


def simulated_scan(N: int = 32, M: int = 9, size: int = 72, seed: int = 0, geometry: bool = True,
                   source: str = "sim.npz"):
    """A simulated scan (engine.simulate: probe in counts units, ground-truth object, Y) as a validated Dataset,
    with the geometry above unless ``geometry`` is False."""
    from engine.config import SimulationConfig
    from engine.dataset import from_arrays
    from engine.simulate import simulate

    arrays = simulate(SimulationConfig(N=N, n_positions=M, object_size=size, probe_radius=N / 6.4, nphotons=1e6,
                                       seed=seed))
    if geometry:
        arrays.update(photon_energy_eV=np.array(ENERGY_EV), detector_distance_m=np.array(DISTANCE_M),
                      detector_pixel_size_m=np.array(DETECTOR_PIXEL_M))
    return from_arrays(arrays, source)
