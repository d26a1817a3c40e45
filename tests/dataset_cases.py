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
