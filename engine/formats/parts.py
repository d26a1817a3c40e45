"""What a beamline file holds, before it becomes a Dataset: the diffraction part and the product part.

A CXI file can hold both parts; Ptychodus splits them into ``diffraction.h5`` (patterns, detector pixel, bad
pixels) and ``product.h5`` (positions in metres, probe, object, energy, distance). Each reader fills these records
with what the file states (None where it states nothing) and the HDF5 path where each item lives or would live, so
that ``engine.formats.assemble`` can name the exact path that is missing. ``ProductData`` is the other direction:
what the writers put into product files.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.formats.geometry import DEFAULT_PIXEL_SIZE_M, Geometry, center_of_object, to_metres


@dataclass(frozen=True)
class Stated:
    """A number a file states about the measurement (None where it states none) and the HDF5 path where it lives or
    would live, so that ``engine.formats.assemble`` can name the exact path that is missing."""

    value: float | None = None
    path: str = ""


@dataclass(frozen=True)
class DiffractionParts:
    source: str  # the file the patterns came from
    format: str  # "cxi" | "ptychodus"
    counts: np.ndarray  # (M, H, W) as stored: photon counts (integers or floats)
    data_path: str
    indexes: np.ndarray | None = None  # (M,) pattern indexes (Ptychodus); None: 0..M-1
    bad: np.ndarray | None = None  # (H, W) bool, True = excluded from the likelihood
    mask_path: str = ""
    energy: Stated = Stated()  # photon energy (eV)
    distance: Stated = Stated()  # sample-detector distance (m)
    detector_pixel: Stated = Stated()  # detector pixel size (m)


@dataclass(frozen=True)
class ProductParts:
    source: str
    positions_m: np.ndarray | None = None  # (M, 2) probe positions (x, y) in metres
    positions_path: str = ""
    indexes: np.ndarray | None = None  # (M,) pattern index of each position
    probe: np.ndarray | None = None  # (H, W) complex, the first mode
    probe_path: str = ""
    probe_modes: int = 1
    probe_pixel_m: float | None = None
    object: np.ndarray | None = None  # (H, W) complex, the first layer
    object_path: str = ""
    object_pixel_m: float | None = None
    object_center_m: tuple[float, float] | None = None
    object_role: str = ""  # Pinnacle's own files say "placeholder" for an object that holds no information
    energy: Stated = Stated()  # photon energy (eV)
    distance: Stated = Stated()  # sample-detector distance (m)
    native_px: np.ndarray | None = None  # (M, 2) positions in object pixels as Pinnacle wrote them
    native_origin_m: tuple[float, float] | None = None
    hint: str = ""  # how to supply what is missing (e.g. "or pass --product FILE")


@dataclass(frozen=True)
class ProductData:
    """A product as the writers store it: object on a grid in the dataset's pixel frame, positions, geometry."""

    positions_px: np.ndarray  # (M, 2) (x, y) object pixels, probe centres
    geometry: Geometry
    probe: np.ndarray | None = None  # (N, N) complex64
    object: np.ndarray | None = None  # (H, W) complex64
    object_origin_px: tuple[int, int] = (0, 0)  # object pixel of the array's pixel (0, 0)
    object_role: str = "reconstruction"  # reconstruction | ground truth | placeholder
    losses: tuple = ()  # training loss per epoch (None for an epoch without a finite value)
    name: str = ""
    comments: str = ""
    photon_count: float = 0.0
    provenance: dict = field(default_factory=dict)

    @property
    def pixel_m(self) -> float:
        """Δ, or the historical default when the data state no geometry (the files then say so)."""
        return self.geometry.object_pixel_m if self.geometry.known else DEFAULT_PIXEL_SIZE_M

    @property
    def pixel_source(self) -> str:
        g = self.geometry
        if g.source == "computed":
            return (f"computed: λ·z/(N·p) = {g.object_pixel_m:.6g} m ({g.energy_ev:.8g} eV, {g.distance_m:.6g} m, "
                    f"{g.detector_pixel_m:.6g} m detector pixel" + (f"; given: {', '.join(g.overridden)}"
                                                                    if g.overridden else "") + ")")
        if g.known:
            return f"stated by the input file: {g.object_pixel_m:.6g} m"
        return (f"unknown: the dataset states no geometry (no energy, distance or pixel size); "
                f"default {DEFAULT_PIXEL_SIZE_M:g} m written")

    @property
    def origin_m(self) -> tuple[float, float]:
        return self.geometry.origin_m if self.geometry.known else (0.0, 0.0)

    @property
    def positions_m(self) -> np.ndarray:
        return to_metres(self.positions_px, self.origin_m, self.pixel_m)

    @property
    def object_center_m(self) -> tuple[float, float]:
        shape = self.object.shape[-2:] if self.object is not None else (1, 1)
        return center_of_object(self.origin_m, self.object_origin_px, shape, self.pixel_m)

    def loss_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(epochs int64, values float64) with NaN for an epoch that has no finite loss."""
        values = np.array([np.nan if v is None else float(v) for v in self.losses], dtype=np.float64)
        return np.arange(len(values), dtype=np.int64), values
