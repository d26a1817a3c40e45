"""Diffraction part + product part + command-line options → one validated Dataset (docs/data.md "HDF5 scans").

Order of the checks (the first failure is reported, naming the file and HDF5 path): the patterns; the positions;
the detector crop; the geometry (energy, distance, detector pixel, or a stated object pixel); the probe (when
required). Then the arrays go through the NPZ data contract (``engine.dataset.from_arrays``), so an HDF5 scan obeys
exactly the rules an NPZ does.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.errors import InputError
from engine.formats import geometry as geo
from engine.formats.geometry import Geometry, ScanOptions
from engine.formats.parts import DiffractionParts, ProductParts, Stated

_GEOMETRY_HINT = {"energy": "--energy-ev", "distance": "--distance-m", "pixel": "--detector-pixel-m"}


def centre_crop(a: np.ndarray, N: int) -> np.ndarray:
    """The N×N region of the last two axes centred on pixel (H//2, W//2) (the zero frequency stays at N//2)."""
    H, W = a.shape[-2:]
    y0, x0 = H // 2 - N // 2, W // 2 - N // 2
    return np.ascontiguousarray(a[..., y0:y0 + N, x0:x0 + N])


def resample_probe(probe: np.ndarray, N: int) -> np.ndarray:
    """A probe sampled for the full H×W detector → the N×N grid of a centred N×N detector crop.

    Cropping the detector to N pixels coarsens the sample-plane pixel to λz/(N·p) over the same field of view, so
    the probe keeps the central N×N of its far field: ``fftshift(fft2(P_N))/N`` equals the crop of
    ``fftshift(fft2(P))/sqrt(H·W)`` pixel for pixel (same counts per detector pixel, tested).
    """
    H, W = probe.shape
    spectrum = np.fft.fftshift(np.fft.fft2(np.asarray(probe, np.complex128)))
    out = np.fft.ifft2(np.fft.ifftshift(centre_crop(spectrum, N))) * (N / np.sqrt(H * W))
    return out.astype(np.complex64)


# ------------------------------------------------------------------------------------------------ pieces
def _check_counts(d: DiffractionParts) -> None:
    c = d.counts
    if c.ndim != 3 or c.size == 0:
        raise InputError(d.source, d.data_path, f"expected a stack of patterns (M, H, W) of photon counts, got "
                         f"shape {tuple(c.shape)}")
    if c.dtype.kind not in "iuf":
        raise InputError(d.source, d.data_path, f"expected real photon counts (integers or floats), got dtype "
                         f"{c.dtype}")


def _positions(d: DiffractionParts, p: ProductParts) -> tuple[np.ndarray, np.ndarray | None]:
    """Positions (M, 2) in metres in pattern order, and the matching rows of the native pixel positions."""
    M = d.counts.shape[0]
    if p.positions_m is None:
        raise geo_missing(p.source, p.positions_path, "probe positions (M, 3) in metres, x then y", p.hint)
    pos = p.positions_m
    if p.indexes is None or d.indexes is None:
        if len(pos) != M:
            raise InputError(p.source, p.positions_path, f"expected one position per pattern ({M} patterns in "
                             f"{d.source}), got {len(pos)}")
        return pos, p.native_px
    where = {int(i): k for k, i in enumerate(p.indexes)}
    rows = [where.get(int(i), -1) for i in d.indexes]
    lacking = [int(i) for i, r in zip(d.indexes, rows) if r < 0]
    if lacking:
        raise InputError(p.source, p.positions_path, f"expected a position for every pattern index of {d.source}; "
                         f"{len(lacking)} have none (first: index {lacking[0]})")
    rows = np.asarray(rows)
    return pos[rows], None if p.native_px is None else p.native_px[rows]


def geo_missing(source: str, path: str, what: str, hint: str = "") -> InputError:
    return InputError(source, path, f"expected {what}; it is missing{f' ({hint})' if hint else ''}")


def _crop(d: DiffractionParts, options: ScanOptions) -> tuple[int, str | None]:
    """N and the note that states the crop (None when the detector is used whole)."""
    _, H, W = d.counts.shape
    if options.crop is not None:
        N = int(options.crop)
        if N < 2 or N % 2 or N > min(H, W):
            raise InputError("--crop", str(options.crop), f"expected an even size from 2 to {min(H, W)} (the "
                             f"detector of {d.source} is {H}x{W})")
        if N == H == W:
            return N, None
        return N, (f"detector {H}x{W} cropped to the central {N}x{N} (rows {H // 2 - N // 2}..{H // 2 - N // 2 + N - 1}, "
                   f"columns {W // 2 - N // 2}..{W // 2 - N // 2 + N - 1}; zero frequency at pixel ({H // 2}, {W // 2}))")
    if H != W:
        raise InputError(d.source, d.data_path, f"expected square patterns; the detector is {H}x{W} (pass --crop N "
                         f"for the central NxN, N even <= {min(H, W)})")
    if H % 2:
        raise InputError(d.source, d.data_path, f"expected an even pattern size; the detector is {H}x{W} (pass "
                         f"--crop {H - 1} for the central {H - 1}x{H - 1})")
    return H, None


def _geometry(d: DiffractionParts, p: ProductParts, options: ScanOptions, N: int, cropped: bool) -> Geometry:
    """Energy, distance and detector pixel: the option, else the diffraction file, else the product; Δ from them,
    or a Δ the product states (only valid when the detector is not cropped), else InputError naming the path."""
    def pick(opt, *values):
        if opt is not None:
            return opt, True
        return next((v for v in values if v is not None and v > 0), None), False

    def where(*stated: Stated) -> tuple[str, str]:
        """(file, path) of the first statement (the diffraction file's, then the product's) that names a path,
        else of the last."""
        named = list(zip((d.source, p.source), stated))
        return next(((f, s.path) for f, s in named if s.path), (named[-1][0], named[-1][1].path))

    e, e_over = pick(options.energy_ev, d.energy.value, p.energy.value)
    z, z_over = pick(options.distance_m, d.distance.value, p.distance.value)
    px, p_over = pick(options.detector_pixel_m, d.detector_pixel.value)
    over = tuple(name for name, o in (("energy", e_over), ("distance", z_over), ("detector pixel", p_over)) if o)
    stated = p.object_pixel_m if p.object_pixel_m and not cropped else None  # a product's own sampling
    g = geo.resolve(N, e, z, px, stated, overridden=over)
    if g.known:
        return g
    for value, (source, path), what, key in ((e, where(d.energy, p.energy), "the photon energy", "energy"),
                                             (z, where(d.distance, p.distance), "the detector distance (m)",
                                              "distance"),
                                             (px, where(d.detector_pixel), "the detector pixel size (m)", "pixel")):
        if value is None:
            raise geo_missing(source, path, f"{what} to compute the object pixel λ·z/(N·p)",
                              f"or pass {_GEOMETRY_HINT[key]}")
    raise AssertionError("unreachable: a complete geometry is always known")


def _frame(pos_m: np.ndarray, native: np.ndarray | None, p: ProductParts, g: Geometry, N: int
           ) -> tuple[np.ndarray, tuple[float, float], np.ndarray | None, str | None]:
    """(positions in object pixels, origin_m, the object to keep or None, a note or None).

    Pinnacle's own files carry the pixel positions they were written from: used when they agree with the metres.
    Else the object's frame when a product object sampled at Δ covers every patch; else a grid over the scan.
    """
    dx = g.object_pixel_m
    obj = p.object if p.object_role != "placeholder" else None
    if native is not None and p.native_origin_m is not None:
        if np.all(np.abs(geo.to_metres(native, p.native_origin_m, dx) - pos_m) <= geo.SAME_REL * dx):
            keep = obj is not None and (p.object_pixel_m is None or geo.same(p.object_pixel_m, dx))
            return native, p.native_origin_m, obj if keep else None, None
    if obj is not None:
        if p.object_pixel_m is not None and not geo.same(p.object_pixel_m, dx):
            note = (f"object {p.object_path} not used: sampled at {p.object_pixel_m:.6g} m, the patterns at "
                    f"{dx:.6g} m")
        elif p.object_center_m is None:
            note = f"object {p.object_path} not used: the file states no object centre to place it"
        else:
            origin = geo.frame_of_object(p.object_center_m, obj.shape, dx)
            px = (pos_m - np.asarray(origin)) / dx
            if _inside(px, N, obj.shape):
                return px, origin, obj, None
            note = f"object {p.object_path} not used: it does not cover every {N}x{N} patch of the scan"
    else:
        note = None
    px, origin = geo.grid_positions(pos_m, dx, N)
    return px, origin, None, note


def _inside(px: np.ndarray, N: int, shape: tuple[int, int]) -> bool:
    lo = np.floor(px) - N // 2
    hi = np.ceil(px) - N // 2 + N - 1
    return bool(np.all(lo >= 0) and np.all(hi[:, 0] <= shape[1] - 1) and np.all(hi[:, 1] <= shape[0] - 1))


def fit_probe(src: ProductParts, N: int, g: Geometry, detector: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """The probe of ``src`` on the N×N grid of the patterns: as is when N×N, resampled when it has the shape of the
    uncropped ``detector``; its stated pixel size must match the patterns' (InputError naming its path)."""
    notes: list[str] = []
    probe = np.asarray(src.probe)
    if src.probe_modes > 1:
        notes.append(f"probe: the first of {src.probe_modes} modes of {src.probe_path} used")
    H, W = detector
    if probe.shape == (N, N):
        expected_px = g.object_pixel_m
    elif probe.shape == (H, W):
        probe = resample_probe(probe, N)
        expected_px = g.object_pixel_m * N / H if (H == W and g.known) else None
        notes.append(f"probe resampled from {H}x{W} to {N}x{N} (the central {N}x{N} of its far field)")
    else:
        raise InputError(src.source, src.probe_path, f"expected a {N}x{N} probe" + (
            f" (or {H}x{W}, the detector before the crop)" if (H, W) != (N, N) else "") +
            f", got shape {tuple(probe.shape)}")
    if src.probe_pixel_m and expected_px and not geo.same(src.probe_pixel_m, expected_px):
        raise InputError(src.source, src.probe_path, f"expected a probe sampled at {expected_px:.6g} m (the "
                         f"object pixel of these patterns), got {src.probe_pixel_m:.6g} m")
    return probe.astype(np.complex64), notes


def _probe(p: ProductParts, probe_file: ProductParts | None, d: DiffractionParts, N: int, g: Geometry,
           require: bool) -> tuple[np.ndarray | None, list[str]]:
    src = probe_file if probe_file is not None else p
    if src.probe is None:
        if require:
            raise geo_missing(src.source, src.probe_path, "a probe (training needs one)",
                              "or pass --probe-from FILE" if probe_file is None else "")
        return None, []
    return fit_probe(src, N, g, d.counts.shape[1:])


def _amplitude(d: DiffractionParts, counts: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """sqrt(counts) as float32; counts must be finite and >= 0 where valid (masked pixels may hold anything)."""
    c = counts.astype(np.float64)
    ok = np.isfinite(c) & (c >= 0)
    bad = ~ok if valid is None else (~ok & valid)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(d.source, d.data_path, f"expected finite counts >= 0 at unmasked pixels, found "
                         f"{int(bad.sum())} that are not (first at index {first}, value {c[first]:.4g})")
    return np.sqrt(np.where(ok, c, 0.0)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ assemble
def assemble(d: DiffractionParts, p: ProductParts, options: ScanOptions, *, require_probe: bool,
             source: str, probe_file: ProductParts | None = None):
    """One Dataset from the parts; InputError naming the first missing or wrong HDF5 path."""
    from engine.dataset import from_arrays

    _check_counts(d)
    pos_m, native = _positions(d, p)
    N, crop_note = _crop(d, options)
    cropped = crop_note is not None
    counts = centre_crop(d.counts, N) if cropped else d.counts
    if d.bad is not None and d.bad.shape != d.counts.shape[1:]:
        raise InputError(d.source, d.mask_path, f"expected a mask of the detector's shape {d.counts.shape[1:]}, "
                         f"got {tuple(d.bad.shape)}")
    bad = None if d.bad is None else (centre_crop(d.bad, N) if cropped else d.bad)
    valid = None if bad is None or not bad.any() else ~bad
    g = _geometry(d, p, options, N, cropped)
    px, origin, obj, frame_note = _frame(pos_m, None if cropped else native, p, g, N)
    probe, probe_notes = _probe(p, probe_file, d, N, g, require_probe)
    arrays = {"diffraction": _amplitude(d, counts, valid), "xcoords": px[:, 0].copy(), "ycoords": px[:, 1].copy()}
    if probe is not None:
        arrays["probeGuess"] = probe
    if obj is not None:
        arrays["objectGuess"] = obj
    if valid is not None:
        arrays["bad_pixels"] = ~valid
    ds = from_arrays(arrays, source)
    notes = tuple(n for n in (crop_note, frame_note, *probe_notes) if n)
    return replace(ds, geometry=replace(g, origin_m=origin, notes=g.notes + notes), format=d.format)
