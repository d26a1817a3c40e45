"""A Ptychodus-style product file (``product.h5``, SPEC §6): object, probe and positions in SI units.

Layout follows Ptychodus' HDF5 product reader/writer (docs/pipeline.md lists every key):
  root attrs   name, comments, detector_object_distance_m, probe_energy_eV, probe_photon_count, exposure_time_s
  probe_position_indexes (M,) int64, probe_position_x_m / probe_position_y_m (M,) float64 — probe centres
  probe        (N, N) complex64; attrs pixel_width_m, pixel_height_m
  object       (H, W) complex64; attrs pixel_width_m, pixel_height_m, center_x_m, center_y_m
  object_layer_distance_m (0,) float64 (a single thin layer), costs (E,) float32 (training loss per epoch)
  pinnacle/    provenance: attrs run_id, backend, bundle_manifest_sha256, pixel_size_source, origin_x/y_px, ...
Pixel coordinates map to metres as ``x_m = x_px · pixel_width_m`` in the dataset's object frame; the object's
centre is at pixel ``origin + (W/2, H/2)``. Quantities Pinnacle does not know (energy, distance, exposure) are 0.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.atomic import atomic_path

#: Pixel size used when the dataset does not state one (written to the file as ``pixel_size_source``).
DEFAULT_PIXEL_SIZE_M = 1e-8


def write_product(path: str | os.PathLike, *, obj: np.ndarray, origin: tuple[int, int], probe: np.ndarray,
                  positions: np.ndarray, pixel_size_m: float | None = None, name: str = "",
                  photon_count: float = 0.0, costs: np.ndarray | None = None,
                  provenance: dict | None = None) -> Path:
    """Write the product atomically (temp file + rename)."""
    import h5py

    source = "dataset" if pixel_size_m else f"default ({DEFAULT_PIXEL_SIZE_M:g} m: the dataset states none)"
    px = float(pixel_size_m or DEFAULT_PIXEL_SIZE_M)
    obj = np.asarray(obj, dtype=np.complex64)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    H, W = obj.shape
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["name"] = name
        f.attrs["comments"] = "Pinnacle PINN reconstruction; unknown experiment quantities are 0"
        f.attrs["detector_object_distance_m"] = 0.0
        f.attrs["probe_energy_eV"] = 0.0
        f.attrs["probe_photon_count"] = float(photon_count)
        f.attrs["exposure_time_s"] = 0.0
        f.create_dataset("probe_position_indexes", data=np.arange(len(pos), dtype=np.int64))
        f.create_dataset("probe_position_x_m", data=pos[:, 0] * px)
        f.create_dataset("probe_position_y_m", data=pos[:, 1] * px)
        p = f.create_dataset("probe", data=np.asarray(probe, dtype=np.complex64))
        p.attrs["pixel_width_m"] = px
        p.attrs["pixel_height_m"] = px
        o = f.create_dataset("object", data=obj)
        o.attrs["pixel_width_m"] = px
        o.attrs["pixel_height_m"] = px
        o.attrs["center_x_m"] = (origin[0] + W / 2) * px
        o.attrs["center_y_m"] = (origin[1] + H / 2) * px
        f.create_dataset("object_layer_distance_m", data=np.zeros(0, dtype=np.float64))
        f.create_dataset("costs", data=np.asarray(costs if costs is not None else [], dtype=np.float32))
        g = f.create_group("pinnacle")
        g.attrs["pixel_size_m"] = px
        g.attrs["pixel_size_source"] = source
        g.attrs["origin_x_px"] = int(origin[0])
        g.attrs["origin_y_px"] = int(origin[1])
        g.attrs["positions_unit"] = "m (object pixels × pixel size, probe centres)"
        for key, value in (provenance or {}).items():
            g.attrs[key] = "" if value is None else value
    return path
