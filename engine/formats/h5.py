"""Small h5py helpers shared by the CXI and Ptychodus readers: every failure is one InputError naming the HDF5 path.

A scan file is bad input when it lacks what reconstruction needs; the message names the file, the HDF5 path that is
missing or wrong, and what was expected (docs/data.md), so the CLI prints one line and exits 2.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from engine.errors import InputError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: Path) -> bool:
    """HDF5 signature at offset 0, or (for files with a user block) wherever h5py finds it."""
    try:
        with open(path, "rb") as fh:
            if fh.read(8) == HDF5_SIGNATURE:
                return True
    except OSError:
        return False
    import h5py

    try:
        return bool(h5py.is_hdf5(str(path)))
    except (OSError, ValueError):
        return False


@contextmanager
def open_h5(path: str | Path, source: str | None = None) -> Iterator["h5py.File"]:  # noqa: F821
    """Open read-only; a file HDF5 cannot read is InputError(file)."""
    import h5py

    source = str(path) if source is None else source
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise InputError(source, "file", f"expected a readable HDF5 file ({type(exc).__name__}: {exc})") from None
    try:
        yield f
    finally:
        f.close()


def missing(source: str, path: str, what: str, hint: str = "") -> InputError:
    return InputError(source, path, f"expected {what}; it is missing{hint}")


def dataset(f, source: str, path: str) -> "h5py.Dataset | None":  # noqa: F821
    """The dataset at ``path`` (soft links followed), None when absent; a group there is an error."""
    import h5py

    try:
        item = f.get(path)
    except (KeyError, OSError, ValueError):  # a dangling soft link reads as absent
        return None
    if item is None:
        return None
    if not isinstance(item, h5py.Dataset):
        raise InputError(source, path, f"expected a dataset, found a {type(item).__name__}")
    return item


def read_array(f, source: str, path: str) -> np.ndarray | None:
    ds = dataset(f, source, path)
    if ds is None:
        return None
    try:
        return np.asarray(ds[()])
    except (OSError, ValueError, TypeError) as exc:  # e.g. a compression filter this h5py does not have
        raise InputError(source, path, f"expected a readable dataset ({type(exc).__name__}: {exc})") from None


def read_scalar(f, source: str, path: str, what: str) -> float | None:
    """A real number stored as a scalar or one-element dataset; None when absent; anything else is an error."""
    arr = read_array(f, source, path)
    if arr is None:
        return None
    return as_scalar(source, path, arr, what)


def as_scalar(source: str, path: str, value, what: str) -> float:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        raise InputError(source, path, f"expected {what} (one real number), got dtype {arr.dtype}, shape {arr.shape}")
    v = float(arr.reshape(()))
    if not math.isfinite(v):
        raise InputError(source, path, f"expected {what} (a finite number), got {v}")
    return v


def read_attr(obj, source: str, where: str, name: str, what: str) -> float | None:
    """A real-valued attribute; None when absent. ``where`` names the object for the message."""
    if name not in obj.attrs:
        return None
    return as_scalar(source, f"{where}@{name}" if where else name, obj.attrs[name], what)


def read_text(f, path: str) -> str:
    """A string dataset (bytes or str) or '' when absent or not text."""
    try:
        item = f.get(path)
        value = item[()] if item is not None else ""
    except (KeyError, OSError, ValueError, TypeError, AttributeError):
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else ""


def write_own_group(own, p, dx: float, **attrs) -> None:
    """What Pinnacle keeps of its product ``p`` in its own group of a CXI or Ptychodus file (positions in object
    pixels, origin, object role, pixel size and its source, the format's ``attrs``, then provenance), so that
    reading either file back gives the product exactly."""
    own.create_dataset("positions_px", data=np.asarray(p.positions_px, np.float64))
    own.create_dataset("origin_m", data=np.asarray(p.origin_m, np.float64))
    own.create_dataset("object_role", data=p.object_role)
    own.attrs["pixel_size_m"] = dx
    own.attrs["pixel_size_source"] = p.pixel_source
    for key, value in {**attrs, **p.provenance}.items():
        own.attrs[key] = "" if value is None else value
