"""Ptychodus' own HDF5 files (``ptychodus.api.io`` 1.7): ``diffraction.h5`` + ``product.h5`` side by side.

``diffraction.h5``: ``patterns`` (M, H, W) counts with attrs ``detector_pixel_width_m``/``detector_pixel_height_m``,
``indexes`` (M,), ``bad_pixels`` (H, W) bool (True = excluded).
``product.h5``: root attrs ``detector_object_distance_m``, ``photon_energy_eV`` (legacy ``probe_energy_eV``; 0 means
unknown), ``probe_photon_count``, ...; ``probe_position_indexes``, ``probe_position_x_m``, ``probe_position_y_m``;
``probe`` (modes, H, W) with attrs ``pixel_width_m``/``pixel_height_m``; ``object`` (layers, H, W) with attrs
``pixel_width_m``, ``pixel_height_m``, ``center_x_m``, ``center_y_m``; ``object_layer_spacing_m``;
``loss_epochs``/``loss_values``. Pinnacle adds a ``pinnacle`` group (provenance, the pixel positions, the pixel
size's source) that Ptychodus ignores.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.atomic import atomic_path
from engine.errors import InputError
from engine.formats import h5
from engine.formats.cxi import counts_of
from engine.formats.parts import DiffractionParts, ProductData, ProductParts, Stated

DIFFRACTION_FILE = "diffraction.h5"
PRODUCT_FILE = "product.h5"
PATTERNS, INDEXES, BAD_PIXELS = "patterns", "indexes", "bad_pixels"
ENERGY_KEYS = ("photon_energy_eV", "probe_energy_eV")


def is_diffraction(f) -> bool:
    return PATTERNS in f


def is_product(f) -> bool:
    return all(k in f for k in ("probe", "object", "probe_position_x_m"))


# ------------------------------------------------------------------------------------------------- read
def read_diffraction(path: str | Path, source: str | None = None) -> DiffractionParts:
    source = str(path) if source is None else source
    with h5.open_h5(path, source) as f:
        item = h5.dataset(f, source, PATTERNS)
        if item is None:
            raise h5.missing(source, PATTERNS, "diffraction patterns (M, H, W) of counts")
        counts = h5.read_array(f, source, PATTERNS)
        px = h5.read_attr(item, source, PATTERNS, "detector_pixel_width_m", "the detector pixel width (m)")
        py = h5.read_attr(item, source, PATTERNS, "detector_pixel_height_m", "the detector pixel height (m)")
        if px and py and abs(px - py) > 1e-9 * max(px, py):
            raise InputError(source, f"{PATTERNS}@detector_pixel_height_m", f"expected square detector pixels "
                             f"(height = width = {px:.6g} m), got {py:.6g} m")
        indexes = h5.read_array(f, source, INDEXES)
        if indexes is None or indexes.shape != counts.shape[:1] or indexes.dtype.kind not in "iu":
            raise InputError(source, INDEXES, f"expected (M,) integer pattern indexes, M = {counts.shape[0]}")
        bad = h5.read_array(f, source, BAD_PIXELS)
        if bad is not None and (bad.ndim != 2 or bad.dtype.kind not in "biu"):
            raise InputError(source, BAD_PIXELS, f"expected an (H, W) boolean mask, got dtype {bad.dtype}, shape "
                             f"{bad.shape}")
    return DiffractionParts(source=source, format="ptychodus", counts=counts, data_path=PATTERNS, indexes=indexes,
                            bad=None if bad is None else bad != 0, mask_path=BAD_PIXELS,
                            detector_pixel=Stated(px if px and px > 0 else None, f"{PATTERNS}@detector_pixel_width_m"))


def read_product(path: str | Path, source: str | None = None) -> ProductParts:
    source = str(path) if source is None else source
    with h5.open_h5(path, source) as f:
        energy = next((h5.read_attr(f, source, "", k, "the photon energy (eV)") for k in ENERGY_KEYS
                       if k in f.attrs), None)
        distance = h5.read_attr(f, source, "", "detector_object_distance_m", "the detector distance (m)")
        x, y = (h5.read_array(f, source, k) for k in ("probe_position_x_m", "probe_position_y_m"))
        positions = None
        if x is not None and y is not None:
            if x.shape != y.shape or x.ndim != 1 or x.dtype.kind not in "iuf" or y.dtype.kind not in "iuf":
                raise InputError(source, "probe_position_y_m", f"expected (M,) metres like probe_position_x_m "
                                 f"{x.shape}, got {y.shape}")
            positions = np.stack([x, y], axis=1).astype(np.float64)
        elif x is not None:
            raise h5.missing(source, "probe_position_y_m", "probe positions y (M,) in metres")
        indexes = h5.read_array(f, source, "probe_position_indexes")
        probe = obj = None
        modes, probe_px, obj_px, centre = 1, None, None, None
        item = h5.dataset(f, source, "probe")
        if item is not None:
            from engine.formats.cxi import _first_mode

            probe, modes = _first_mode(source, "probe", np.asarray(item[()]))
            probe_px = h5.read_attr(item, source, "probe", "pixel_width_m", "the probe pixel width (m)")
        item = h5.dataset(f, source, "object")
        if item is not None:
            from engine.formats.cxi import _first_mode

            obj = _first_mode(source, "object", np.asarray(item[()]))[0]
            obj_px = h5.read_attr(item, source, "object", "pixel_width_m", "the object pixel width (m)")
            cx = h5.read_attr(item, source, "object", "center_x_m", "the object centre x (m)")
            cy = h5.read_attr(item, source, "object", "center_y_m", "the object centre y (m)")
            centre = (cx, cy) if cx is not None and cy is not None else None
        native = h5.read_array(f, source, "pinnacle/positions_px")
        native_origin = h5.read_array(f, source, "pinnacle/origin_m")
        role = h5.read_text(f, "pinnacle/object_role")
    native_ok = (native is not None and native_origin is not None and positions is not None
                 and native.shape == positions.shape and native_origin.shape == (2,))
    return ProductParts(
        source=source, positions_m=positions, positions_path="probe_position_x_m",
        indexes=None if indexes is None or positions is None or len(indexes) != len(positions) else indexes,
        probe=probe, probe_path="probe", probe_modes=modes, probe_pixel_m=probe_px if probe_px else None,
        object=obj, object_path="object", object_pixel_m=obj_px if obj_px else None, object_center_m=centre,
        object_role=role, energy=Stated(energy if energy and energy > 0 else None, "photon_energy_eV"),
        distance=Stated(distance if distance and distance > 0 else None, "detector_object_distance_m"),
        native_px=native.astype(np.float64) if native_ok else None,
        native_origin_m=(float(native_origin[0]), float(native_origin[1])) if native_ok else None)


def companion_product(diffraction: Path) -> Path:
    """Ptychodus' standard layout: ``product.h5`` in the directory of ``diffraction.h5``."""
    return diffraction.parent / PRODUCT_FILE


# ------------------------------------------------------------------------------------------------ write
def write_product(path: str | Path, p: ProductData) -> Path:
    """``product.h5`` in Ptychodus 1.7's layout (``ptychodus.api.io.save_product``), atomically."""
    import h5py

    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _product_into(f, p)
    return path


def _product_into(f, p: ProductData) -> None:
    g = p.geometry
    dx = p.pixel_m
    f.attrs["name"] = p.name
    f.attrs["comments"] = p.comments or ("Pinnacle PINN reconstruction" if p.object_role == "reconstruction"
                                         else "Pinnacle scan")
    f.attrs["detector_object_distance_m"] = float(g.distance_m or 0.0)  # 0: unknown (Ptychodus' convention)
    f.attrs["photon_energy_eV"] = float(g.energy_ev or 0.0)
    f.attrs["probe_photon_count"] = float(p.photon_count)
    f.attrs["exposure_time_s"] = 0.0
    f.attrs["mass_attenuation_m2_per_kg"] = 0.0
    f.attrs["tomography_angle_deg"] = 0.0
    pos = p.positions_m
    f.create_dataset("probe_position_indexes", data=np.arange(len(pos), dtype=np.int64))
    f.create_dataset("probe_position_x_m", data=pos[:, 0])
    f.create_dataset("probe_position_y_m", data=pos[:, 1])
    probe = f.create_dataset("probe", data=np.asarray(p.probe, np.complex64))
    probe.attrs["pixel_width_m"] = dx
    probe.attrs["pixel_height_m"] = dx
    obj = f.create_dataset("object", data=np.asarray(p.object, np.complex64))
    cx, cy = p.object_center_m
    obj.attrs["pixel_width_m"] = dx
    obj.attrs["pixel_height_m"] = dx
    obj.attrs["center_x_m"] = cx
    obj.attrs["center_y_m"] = cy
    f.create_dataset("object_layer_spacing_m", data=np.zeros(0, dtype=np.float64))  # one thin layer
    epochs, values = p.loss_arrays()
    f.create_dataset("loss_epochs", data=epochs)
    f.create_dataset("loss_values", data=values)
    h5.write_own_group(f.create_group("pinnacle"), p, dx, origin_x_px=int(p.object_origin_px[0]),
                       origin_y_px=int(p.object_origin_px[1]),
                       positions_unit="m: origin_m + object pixels × pixel size, probe centres")


def write_pair(directory: Path, ds, product: ProductData) -> tuple[Path, Path]:
    """``diffraction.h5`` + ``product.h5`` of a scan in ``directory``; both are renamed into place only once both
    are complete."""
    import h5py

    g = ds.geometry
    d_path, p_path = directory / DIFFRACTION_FILE, directory / PRODUCT_FILE
    with atomic_path(d_path) as dtmp, atomic_path(p_path) as ptmp:
        with h5py.File(dtmp, "w") as f:
            f.create_dataset(INDEXES, data=np.arange(ds.M, dtype=np.int64))
            pat = f.create_dataset(PATTERNS, data=counts_of(ds.diffraction), chunks=True, compression="gzip",
                                   compression_opts=1, shuffle=True)
            pat.attrs["detector_pixel_width_m"] = float(g.detector_pixel_m)
            pat.attrs["detector_pixel_height_m"] = float(g.detector_pixel_m)
            f.create_dataset(BAD_PIXELS, data=np.zeros((ds.N, ds.N), bool) if ds.valid is None else ~ds.valid)
        with h5py.File(ptmp, "w") as f:
            _product_into(f, product)
    return d_path, p_path
