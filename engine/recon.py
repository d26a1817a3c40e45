"""Reconstruction files (``recon.npz``): written atomically, read back without pickle and validated.

Keys: ``object`` (complex64 on the recon grid), ``origin_x``/``origin_y`` (the grid's top-left in the
dataset's object pixel frame), ``amplitude``/``phase`` (derived, float32), ``xcoords``/``ycoords`` (scan
positions), plus scalar or numeric metadata. A dataset NPZ (``objectGuess``) is read as a perfect recon at
origin (0, 0), so that a truth can be scored against itself.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.atomic import atomic_path
from engine.errors import InputError


@dataclass(frozen=True)
class Recon:
    object: np.ndarray  # (H, W) complex64
    origin: tuple[int, int]  # (x, y) of pixel (0, 0) in the dataset's object frame
    positions: np.ndarray | None  # (M, 2) as (x, y), when stored
    meta: dict = field(default_factory=dict)


def _meta_array(key: str, value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufcUS":
        raise ValueError(f"recon metadata {key!r} must be numbers or text, not {arr.dtype}")
    return arr


def write_recon(path: str | os.PathLike, object: np.ndarray, origin: tuple[int, int], positions: np.ndarray,
                **meta) -> Path:
    """Write a recon NPZ atomically (temporary file in the same folder, then rename): never half-written."""
    path = Path(path)
    obj = np.asarray(object).astype(np.complex64)
    if obj.ndim != 2:
        raise ValueError("recon object must be 2-D")
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    reserved = {"object", "origin_x", "origin_y", "amplitude", "phase", "xcoords", "ycoords"}
    clash = reserved & set(meta)
    if clash:
        raise ValueError(f"metadata keys clash with recon keys: {sorted(clash)}")
    arrays = {
        "object": obj,
        "origin_x": np.int64(origin[0]),
        "origin_y": np.int64(origin[1]),
        "amplitude": np.abs(obj).astype(np.float32),
        "phase": np.angle(obj).astype(np.float32),
        "xcoords": pos[:, 0],
        "ycoords": pos[:, 1],
        **{k: _meta_array(k, v) for k, v in meta.items()},
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def open_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an NPZ, loaded eagerly with ``allow_pickle=False``; unreadable → InputError."""
    src = str(path)
    if not Path(path).is_file():
        raise InputError(src, None, "an existing NPZ file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(src, None, f"a readable NPZ file without pickled objects ({type(exc).__name__})") from exc


def _complex_2d(src: str, key: str, arr: np.ndarray) -> np.ndarray:
    if arr.ndim != 2 or arr.dtype.kind not in "fc" or min(arr.shape) < 2:
        raise InputError(src, key, f"a 2-D complex (or real) array, got {arr.dtype} {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(src, key, "finite values only")
    return arr.astype(np.complex64)


def _int_scalar(src: str, key: str, arr: np.ndarray) -> int:
    if arr.shape != () or arr.dtype.kind not in "iuf" or not np.isfinite(arr) or float(arr) != round(float(arr)):
        raise InputError(src, key, "a whole-number scalar")
    return int(round(float(arr)))


def _positions(src: str, data: dict) -> np.ndarray | None:
    if "xcoords" not in data and "ycoords" not in data:
        return None
    for key in ("xcoords", "ycoords"):
        if key not in data:
            raise InputError(src, key, "present together with the other coordinate array")
        a = data[key]
        if a.ndim != 1 or a.dtype.kind not in "iuf" or not np.all(np.isfinite(a)):
            raise InputError(src, key, "a 1-D array of finite numbers")
    if data["xcoords"].shape != data["ycoords"].shape:
        raise InputError(src, "ycoords", f"the same length as xcoords ({data['xcoords'].shape[0]})")
    return np.stack([data["xcoords"], data["ycoords"]], axis=1).astype(np.float64)


def load_recon(path: str | os.PathLike) -> Recon:
    """Read and validate a recon NPZ (or a dataset NPZ with ``objectGuess``, read as origin (0, 0))."""
    src = str(path)
    data = open_npz(path)
    pos = _positions(src, data)
    if "object" not in data and "objectGuess" in data:
        return Recon(_complex_2d(src, "objectGuess", data["objectGuess"]), (0, 0), pos, {"truth_as_recon": True})
    for key in ("object", "origin_x", "origin_y"):
        if key not in data:
            raise InputError(src, key, "present (a recon NPZ has object, origin_x, origin_y)")
    obj = _complex_2d(src, "object", data["object"])
    origin = (_int_scalar(src, "origin_x", data["origin_x"]), _int_scalar(src, "origin_y", data["origin_y"]))
    skip = {"object", "origin_x", "origin_y", "amplitude", "phase", "xcoords", "ycoords"}
    meta = {k: (v.item() if v.shape == () else v) for k, v in data.items() if k not in skip}
    return Recon(obj, origin, pos, meta)
