"""Per-array checks of the data contract (docs/data.md), each failing with ONE InputError(source, key, expected).

Kept apart from ``engine/dataset.py`` so the contract's rules read as a list: lossless dtype conversion, finite
values, shapes, orientation, and patches that stay inside the object.
"""
from __future__ import annotations

import warnings

import numpy as np

from engine.errors import InputError

NUMERIC_KINDS = "iuf"


def _describe(arr: np.ndarray) -> str:
    return f"dtype {arr.dtype}, shape {tuple(arr.shape)}"


def _kind_error(source: str, key: str, arr: np.ndarray, want: str) -> InputError:
    hint = " (strings: store numbers, not text)" if arr.dtype.kind in "US" else ""
    return InputError(source, key, f"expected {want}, got {_describe(arr)}{hint}")


def _require_finite(source: str, key: str, arr: np.ndarray) -> None:
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise InputError(source, key, f"expected finite values, found {bad} NaN/Inf (first at index {first})")


def _lossless_int_to_float(source: str, key: str, arr: np.ndarray, dtype) -> np.ndarray:
    out = arr.astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        back = out.astype(arr.dtype)
    if not np.array_equal(back, arr):
        raise InputError(source, key, f"expected integers that {np.dtype(dtype).name} holds exactly, found values "
                         f"up to {int(np.abs(arr.astype(np.float64)).max()):.6g} (integer overflow / precision loss)")
    return out


def _no_overflow(source: str, key: str, arr: np.ndarray, out: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(out)):
        raise InputError(source, key, f"expected values within {out.dtype.name} range, "
                         f"found magnitudes up to {float(np.abs(arr).max()):.3g} (overflow)")
    return out


def as_real(source: str, key: str, arr: np.ndarray, dtype) -> np.ndarray:
    """Convert to float32/float64 without losing values (float64 -> float32 rounding is accepted)."""
    if arr.dtype.kind not in NUMERIC_KINDS:
        raise _kind_error(source, key, arr, f"real numbers convertible to {np.dtype(dtype).name}")
    if arr.dtype.kind in "iu":
        return _lossless_int_to_float(source, key, arr, dtype)
    _require_finite(source, key, arr)
    with np.errstate(over="ignore"):
        return _no_overflow(source, key, arr, arr.astype(dtype))


def as_complex64(source: str, key: str, arr: np.ndarray) -> np.ndarray:
    """Convert real or complex numbers to complex64 (a real probe or object is accepted)."""
    if arr.dtype.kind not in NUMERIC_KINDS + "c":
        raise _kind_error(source, key, arr, "complex (or real) numbers convertible to complex64")
    if arr.dtype.kind in "iu":
        return _lossless_int_to_float(source, key, arr, np.float32).astype(np.complex64)
    _require_finite(source, key, arr)
    with np.errstate(over="ignore"):
        return _no_overflow(source, key, arr, arr.astype(np.complex64))


def as_int64(source: str, key: str, arr: np.ndarray) -> np.ndarray:
    """Convert integers (or integral floats) to int64 without overflow."""
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise InputError(source, key, f"expected integers within int64 range, found {int(arr.max())} (overflow)")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        _require_finite(source, key, arr)
        lim = float(2 ** 53)
        if np.all(arr == np.round(arr)) and (arr.size == 0 or float(np.abs(arr).max()) <= lim):
            return arr.astype(np.int64)
        raise InputError(source, key, f"expected integer values (int64), found non-integral or too large floats "
                         f"({_describe(arr)})")
    raise _kind_error(source, key, arr, "integers (int64)")


def require_shape(source: str, key: str, arr: np.ndarray, shape: tuple, what: str) -> None:
    """``shape`` entries may be None (any size >= 1)."""
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok or arr.size == 0:
        raise InputError(source, key, f"expected {what}, got shape {tuple(arr.shape)}")


def orient_diffraction(source: str, key: str, diff: np.ndarray, M: int) -> np.ndarray:
    """Return (M, N, N); accept legacy (N, N, M) with a UserWarning; refuse shapes that fit both or neither."""
    if diff.ndim != 3:
        raise InputError(source, key, f"expected a 3-d array (M, N, N) of patterns, got shape {tuple(diff.shape)}")
    if diff.size == 0:
        raise InputError(source, key, f"expected at least one non-empty pattern, got shape {tuple(diff.shape)}")
    a, b, c = diff.shape
    modern, legacy = (b == c and a == M), (a == b and c == M)
    if modern and legacy:
        raise InputError(source, key, f"expected an unambiguous orientation: shape {diff.shape} with {M} positions "
                         "fits both (M, N, N) and legacy (N, N, M); store (M, N, N) with M != N")
    if modern:
        return diff
    if legacy:
        warnings.warn(f"{source}: {key} is in the legacy (N, N, M) orientation {diff.shape}; "
                      f"read as (M, N, N) = {(c, a, b)}. Re-save it as (M, N, N).", UserWarning, stacklevel=3)
        return np.ascontiguousarray(np.moveaxis(diff, -1, 0))
    if b == c and a != M:
        raise InputError(source, key, f"expected one pattern per position: {a} patterns but {M} positions "
                         "in xcoords/ycoords")
    raise InputError(source, key, f"expected square patterns (M, N, N) with M = {M} positions, "
                     f"got shape {diff.shape}")


def require_even_size(source: str, key: str, N: int) -> None:
    if N % 2 or N < 2:
        raise InputError(source, key, f"expected an even pattern size N (patch centre at pixel N//2), got N = {N}")


def require_nonnegative(source: str, key: str, diff: np.ndarray) -> None:
    if np.any(diff < 0):
        first = tuple(int(i) for i in np.argwhere(diff < 0)[0])
        raise InputError(source, key, f"expected amplitude sqrt(counts) >= 0, found {int(np.sum(diff < 0))} "
                         f"negative values (first at index {first}, value {float(diff[first]):.4g})")


def require_patches_inside(source: str, x: np.ndarray, y: np.ndarray, N: int, shape: tuple[int, int]) -> None:
    """Each N×N patch with pixel (N//2, N//2) on (x, y) must lie in [0, W) × [0, H); floor/ceil for sub-pixel."""
    H, W = shape
    for key, c, size in (("xcoords", x, W), ("ycoords", y, H)):
        lo = np.floor(c) - N // 2
        hi = np.ceil(c) - N // 2 + N - 1
        bad = np.flatnonzero((lo < 0) | (hi > size - 1))
        if bad.size:
            i = int(bad[0])
            axis = key[0]
            raise InputError(source, key, f"expected every {N}x{N} patch inside objectGuess (0 <= {axis} - {N // 2}"
                             f" and {axis} + {N - N // 2 - 1} < {size}); {bad.size} positions leave it, first: "
                             f"pattern {i} at ({x[i]:.6g}, {y[i]:.6g}) spans {axis} {int(lo[i])}..{int(hi[i])}")


def require_lengths(source: str, arrays: dict[str, np.ndarray], M: int) -> None:
    for key, arr in arrays.items():
        if arr.ndim != 1 or arr.shape[0] != M or M == 0:
            raise InputError(source, key, f"expected a 1-d array of {M} values (one per position in xcoords), "
                             f"got shape {tuple(arr.shape)}")


def require_signal(source: str, key: str, arr: np.ndarray, what: str) -> None:
    """Refuse an array that is zero everywhere: a probe, patterns or an object with no signal cannot be
    normalised, trained on or scored against (the scales would divide by zero)."""
    if arr.size and not np.any(arr):
        raise InputError(source, key, f"expected {what}; every value is zero")
