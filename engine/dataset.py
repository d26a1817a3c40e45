"""The data contract (docs/data.md): load, validate, save and fingerprint a PtychoPINN-style NPZ scan.

Every way a file can be wrong ends in ONE ``InputError(path, key, expected)`` before anything is computed, so the
CLI prints one line and exits 2. Arrays are read with ``allow_pickle=False``: a data file never runs code.
``load_dataset`` tells the format by content: a zip is an NPZ (read here), an HDF5 file (CXI, Ptychodus
``diffraction.h5``) or a directory holding ``diffraction.h5`` goes to ``engine.formats``.
"""
from __future__ import annotations

import hashlib
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from engine.atomic import atomic_path
from engine import dataset_checks as chk
from engine.errors import InputError
from engine.formats.geometry import Geometry, ScanOptions, resolve, same

DIFF_KEYS = ("diffraction", "diff3d")
#: Optional physical geometry (0-d float64, SI units; ``object_origin_m`` (2,): metres of object pixel (0, 0)).
GEOMETRY_KEYS = ("photon_energy_eV", "detector_distance_m", "detector_pixel_size_m", "object_pixel_size_m",
                 "object_origin_m")
OPTIONAL_KEYS = ("probeGuess", "objectGuess", "Y", "scan_index", "xcoords_start", "ycoords_start",
                 "bad_pixels") + GEOMETRY_KEYS
KNOWN_KEYS = DIFF_KEYS + ("xcoords", "ycoords") + OPTIONAL_KEYS
_FILE = "file"
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Dataset:
    """A validated scan in canonical dtypes and the (M, N, N) orientation; build it with ``from_arrays``."""

    diffraction: np.ndarray                 # (M, N, N) float32 amplitude sqrt(counts), unnormalised
    xcoords: np.ndarray                     # (M,) float64 object pixels, probe centre
    ycoords: np.ndarray                     # (M,) float64
    probe: np.ndarray | None = None         # (N, N) complex64 (key probeGuess)
    object: np.ndarray | None = None        # (H, W) complex64 (key objectGuess)
    Y: np.ndarray | None = None             # (M, N, N) complex64 ground-truth patches
    scan_index: np.ndarray | None = None    # (M,) int64
    xcoords_start: np.ndarray | None = None
    ycoords_start: np.ndarray | None = None
    source: str = ""
    valid: np.ndarray | None = None         # (N, N) bool detector mask, True = measured (None: every pixel)
    geometry: Geometry = field(default_factory=Geometry)  # energy, distance, pixel sizes ("unknown" for most NPZ)
    format: str = "npz"                     # npz | cxi | ptychodus: what the file was

    @property
    def M(self) -> int:
        return int(self.diffraction.shape[0])

    @property
    def N(self) -> int:
        return int(self.diffraction.shape[-1])

    @property
    def positions(self) -> np.ndarray:
        """(M, 2) float64 as (x, y), docs/physics.md."""
        return np.stack([self.xcoords, self.ycoords], axis=1).astype(np.float64)

    @property
    def nphotons(self) -> float:
        """Mean total counts per pattern, inferred from the data (amplitude² summed per pattern, valid pixels)."""
        d = self.measured.astype(np.float64)
        return float(np.mean(np.sum(d * d, axis=(-2, -1))))

    @property
    def measured(self) -> np.ndarray:
        """The amplitude with masked detector pixels set to 0: what the network sees and the scales are computed
        from (the likelihood leaves those pixels out altogether). The array itself when there is no mask."""
        if self.valid is None:
            return self.diffraction
        return np.where(self.valid, self.diffraction, np.float32(0)).astype(np.float32)

    @property
    def pixel_size_m(self) -> float | None:
        """Object (sample-plane) pixel size in metres; None when the file states no geometry."""
        return self.geometry.object_pixel_m

    @property
    def has_probe(self) -> bool:
        return self.probe is not None

    @property
    def has_truth(self) -> bool:
        return self.object is not None

    def arrays(self) -> dict[str, np.ndarray]:
        """The on-disk keys in canonical order (absent optionals left out); what save and fingerprint see."""
        named = {"diffraction": self.diffraction, "xcoords": self.xcoords, "ycoords": self.ycoords,
                 "probeGuess": self.probe, "objectGuess": self.object, "Y": self.Y, "scan_index": self.scan_index,
                 "xcoords_start": self.xcoords_start, "ycoords_start": self.ycoords_start,
                 "bad_pixels": None if self.valid is None else ~self.valid, **geometry_arrays(self.geometry)}
        return {k: v for k, v in named.items() if v is not None}


def geometry_arrays(g: Geometry) -> dict[str, np.ndarray | None]:
    """The NPZ geometry keys of ``g`` (None for what it does not state)."""
    scalar = lambda v: None if v is None else np.array(float(v), dtype=np.float64)  # noqa: E731
    return {"photon_energy_eV": scalar(g.energy_ev), "detector_distance_m": scalar(g.distance_m),
            "detector_pixel_size_m": scalar(g.detector_pixel_m), "object_pixel_size_m": scalar(g.object_pixel_m),
            "object_origin_m": np.array(g.origin_m, dtype=np.float64) if g.known else None}


def _geometry(source: str, get: Mapping[str, np.ndarray], N: int) -> Geometry:
    """Geometry from the optional NPZ keys; the stated object pixel must agree with λ·z/(N·p) when both exist."""
    values = {}
    for key in GEOMETRY_KEYS[:4]:
        if key in get:
            v = chk.as_real(source, key, get[key], np.float64)
            if v.shape != () or not v > 0:
                raise InputError(source, key, f"expected one positive number (0-d float64), got {v!r}")
            values[key] = float(v)
    origin = (0.0, 0.0)
    if "object_origin_m" in get:
        o = chk.as_real(source, "object_origin_m", get["object_origin_m"], np.float64)
        chk.require_shape(source, "object_origin_m", o, (2,), "(2,) metres (x, y) of object pixel (0, 0)")
        origin = (float(o[0]), float(o[1]))
    g = resolve(N, values.get("photon_energy_eV"), values.get("detector_distance_m"),
                values.get("detector_pixel_size_m"), values.get("object_pixel_size_m"))
    stated = values.get("object_pixel_size_m")
    if g.source == "computed" and stated is not None and not same(stated, g.object_pixel_m):
        raise InputError(source, "object_pixel_size_m", f"expected λ·z/(N·p) = {g.object_pixel_m:.6g} m from the "
                         f"energy, distance and detector pixel, got {stated:.6g} m")
    return replace(g, origin_m=origin) if g.known else g


def _valid_pixels(source: str, raw: np.ndarray, N: int) -> np.ndarray:
    """``bad_pixels`` (N, N), True or 1 = excluded → the valid-pixel mask (True = measured)."""
    if raw.dtype.kind not in "biu" or (raw.dtype.kind != "b" and raw.size and not np.isin(raw, (0, 1)).all()):
        raise InputError(source, "bad_pixels", f"expected booleans (True = excluded pixel), got dtype {raw.dtype}")
    chk.require_shape(source, "bad_pixels", raw, (N, N), f"({N}, {N}) to match the {N}x{N} patterns")
    valid = ~raw.astype(bool)
    if not valid.any():
        raise InputError(source, "bad_pixels", "expected at least one valid pixel; every pixel is excluded")
    return valid


def _pick_diffraction(source: str, arrays: Mapping[str, np.ndarray]) -> tuple[str, np.ndarray]:
    present = [k for k in DIFF_KEYS if k in arrays]
    if not present:
        raise InputError(source, "diffraction", "expected key 'diffraction' (or legacy 'diff3d'): (M, N, N) float32 "
                         "amplitude; it is missing")
    if len(present) == 2 and not np.array_equal(arrays["diffraction"], arrays["diff3d"]):
        raise InputError(source, "diff3d", "expected only one of 'diffraction' and 'diff3d' (they differ here)")
    return present[0], np.asarray(arrays[present[0]])


def _require_keys(source: str, arrays: Mapping[str, np.ndarray], require_probe: bool) -> None:
    for key, what in (("xcoords", "(M,) float64 x positions in object pixels"),
                      ("ycoords", "(M,) float64 y positions in object pixels")):
        if key not in arrays:
            raise InputError(source, key, f"expected key '{key}': {what}; it is missing")
    if require_probe and "probeGuess" not in arrays:
        raise InputError(source, "probeGuess", "expected key 'probeGuess' ((N, N) complex64 probe), required for "
                         "training; it is missing")


def from_arrays(arrays: Mapping[str, np.ndarray], source: str = "", *, require_probe: bool = False) -> Dataset:
    """Validate on-disk-named arrays and return a canonical Dataset (the one path both load and save take)."""
    source = str(source)
    _require_keys(source, arrays, require_probe)
    dkey, raw_diff = _pick_diffraction(source, arrays)
    get = {k: np.asarray(arrays[k]) for k in KNOWN_KEYS if k in arrays}

    x = chk.as_real(source, "xcoords", get["xcoords"], np.float64)
    y = chk.as_real(source, "ycoords", get["ycoords"], np.float64)
    if x.ndim != 1 or x.size == 0:
        raise InputError(source, "xcoords", f"expected a non-empty 1-d array (M,), got shape {tuple(x.shape)}")
    M = x.shape[0]
    starts = {k: chk.as_real(source, k, get[k], np.float64) for k in ("xcoords_start", "ycoords_start") if k in get}
    scan_index = chk.as_int64(source, "scan_index", get["scan_index"]) if "scan_index" in get else None
    chk.require_lengths(source, {"ycoords": y, **starts, **({"scan_index": scan_index} if scan_index is not None
                                                             else {})}, M)

    diff = chk.as_real(source, dkey, raw_diff, np.float32)
    diff = chk.orient_diffraction(source, dkey, diff, M)
    N = diff.shape[-1]
    chk.require_even_size(source, dkey, N)
    chk.require_nonnegative(source, dkey, diff)
    chk.require_signal(source, dkey, diff, "measured patterns with counts")

    probe = obj = Y = None
    if "probeGuess" in get:
        probe = chk.as_complex64(source, "probeGuess", get["probeGuess"])
        chk.require_shape(source, "probeGuess", probe, (N, N), f"({N}, {N}) to match the {N}x{N} patterns")
        chk.require_signal(source, "probeGuess", probe, "a probe with signal (the illumination)")
    if "objectGuess" in get:
        obj = chk.as_complex64(source, "objectGuess", get["objectGuess"])
        chk.require_shape(source, "objectGuess", obj, (None, None), "a non-empty 2-d (H, W) array")
        chk.require_signal(source, "objectGuess", obj, "a true object with signal (its transmission)")
        chk.require_patches_inside(source, x, y, N, obj.shape)
    if "Y" in get:
        Y = chk.as_complex64(source, "Y", get["Y"])
        chk.require_shape(source, "Y", Y, (M, N, N), f"({M}, {N}, {N}): one ground-truth patch per pattern")
        chk.require_signal(source, "Y", Y, "ground-truth patches with signal")
    valid = _valid_pixels(source, get["bad_pixels"], N) if "bad_pixels" in get else None
    return Dataset(diffraction=np.ascontiguousarray(diff), xcoords=x, ycoords=y, probe=probe, object=obj, Y=Y,
                   scan_index=scan_index, xcoords_start=starts.get("xcoords_start"),
                   ycoords_start=starts.get("ycoords_start"), source=source, valid=valid,
                   geometry=_geometry(source, get, N))


def _read_member(npz, key: str, source: str) -> np.ndarray:
    try:
        return npz[key]
    except _READ_ERRORS as exc:
        if "pickle" in str(exc):
            raise InputError(source, key, "expected a numeric array; this one holds pickled Python objects, which "
                             "are never loaded") from None
        raise InputError(source, key, f"expected a readable .npy member ({type(exc).__name__}: {exc})") from None


def _read_npz(path: Path, source: str) -> dict[str, np.ndarray]:
    if not path.exists():
        raise InputError(source, _FILE, "expected an existing NPZ file; nothing is at this path" if path.suffix.lower()
                         == ".npz" else "expected an existing scan file (NPZ, CXI or Ptychodus HDF5); nothing is at "
                         "this path")
    if not path.is_file():
        raise InputError(source, _FILE, "expected an NPZ file, got a directory or special file")
    if not zipfile.is_zipfile(path):
        if path.suffix.lower() in (".cxi", ".h5", ".hdf5"):
            raise InputError(source, _FILE, "expected an HDF5 file (CXI, Ptychodus diffraction.h5); this is not one")
        raise InputError(source, _FILE, "expected an NPZ archive (a zip of .npy arrays); this is not a zip file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = [k for k in KNOWN_KEYS if k in npz.files]
            return {k: _read_member(npz, k, source) for k in names}
    except InputError:
        raise
    except _READ_ERRORS as exc:
        raise InputError(source, _FILE, f"expected a readable NPZ archive ({type(exc).__name__}: {exc})") from None


def load_dataset(path, *, require_probe: bool = False, options: ScanOptions | None = None) -> Dataset:
    """Read and validate a scan, its format told by content: NPZ (zip), CXI or Ptychodus HDF5 (docs/data.md).

    ``require_probe`` (training) makes a missing probe an error; ``options`` add or override geometry, crop the
    detector, or read the probe / positions from other files (``engine.formats.geometry.ScanOptions``).
    """
    source = str(path)
    p = Path(path)
    options = options or ScanOptions()
    if _is_zip_or_absent(p):
        from engine.formats import apply_options

        ds = from_arrays(_read_npz(p, source), source, require_probe=require_probe and options.probe is None)
        return ds if options.empty else apply_options(ds, options, require_probe=require_probe)
    from engine.formats import load_scan

    return load_scan(p, options, require_probe=require_probe)


def _is_zip_or_absent(p: Path) -> bool:
    """NPZ reading (and its messages) for a zip and for anything that is not an HDF5 scan or a Ptychodus folder."""
    from engine.formats.h5 import is_hdf5

    if p.is_dir():
        return not (p / "diffraction.h5").is_file()
    if not p.is_file() or zipfile.is_zipfile(p):
        return True
    return not is_hdf5(p)


def _write_npz(fileobj, arrays: Mapping[str, np.ndarray]) -> None:
    """np.savez's layout (uncompressed .npy members) with fixed timestamps, so equal data give equal bytes."""
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fid:
                a = np.asarray(arr) if np.ndim(arr) == 0 else np.ascontiguousarray(arr)  # keeps 0-d scalars 0-d
                np.lib.format.write_array(fid, a, allow_pickle=False)


def save_dataset(path, ds: Dataset) -> None:
    """Validate, then write atomically (temp file in the same directory + os.replace): never a half-written file."""
    path = Path(path)
    checked = from_arrays(ds.arrays(), str(path))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        _write_npz(fh, checked.arrays())


def fingerprint(ds: Dataset) -> str:
    """sha256 over the canonical arrays (name, dtype, shape, bytes): independent of file layout and path."""
    h = hashlib.sha256(b"pinnacle-dataset-v1\n")
    for name, arr in ds.arrays().items():
        a = np.ascontiguousarray(arr)
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\n".encode())
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


def scan_step(positions: np.ndarray) -> float | None:
    """Median nearest-neighbour distance between scan positions (None for a single position)."""
    if len(positions) < 2:
        return None
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(positions).query(positions, k=2)
    return float(np.median(dist[:, 1]))


def summarize(ds: Dataset) -> dict:
    """JSON-able summary for `pinnacle validate` and the console's dataset view."""
    pos = ds.positions
    return {
        "path": ds.source,
        "M": ds.M,
        "N": ds.N,
        "object_shape": list(ds.object.shape) if ds.object is not None else None,
        "nphotons": ds.nphotons,
        "has_probe": ds.has_probe,
        "has_truth": ds.has_truth,
        "has_Y": ds.Y is not None,
        "position_extent": {"x": [float(pos[:, 0].min()), float(pos[:, 0].max())],
                            "y": [float(pos[:, 1].min()), float(pos[:, 1].max())]},
        "scan_step": scan_step(pos),
        "fingerprint": fingerprint(ds),
        "format": ds.format,
        "masked_pixels": 0 if ds.valid is None else int(ds.valid.size - np.count_nonzero(ds.valid)),
        "geometry": ds.geometry.to_dict(),
    }
