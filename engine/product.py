"""Reconstruction products in Ptychodus' formats: ``product.h5`` (``ptychodus.api.io`` 1.7) and ``product.cxi``.

Both hold the stitched object, the probe, the probe positions in metres, the photon energy, the detector distance,
the object pixel size and the training loss per epoch (docs/pipeline.md lists every key; engine/formats/ptychodus.py
and engine/formats/cxi.py write them). Pixel coordinates map to metres as ``x_m = origin_x_m + x_px · Δ`` in the
dataset's object frame, Δ = λ·z/(N·p) from the data's geometry (docs/data.md). Data that state no geometry get the
historical default Δ = 1e-8 m, energy and distance 0 (Ptychodus' "unknown"), and ``pinnacle/pixel_size_source``
says so: a default is never passed off as a measurement.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.formats.geometry import Geometry, resolve
from engine.formats.parts import ProductData


def product_data(*, obj: np.ndarray, origin: tuple[int, int], probe: np.ndarray, positions: np.ndarray,
                 geometry: Geometry | None = None, pixel_size_m: float | None = None, name: str = "",
                 photon_count: float = 0.0, costs: np.ndarray | None = None,
                 provenance: dict | None = None) -> ProductData:
    """``geometry`` (the dataset's) gives Δ and the metre frame; a bare ``pixel_size_m`` is taken as stated."""
    if geometry is None:
        geometry = resolve(probe.shape[-1], None, None, None, pixel_size_m) if pixel_size_m else Geometry()
    losses = tuple(None if c is None or not np.isfinite(c) else float(c) for c in (costs if costs is not None else ()))
    return ProductData(positions_px=np.asarray(positions, np.float64).reshape(-1, 2), geometry=geometry,
                       probe=np.asarray(probe, np.complex64), object=np.asarray(obj, np.complex64),
                       object_origin_px=(int(origin[0]), int(origin[1])), object_role="reconstruction",
                       losses=losses, name=name, photon_count=float(photon_count),
                       comments="Pinnacle PINN reconstruction", provenance=dict(provenance or {}))


def write_product(path: str | os.PathLike, **kwargs) -> Path:
    """``product.h5`` (Ptychodus' HDF5 product), atomically; keyword arguments of ``product_data``."""
    from engine.formats.ptychodus import write_product as write_h5

    return write_h5(path, product_data(**kwargs))


def write_product_cxi(path: str | os.PathLike, **kwargs) -> Path:
    """``product.cxi`` (a CXI product as Ptychodus writes one), atomically; keyword arguments of ``product_data``."""
    from engine.formats.cxi import write_cxi

    return write_cxi(path, product=product_data(**kwargs))
