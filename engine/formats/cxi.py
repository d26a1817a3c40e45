"""CXI files (Coherent X-ray Imaging format, v1.6) as Ptychodus 1.7 reads and writes them (docs/data.md "CXI").

Read: patterns (counts) at ``/entry_1/data_1/data`` or ``/entry_1/instrument_1/detector_1/data``; energy (J) at
``/entry_1/instrument_1/source_1/energy``; ``detector_1/distance``, ``x_pixel_size``, ``y_pixel_size`` (m);
``detector_1/mask`` (non-zero = excluded); probe positions ``/entry_1/sample_1/geometry_1/translation`` (M, 3) m,
x then y; probe ``/entry_1/image_1/data``; object ``/entry_1/image_2/data``, its pixel size and centre from
Ptychodus' extension group ``/entry_1/ptychodus`` (or ``image_2/image_size``).
Write: the same paths, plus ``/entry_1/ptychodus`` (so Ptychodus reads pixel sizes, centre and losses back
exactly) and ``/entry_1/pinnacle`` (the pixel positions the metres were made from, so a round trip is bit-exact).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.atomic import atomic_path
from engine.errors import InputError
from engine.formats import h5
from engine.formats.geometry import ELECTRON_VOLT_J, Geometry
from engine.formats.parts import DiffractionParts, ProductData, ProductParts, Stated

CXI_VERSION = 160
PIXEL_IS_INVALID = 0x1  # CXI mask bit (spec tables 7 and 11)

ENTRY = "/entry_1"
SOURCE = "/entry_1/instrument_1/source_1"
ENERGY = "/entry_1/instrument_1/source_1/energy"
ILLUMINATION = "/entry_1/instrument_1/source_1/illumination"
DETECTOR = "/entry_1/instrument_1/detector_1"
DETECTOR_DATA = "/entry_1/instrument_1/detector_1/data"
DISTANCE = "/entry_1/instrument_1/detector_1/distance"
X_PIXEL = "/entry_1/instrument_1/detector_1/x_pixel_size"
Y_PIXEL = "/entry_1/instrument_1/detector_1/y_pixel_size"
MASK = "/entry_1/instrument_1/detector_1/mask"
DATA = "/entry_1/data_1/data"
TRANSLATION = "/entry_1/sample_1/geometry_1/translation"
DATA_TRANSLATION = "/entry_1/data_1/translation"
PROBE = "/entry_1/image_1/data"
OBJECT = "/entry_1/image_2/data"
PTYCHODUS = "/entry_1/ptychodus"
PINNACLE = "/entry_1/pinnacle"


def is_cxi(f) -> bool:
    return ENTRY in f or "cxi_version" in f


# ------------------------------------------------------------------------------------------------- read
def read_cxi(path: str | Path, source: str | None = None, *, need_data: bool = True
             ) -> tuple[DiffractionParts | None, ProductParts]:
    """Both parts of a CXI file (the diffraction part is None when ``need_data`` is False or there is none)."""
    source = str(path) if source is None else source
    with h5.open_h5(path, source) as f:
        product = _read_product(f, source)
        if not need_data:
            return None, product
        data_path = DATA if h5.dataset(f, source, DATA) is not None else DETECTOR_DATA
        counts = h5.read_array(f, source, data_path)
        if counts is None:
            raise h5.missing(source, DATA, f"diffraction patterns (M, H, W) of counts (or {DETECTOR_DATA})")
        mask = h5.read_array(f, source, MASK)
        xp = h5.read_scalar(f, source, X_PIXEL, "the detector pixel width (m)")
        yp = h5.read_scalar(f, source, Y_PIXEL, "the detector pixel height (m)")
        if xp and yp and abs(xp - yp) > 1e-9 * max(xp, yp):
            raise InputError(source, Y_PIXEL, f"expected square detector pixels (y = x = {xp:.6g} m), got {yp:.6g} m")
        diff = DiffractionParts(
            source=source, format="cxi", counts=counts, data_path=data_path,
            bad=None if mask is None else _bad_pixels(source, mask), mask_path=MASK,
            energy=product.energy, distance=product.distance,
            detector_pixel=Stated(xp if xp and xp > 0 else None, X_PIXEL))
    return diff, product


def _bad_pixels(source: str, mask: np.ndarray) -> np.ndarray:
    if mask.dtype.kind not in "biu" or mask.ndim != 2:
        raise InputError(source, MASK, f"expected a 2-d integer mask (non-zero = excluded pixel), got dtype "
                         f"{mask.dtype}, shape {mask.shape}")
    return mask != 0


def _first_mode(source: str, path: str, a: np.ndarray) -> tuple[np.ndarray, int]:
    """(H, W) complex: the first of (modes, H, W) or (opr, modes, H, W); the number of modes."""
    if a.ndim < 2 or a.ndim > 4 or a.size == 0 or a.dtype.kind not in "iufc":
        raise InputError(source, path, f"expected a complex (H, W) array (or a stack of modes), got dtype "
                         f"{a.dtype}, shape {a.shape}")
    modes = int(np.prod(a.shape[:-2])) if a.ndim > 2 else 1
    return np.asarray(a.reshape((-1,) + a.shape[-2:])[0]), modes


def _image_pixel(f, source: str, group: str, shape: tuple[int, ...], key: str) -> float | None:
    """Pixel width from Ptychodus' extension, else from ``image_size`` / width."""
    w = h5.read_scalar(f, source, f"{PTYCHODUS}/{key}_pixel_width_m", "a pixel width (m)")
    if w:
        return w
    size = h5.read_array(f, source, f"{group}/image_size")
    if size is not None and size.size >= 1 and size.dtype.kind in "iuf" and float(size.reshape(-1)[0]) > 0:
        return float(size.reshape(-1)[0]) / shape[-1]
    return None


def _read_product(f, source: str) -> ProductParts:
    energy_j = h5.read_scalar(f, source, ENERGY, "the photon energy (J)")
    energy_ev = energy_j / ELECTRON_VOLT_J if energy_j and energy_j > 0 else None
    own_ev = h5.read_scalar(f, source, f"{PINNACLE}/photon_energy_eV", "the photon energy (eV)")
    if energy_ev and own_ev and abs(own_ev - energy_ev) <= 1e-12 * energy_ev:
        energy_ev = own_ev  # the eV value Pinnacle wrote, bit for bit (joules do not divide back exactly)
    distance = h5.read_scalar(f, source, DISTANCE, "the detector distance (m)")
    tpath = TRANSLATION if h5.dataset(f, source, TRANSLATION) is not None else DATA_TRANSLATION
    t = h5.read_array(f, source, tpath)
    positions = None
    if t is not None:
        if t.ndim != 2 or t.shape[1] < 2 or t.shape[0] == 0 or t.dtype.kind not in "iuf":
            raise InputError(source, tpath, f"expected probe positions (M, 3) in metres, got dtype {t.dtype}, "
                             f"shape {t.shape}")
        positions = t[:, :2].astype(np.float64)
        if not np.all(np.isfinite(positions)):
            raise InputError(source, tpath, "expected finite probe positions")
    indexes = h5.read_array(f, source, f"{PTYCHODUS}/probe_position_indexes")
    probe_path = PROBE if h5.dataset(f, source, PROBE) is not None else ILLUMINATION
    raw_probe = h5.read_array(f, source, probe_path)
    probe, modes = _first_mode(source, probe_path, raw_probe) if raw_probe is not None else (None, 1)
    raw_obj = h5.read_array(f, source, OBJECT)
    obj = _first_mode(source, OBJECT, raw_obj)[0] if raw_obj is not None else None
    cx = h5.read_scalar(f, source, f"{PTYCHODUS}/object_center_x_m", "the object centre x (m)")
    cy = h5.read_scalar(f, source, f"{PTYCHODUS}/object_center_y_m", "the object centre y (m)")
    native = h5.read_array(f, source, f"{PINNACLE}/positions_px")
    native_origin = h5.read_array(f, source, f"{PINNACLE}/origin_m")
    native_ok = (native is not None and native_origin is not None and positions is not None
                 and native.shape == positions.shape and native_origin.shape == (2,))
    return ProductParts(
        source=source, positions_m=positions, positions_path=TRANSLATION,
        indexes=None if indexes is None or positions is None or len(indexes) != len(positions) else indexes,
        probe=probe, probe_path=PROBE if raw_probe is None else probe_path, probe_modes=modes,
        probe_pixel_m=_image_pixel(f, source, "/entry_1/image_1", probe.shape, "probe") if probe is not None else None,
        object=obj, object_path=OBJECT,
        object_pixel_m=_image_pixel(f, source, "/entry_1/image_2", obj.shape, "object") if obj is not None else None,
        object_center_m=(cx, cy) if cx is not None and cy is not None else None,
        object_role=h5.read_text(f, f"{PINNACLE}/object_role"),
        energy=Stated(energy_ev, ENERGY), distance=Stated(distance if distance and distance > 0 else None, DISTANCE),
        native_px=native.astype(np.float64) if native_ok else None,
        native_origin_m=(float(native_origin[0]), float(native_origin[1])) if native_ok else None,
        hint="or pass --product FILE")


# ------------------------------------------------------------------------------------------------ write
def counts_of(amplitude: np.ndarray) -> np.ndarray:
    """Counts to store for amplitudes: unsigned integers when every amplitude is float32(sqrt(n)) of an integer n
    (measured data: then the reader's sqrt gives back the same bits), else float64 amplitude² (exact, since a
    float32's square fits a float64, so sqrt gives the amplitude back too)."""
    a = np.asarray(amplitude, np.float32)
    sq = a.astype(np.float64) ** 2
    n = np.rint(sq)
    if n.size and n.max() < 2**32 and np.array_equal(np.sqrt(n).astype(np.float32), a):
        return n.astype(np.uint32)
    return sq


def write_cxi(path: str | Path, *, ds=None, product: ProductData | None = None) -> Path:
    """Write a scan (``ds``: patterns, mask, positions, probe, object) and/or a product atomically.

    A scan needs a known geometry (positions are stored in metres); ``product`` (a reconstruction) may lack it, in
    which case ``/entry_1/pinnacle/pixel_size_source`` says that the pixel size is a default.
    """
    import h5py

    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("cxi_version", data=CXI_VERSION)
        f.create_group(ENTRY)
        g = (product or product_of(ds)).geometry
        _write_geometry(f, g)
        if ds is not None:
            f.create_dataset(DETECTOR_DATA, data=counts_of(ds.diffraction), chunks=True, compression="gzip",
                             compression_opts=1, shuffle=True)
            f[DATA] = h5py.SoftLink(DETECTOR_DATA)
            if ds.valid is not None:
                f.create_dataset(MASK, data=np.where(ds.valid, 0, PIXEL_IS_INVALID).astype(np.uint32))
        _write_product(f, product or product_of(ds))
    return path


def product_of(ds) -> ProductData:
    """The product part of a scan: its positions, probe and (ground-truth) object in its own pixel frame."""
    return ProductData(positions_px=ds.positions, geometry=ds.geometry, probe=ds.probe, object=ds.object,
                       object_role="ground truth" if ds.object is not None else "")


def _write_geometry(f, g: Geometry) -> None:
    if g.energy_ev:
        f.create_dataset(ENERGY, data=float(g.energy_ev) * ELECTRON_VOLT_J)
    if g.distance_m:
        f.create_dataset(DISTANCE, data=float(g.distance_m))
    if g.detector_pixel_m:
        f.create_dataset(X_PIXEL, data=float(g.detector_pixel_m))
        f.create_dataset(Y_PIXEL, data=float(g.detector_pixel_m))


def _image(f, group: str, array: np.ndarray, pixel: float, kind: str) -> None:
    import h5py

    grp = f.require_group(group)
    d = grp.create_dataset("data", data=np.asarray(array, np.complex64))
    d.attrs["axes"] = "y:x"
    grp.create_dataset("data_type", data=kind)
    grp.create_dataset("data_space", data="real")
    H, W = array.shape[-2:]
    grp.create_dataset("image_size", data=np.array([W * pixel, H * pixel, 0.0]))
    grp["source_1"] = h5py.SoftLink(SOURCE)
    grp["detector_1"] = h5py.SoftLink(DETECTOR)


def _write_product(f, p: ProductData) -> None:
    import h5py

    pos = np.zeros((len(p.positions_px), 3))
    pos[:, :2] = p.positions_m
    f.create_dataset(TRANSLATION, data=pos)
    f[DATA_TRANSLATION] = h5py.SoftLink(TRANSLATION)
    if p.name:
        f.create_dataset(f"{ENTRY}/title", data=p.name)
    dx = p.pixel_m
    ext = f.require_group(PTYCHODUS)
    ext.create_dataset("probe_position_indexes", data=np.arange(len(pos), dtype=np.int64))
    if p.probe is not None:
        _image(f, "/entry_1/image_1", p.probe, dx, "probe")
        f[ILLUMINATION] = h5py.SoftLink(PROBE)
        ext.create_dataset("probe_pixel_width_m", data=dx)
        ext.create_dataset("probe_pixel_height_m", data=dx)
    if p.object is not None:
        _image(f, "/entry_1/image_2", p.object, dx, "object")
        cx, cy = p.object_center_m
        for key, value in (("object_pixel_width_m", dx), ("object_pixel_height_m", dx), ("object_center_x_m", cx),
                           ("object_center_y_m", cy)):
            ext.create_dataset(key, data=value)
    if p.photon_count:
        ext.create_dataset("probe_photon_count", data=float(p.photon_count))
    if p.losses:
        epochs, values = p.loss_arrays()
        ext.create_dataset("loss_epochs", data=epochs)
        ext.create_dataset("loss_values", data=values)
    own = f.require_group(PINNACLE)
    if p.geometry.energy_ev:
        own.create_dataset("photon_energy_eV", data=float(p.geometry.energy_ev))
    h5.write_own_group(own, p, dx, object_origin_px=np.asarray(p.object_origin_px, np.int64))
