"""Far-field geometry in SI units: photon energy, detector distance and pixel → the object (sample-plane) pixel.

An N×N detector region of pixel pitch p at distance z from the sample samples the exit wave on a real-space grid
of pixel ``Δ = λ·z / (N·p)`` with ``λ = h·c / E`` (docs/data.md "Geometry", with a worked example). Scan positions
in metres become object pixels ``x_px = (x_m − origin_x_m) / Δ``; ``origin_m`` is where object pixel (0, 0) sits.

Kept free of file I/O and of ``engine.dataset`` so that the data contract can import it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

#: Exact SI constants (2019 redefinition): Planck constant, speed of light, elementary charge.
PLANCK_J_S = 6.62607015e-34
LIGHT_M_S = 299792458.0
ELECTRON_VOLT_J = 1.602176634e-19
#: h·c/e in eV·m: λ[m] = HC_EV_M / E[eV] (12398.42 eV ↔ 1 Å).
HC_EV_M = PLANCK_J_S * LIGHT_M_S / ELECTRON_VOLT_J
#: Pixels between the outermost patch and the edge of a grid laid over positions given in metres.
GRID_MARGIN_PX = 2
#: Two pixel sizes (or a position and its pixel image) agree when they differ by less than this, relative.
SAME_REL = 1e-6
#: Pixel size written to product files when the data state no geometry (Pinnacle's historical default).
DEFAULT_PIXEL_SIZE_M = 1e-8


def wavelength_m(energy_ev: float) -> float:
    """Photon wavelength λ = h·c / E."""
    return HC_EV_M / float(energy_ev)


def object_pixel_m(energy_ev: float, distance_m: float, detector_pixel_m: float, N: int) -> float:
    """Δ = λ·z / (N·p): the sample-plane pixel of an N×N far-field detector region."""
    return wavelength_m(energy_ev) * float(distance_m) / (int(N) * float(detector_pixel_m))


def same(a: float, b: float, rel: float = SAME_REL) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


@dataclass(frozen=True)
class Geometry:
    """What a scan states about its physical sampling; travels with the Dataset into product files.

    ``object_pixel_m`` is Δ when the energy, distance and detector pixel are all known (``source`` "computed"), the
    sample-plane pixel a product file states when they are not ("stated"), or None ("unknown": positions are then
    only known in pixels, and product files say so instead of inventing a size).
    """

    energy_ev: float | None = None
    distance_m: float | None = None
    detector_pixel_m: float | None = None
    object_pixel_m: float | None = None
    origin_m: tuple[float, float] = (0.0, 0.0)  # (x, y) in metres of object pixel (0, 0)
    source: str = "unknown"  # computed | stated | unknown
    overridden: tuple[str, ...] = ()  # quantities given on the command line rather than read from the file
    notes: tuple[str, ...] = ()  # what the loader did that the user should know (a crop, a dropped object, ...)

    @property
    def known(self) -> bool:
        return self.object_pixel_m is not None

    @property
    def wavelength_m(self) -> float | None:
        return None if not self.energy_ev else wavelength_m(self.energy_ev)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["origin_m"] = list(self.origin_m)
        d["overridden"], d["notes"] = list(self.overridden), list(self.notes)
        d["wavelength_m"] = self.wavelength_m
        return d

    def describe(self) -> str:
        """One line for humans: 'Δ = 10 nm (computed: 12398 eV, 0.48 m, 75 µm)' or 'unknown ...'."""
        if not self.known:
            return "unknown (the file states no energy, distance or pixel size)"
        parts = [f"{self.object_pixel_m * 1e9:.6g} nm ({self.source}"]
        if self.source == "computed":
            parts.append(f": {self.energy_ev:.6g} eV, {self.distance_m:.6g} m, {self.detector_pixel_m * 1e6:.6g} µm")
        if self.overridden:
            parts.append(f"; given: {', '.join(self.overridden)}")
        return "".join(parts) + ")"


@dataclass(frozen=True)
class ScanOptions:
    """Command-line additions to what a scan file states: geometry overrides, a crop, other files to read."""

    energy_ev: float | None = None
    distance_m: float | None = None
    detector_pixel_m: float | None = None
    crop: int | None = None  # centred N×N crop of the detector
    probe: str | None = None  # file holding the probe (NPZ probeGuess, CXI image_1, Ptychodus product.h5)
    product: str | None = None  # Ptychodus product.h5 or CXI product: positions, probe, object, energy, distance

    @property
    def empty(self) -> bool:
        return self == ScanOptions()

    def without_product(self) -> "ScanOptions":
        """The options that also apply to a second scan (a held-out test file): everything but --product."""
        return replace(self, product=None)


def resolve(N: int, energy_ev: float | None, distance_m: float | None, detector_pixel_m: float | None,
            stated_object_pixel_m: float | None = None, overridden: tuple[str, ...] = ()) -> Geometry:
    """Geometry from what is known: Δ computed when E, z and p are all positive, else a stated Δ, else unknown."""
    e, z, p = (float(v) if v else None for v in (energy_ev, distance_m, detector_pixel_m))
    if e and z and p:
        return Geometry(e, z, p, object_pixel_m(e, z, p, N), source="computed", overridden=overridden)
    if stated_object_pixel_m:
        return Geometry(e, z, p, float(stated_object_pixel_m), source="stated", overridden=overridden)
    return Geometry(e, z, p, None, source="unknown", overridden=overridden)


def grid_positions(positions_m: np.ndarray, pixel_m: float, N: int,
                   margin: int = GRID_MARGIN_PX) -> tuple[np.ndarray, tuple[float, float]]:
    """Positions (M, 2) in metres → object pixels on a grid that covers the scan with ``margin`` px to spare.

    The lowest position lands on pixel N//2 + margin on each axis, so every N×N patch starts at least ``margin``
    px inside the grid. Returns (positions in px, origin_m: metres of pixel (0, 0)).
    """
    pos = np.asarray(positions_m, dtype=np.float64)
    origin = pos.min(axis=0) - (N // 2 + margin) * pixel_m
    return (pos - origin) / pixel_m, (float(origin[0]), float(origin[1]))


def frame_of_object(center_m: tuple[float, float], shape: tuple[int, int], pixel_m: float) -> tuple[float, float]:
    """origin_m of an object array whose centre (Ptychodus' convention: pixel ((W−1)/2, (H−1)/2)) is ``center_m``."""
    H, W = shape
    return center_m[0] - (W - 1) / 2 * pixel_m, center_m[1] - (H - 1) / 2 * pixel_m


def center_of_object(origin_m: tuple[float, float], origin_px: tuple[int, int], shape: tuple[int, int],
                     pixel_m: float) -> tuple[float, float]:
    """Ptychodus' object centre (metres of pixel ((W−1)/2, (H−1)/2)) of an array whose pixel (0, 0) is object
    pixel ``origin_px`` of a frame whose pixel (0, 0) sits at ``origin_m``."""
    H, W = shape
    return (origin_m[0] + (origin_px[0] + (W - 1) / 2) * pixel_m,
            origin_m[1] + (origin_px[1] + (H - 1) / 2) * pixel_m)


def to_metres(positions_px: np.ndarray, origin_m: tuple[float, float], pixel_m: float) -> np.ndarray:
    """Object pixels (M, 2) → metres (M, 2)."""
    return np.asarray(origin_m, dtype=np.float64) + np.asarray(positions_px, dtype=np.float64) * pixel_m

