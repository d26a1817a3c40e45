"""Normalisation at ingest — once, in one function — with its three kinds of scaling kept apart (docs/physics.md).

- ``input_scale`` (statistical): network input = measured amplitude × input_scale, chosen so the mean total
  of the squared input per pattern is (N/2)² whatever the dose.
- ``photon_scale`` (physical): exit wave = photon_scale × probe × object, so that |F|² is in counts. It is set
  from the 99th percentile of per-pattern totals: the most transmissive region then has |O| ≈ 1, which the
  sigmoid amplitude head can reach (a mean-based scale would ask for |O| > 1 in bright regions).
- display scaling lives only in plotting code.
Both factors are stored in the model bundle and reused at inference.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Scales:
    input_scale: float
    photon_scale: float
    mean_counts: float  # mean total count per pattern (nphotons inferred from the data)
    bright_counts: float  # 99th percentile of totals, the |O| = 1 reference

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Scales":
        return cls(**{k: float(d[k]) for k in ("input_scale", "photon_scale", "mean_counts", "bright_counts")})


def compute_scales(diffraction: np.ndarray, probe: np.ndarray) -> Scales:
    """Scales for measured amplitudes ``diffraction`` (M, N, N) and a probe (N, N) in any units."""
    amp = np.asarray(diffraction, dtype=np.float64)
    N = amp.shape[-1]
    totals = (amp**2).sum(axis=(-2, -1))
    mean_counts = float(totals.mean())
    bright = float(np.percentile(totals, 99))
    probe_energy = float((np.abs(probe.astype(np.complex128)) ** 2).sum())
    if mean_counts <= 0 or probe_energy <= 0:
        raise ValueError("cannot normalise: the patterns or the probe hold no signal")
    return Scales(
        input_scale=float((N / 2) / np.sqrt(mean_counts)),
        photon_scale=float(np.sqrt(bright / probe_energy)),
        mean_counts=mean_counts,
        bright_counts=bright,
    )
