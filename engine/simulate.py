"""Seeded simulator of ptychography scans: objects, probes, scan paths, and the numpy physics oracle on top.

Every function is pure: randomness comes from a ``numpy.random.Generator`` passed in, and ``simulate`` derives
independent streams for object, scan and noise from ``SimulationConfig.seed`` (so changing the scan kind does not
change the object). Same config -> the same bytes on disk (``write_simulation``). Conventions: docs/simulation.md.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.draw import line_aa

from engine.atomic import write_text
from engine import physics
from engine.config import SimulationConfig
from engine.errors import ConfigError

GENERATOR = "pinnacle.simulate"
#: Bump whenever the same config would produce different bytes (the fixtures' sidecars record it).
GENERATOR_VERSION = 1

AMP_MIN = 0.3  # darkest object amplitude; the background (and the tapered border) has amplitude 1
PHASE_MAX = math.pi / 2  # phase stays in [-PHASE_MAX, PHASE_MAX]; the border has phase 0
OBJECT_BLUR = 1.0  # Gaussian sigma (px): keeps the object well sampled for the band-limited interpolant
PROBE_EDGE = 1.0  # width (px) of the disk probe's tanh edge
CONTAINMENT = 0.999  # share of |P|² that must lie in the central N/2 × N/2 region the network predicts
SCAN_MARGIN = 1.0  # px between every patch and the object edge
GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))
#: Order of the arrays in the NPZ (PtychoPINN key names).
NPZ_KEYS = ("diffraction", "xcoords", "ycoords", "probeGuess", "objectGuess", "Y", "scan_index")


# ------------------------------------------------------------------------------------------------ objects
def border_taper(shape: tuple[int, int], N: int) -> np.ndarray:
    """1 inside, 0 within N/8 of the edge, raised cosine in between (so the object is constant near the edge).

    The physics oracle samples sub-pixel patches through the periodic interpolant of the whole object; a
    constant border makes the object effectively periodic, so no wrap-around edge leaks into the patches.
    """
    inner, outer = N / 8, N / 2

    def ramp(n: int) -> np.ndarray:
        d = np.minimum(np.arange(n), np.arange(n)[::-1]) + 0.5  # distance to the nearer edge
        t = np.clip((d - inner) / (outer - inner), 0.0, 1.0)
        return 0.5 - 0.5 * np.cos(np.pi * t)

    return np.outer(ramp(shape[0]), ramp(shape[1]))


def _unit_signed(f: np.ndarray) -> np.ndarray:
    """Scale to max |f| = 1 (a zero field stays zero)."""
    peak = float(np.abs(f).max())
    return f / peak if peak > 0 else f


def lines_field(size: int, rng: np.random.Generator, signed: bool) -> np.ndarray:
    """Random thin anti-aliased lines (random orientation, length, weight), blurred; in [0, 1] or [-1, 1]."""
    canvas = np.zeros((size, size))
    n_lines = max(1, round(size * size / 200))
    for _ in range(n_lines):
        cx, cy = rng.uniform(0, size, 2)
        theta = rng.uniform(0, np.pi)
        half = 0.5 * rng.uniform(0.1, 0.5) * size
        weight = rng.uniform(0.5, 1.0) * (rng.choice((-1.0, 1.0)) if signed else 1.0)
        dx, dy = half * np.cos(theta), half * np.sin(theta)
        rr, cc, val = line_aa(int(round(cy - dy)), int(round(cx - dx)), int(round(cy + dy)), int(round(cx + dx)))
        ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
        canvas[rr[ok], cc[ok]] += weight * val[ok]
    return _unit_signed(gaussian_filter(canvas, OBJECT_BLUR, mode="wrap"))


def grf_field(size: int, rng: np.random.Generator, beta: float = 2.5) -> np.ndarray:
    """Gaussian random field with power spectrum ∝ |k|^-beta (periodic), blurred; zero mean, in [-1, 1]."""
    ky, kx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    k = np.hypot(ky, kx)
    amp = np.zeros_like(k)
    amp[k > 0] = k[k > 0] ** (-beta / 2)
    amp *= np.exp(-2 * (np.pi * OBJECT_BLUR * k) ** 2)  # the Gaussian blur, applied in Fourier space
    f = np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size))) * amp).real
    return _unit_signed(f - f.mean())


def dead_leaves_field(size: int, rng: np.random.Generator, signed: bool,
                      r_min: float = 2.0, r_max: float | None = None, max_discs: int = 20000) -> np.ndarray:
    """Dead leaves: random overlapping discs (radius density ∝ r⁻³), front to back, blurred; [0, 1] or [-1, 1]."""
    r_max = r_max if r_max is not None else max(r_min + 1.0, size / 8)
    canvas = np.zeros((size, size))
    filled = np.zeros((size, size), dtype=bool)
    uncovered = size * size
    for _ in range(max_discs):
        u = rng.uniform()
        r = 1.0 / math.sqrt(u / r_max**2 + (1 - u) / r_min**2)  # inverse CDF of p(r) ∝ r⁻³ on [r_min, r_max]
        cy, cx = rng.uniform(0, size, 2)
        value = rng.uniform(-1.0, 1.0) if signed else rng.uniform(0.0, 1.0)
        y0, y1 = max(0, math.floor(cy - r)), min(size, math.ceil(cy + r) + 1)
        x0, x1 = max(0, math.floor(cx - r)), min(size, math.ceil(cx + r) + 1)
        inside = (np.arange(y0, y1)[:, None] - cy) ** 2 + (np.arange(x0, x1)[None, :] - cx) ** 2 < r * r
        done = filled[y0:y1, x0:x1]  # a view: updated in place
        new = inside & ~done
        canvas[y0:y1, x0:x1][new] = value
        done |= inside
        uncovered -= int(new.sum())
        if uncovered == 0:
            break
    f = gaussian_filter(canvas, OBJECT_BLUR, mode="wrap")
    return f if not signed else np.clip(f, -1.0, 1.0)


def _fields(kind: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two independent fields: absorption in [0, 1] and phase in [-1, 1]."""
    if kind == "lines":
        return np.clip(lines_field(size, rng, signed=False), 0, 1), lines_field(size, rng, signed=True)
    if kind == "grf":
        return 0.5 * (grf_field(size, rng) + 1.0), grf_field(size, rng)
    if kind == "dead_leaves":
        return dead_leaves_field(size, rng, signed=False), dead_leaves_field(size, rng, signed=True)
    raise ConfigError("object_kind", "one of lines, grf, dead_leaves")


def make_object(kind: str, size: int, N: int, rng: np.random.Generator) -> np.ndarray:
    """Complex object (size × size, complex64): amplitude in [AMP_MIN, 1], phase in [-PHASE_MAX, PHASE_MAX].

    Amplitude and phase come from independent fields of the same kind, so phase/amplitude crosstalk in a
    reconstruction is visible. Both fade to amplitude 1, phase 0 at the border (``border_taper``).
    """
    absorb, phase = _fields(kind, size, rng)
    w = border_taper((size, size), N)
    amp = 1.0 - (1.0 - AMP_MIN) * absorb * w
    return (amp * np.exp(1j * PHASE_MAX * phase * w)).astype(np.complex64)


# ------------------------------------------------------------------------------------------------- probes
def containment(probe: np.ndarray) -> float:
    """Share of |P|² inside the central N/2 × N/2 region (the region the network predicts)."""
    N = probe.shape[-1]
    p2 = np.abs(probe.astype(np.complex128)) ** 2
    return float((p2 * physics.center_mask(N, N // 2)).sum() / max(float(p2.sum()), 1e-300))


def make_probe(kind: str, N: int, radius: float, defocus: float = 0.0) -> np.ndarray:
    """Unit-peak probe (N × N complex64) centred on pixel (N//2, N//2).

    ``disk``: soft-edged aperture of ``radius`` (tanh edge of PROBE_EDGE px); ``gaussian``: sigma = radius/2.
    Optional defocus phase ``defocus·(r/radius)²``. Refused unless ≥ 99.9 % of |P|² lies in the central N/2
    region: outside it the network predicts no object.
    """
    y, x = np.mgrid[:N, :N] - N // 2
    r = np.hypot(y, x)
    if kind == "disk":
        mag = 0.5 * (1.0 - np.tanh((r - radius) / PROBE_EDGE))
    elif kind == "gaussian":
        mag = np.exp(-(r**2) / (2 * (radius / 2) ** 2))
    else:
        raise ConfigError("probe_kind", "one of disk, gaussian")
    probe = (mag * np.exp(1j * defocus * (r / radius) ** 2)).astype(np.complex64)
    share = containment(probe)
    if share < CONTAINMENT:
        raise ConfigError("probe_radius", f"a probe with >= 99.9 % of |P|^2 in the central {N // 2}x{N // 2} "
                          f"region (radius {radius:g} puts {100 * share:.2f} % there; use a smaller radius)")
    return probe


# -------------------------------------------------------------------------------------------------- scans
def scan_bounds(size: int, N: int) -> tuple[float, float]:
    """Allowed probe-centre range on each axis: the N×N patch stays SCAN_MARGIN px inside the object."""
    return N // 2 + SCAN_MARGIN, size - N + N // 2 - SCAN_MARGIN


def _too_small(size: int, N: int, half_extent: float, what: str) -> ConfigError:
    need = math.ceil(2 * (half_extent + SCAN_MARGIN) + N) + 1
    return ConfigError("object_size", f"at least {need} px to hold {what} with every {N}x{N} patch inside "
                       f"(got {size}; or use fewer positions / a smaller step)")


def make_scan(kind: str, M: int, size: int, N: int, step: float, jitter: float,
              rng: np.random.Generator) -> np.ndarray:
    """Probe-centre positions (M, 2) as (x, y) in object pixels, float64, all inside ``scan_bounds``.

    ``raster``: row-major grid of ceil(√M) columns at ``step``, centred on the object, first M points, each
    jittered uniformly by ±``jitter`` on both axes. ``random``: uniform in the allowed square. ``fermat``: Fermat
    spiral r = c√k, θ = k·golden angle, c = step/√π (one point per step² of area), centred.
    """
    lo, hi = scan_bounds(size, N)
    centre = 0.5 * (lo + hi)
    room = 0.5 * (hi - lo)
    if kind == "raster":
        cols = math.ceil(math.sqrt(M))
        rows = math.ceil(M / cols)
        half = 0.5 * (max(cols, rows) - 1) * step + jitter
        if half > room + 1e-9:
            raise _too_small(size, N, half, f"a {rows}x{cols} raster at step {step:g} (jitter {jitter:g})")
        iy, ix = np.divmod(np.arange(M), cols)
        pos = np.stack([(ix - 0.5 * (cols - 1)) * step, (iy - 0.5 * (rows - 1)) * step], axis=1) + centre
        pos = pos + rng.uniform(-jitter, jitter, size=(M, 2))
    elif kind == "random":
        pos = rng.uniform(lo, hi, size=(M, 2))
    elif kind == "fermat":
        c = step / math.sqrt(math.pi)
        k = np.arange(M)
        if c * math.sqrt(M - 1) > room + 1e-9:
            raise _too_small(size, N, c * math.sqrt(M - 1), f"a {M}-point Fermat spiral at step {step:g}")
        pos = np.stack([c * np.sqrt(k) * np.cos(k * GOLDEN_ANGLE), c * np.sqrt(k) * np.sin(k * GOLDEN_ANGLE)],
                       axis=1) + centre
    else:
        raise ConfigError("scan_kind", "one of raster, random, fermat")
    return np.clip(pos, lo, hi).astype(np.float64)  # clip only guards rounding at the very edge


# ----------------------------------------------------------------------------------------------- simulate
def sample_patches(obj: np.ndarray, positions: np.ndarray, N: int, chunk: int = 32) -> np.ndarray:
    """The same patches as ``physics.extract_patches`` (band-limited periodic interpolant), bit-reproducibly.

    ``extract_patches`` evaluates the interpolant with a matrix DFT whose BLAS product changes in the last bits
    with the BLAS thread count, which would make the fixtures' bytes depend on the machine's load settings.
    Here each position's fractional offset is one FFT shift of the whole object (``physics.fourier_shift``)
    followed by an exact integer slice: the identical interpolant, without BLAS. Agreement with
    ``extract_patches`` is tested (≤ 1e-5).
    """
    origin = physics.patch_origin(positions, N)
    base = np.floor(origin).astype(np.int64)
    frac = origin - base
    obj128 = np.asarray(obj).astype(np.complex128)
    out = np.empty((len(origin), N, N), dtype=np.complex64)
    for m in np.flatnonzero(np.all(frac == 0, axis=1)):  # integer positions: the exact slice
        out[m] = obj[base[m, 1]:base[m, 1] + N, base[m, 0]:base[m, 0] + N]
    moving = np.flatnonzero(np.any(frac != 0, axis=1))
    for s in range(0, len(moving), chunk):
        idx = moving[s:s + chunk]
        moved = physics.fourier_shift(obj128, -frac[idx, 1], -frac[idx, 0])  # moved[y, x] = obj(y + fy, x + fx)
        for k, m in enumerate(idx):
            bx, by = base[m]
            out[m] = moved[k, by:by + N, bx:bx + N]
    return out


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for object, scan and noise, all from one seed."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))  # type: ignore[return-value]


def simulate_with_info(cfg: SimulationConfig) -> tuple[dict[str, np.ndarray], dict]:
    """``simulate`` plus what the sidecar reports (photon scale, measured counts, probe containment)."""
    obj_rng, scan_rng, noise_rng = _streams(cfg.seed)
    probe = make_probe(cfg.probe_kind, cfg.N, cfg.probe_radius, cfg.probe_defocus)
    obj = make_object(cfg.object_kind, cfg.object_size, cfg.N, obj_rng)
    pos = make_scan(cfg.scan_kind, cfg.n_positions, cfg.object_size, cfg.N, cfg.scan_step, cfg.jitter, scan_rng)
    Y = sample_patches(obj, pos, cfg.N)
    unit_totals = physics.forward_intensity(probe, Y).astype(np.float64).sum(axis=(-2, -1))
    photon_scale = math.sqrt(cfg.nphotons / float(unit_totals.mean()))
    intensity = physics.forward_intensity(probe, Y, photon_scale)
    diffraction = physics.poisson_sample(intensity, noise_rng)
    arrays = {
        "diffraction": diffraction,
        "xcoords": np.ascontiguousarray(pos[:, 0]),
        "ycoords": np.ascontiguousarray(pos[:, 1]),
        # in counts units: forward_intensity(probeGuess, Y) is the expected intensity of the simulation
        "probeGuess": (photon_scale * probe).astype(np.complex64),
        "objectGuess": obj,
        "Y": Y,
        "scan_index": np.zeros(cfg.n_positions, dtype=np.int64),  # one scan
    }
    info = {
        "photon_scale": photon_scale,
        "nphotons_expected": float(intensity.astype(np.float64).sum(axis=(-2, -1)).mean()),
        "nphotons_measured": float((diffraction.astype(np.float64) ** 2).sum(axis=(-2, -1)).mean()),
        "probe_containment": containment(probe),
    }
    return arrays, info


def simulate(cfg: SimulationConfig) -> dict[str, np.ndarray]:
    """Simulate one scan; returns the NPZ arrays (PtychoPINN keys, see NPZ_KEYS and docs/simulation.md).

    Y = the object's patches (``sample_patches``, i.e. ``physics.extract_patches``); the probe is scaled so that
    the mean total expected count per pattern equals ``cfg.nphotons``; diffraction = sqrt(Poisson counts).
    Same config → identical arrays.
    """
    return simulate_with_info(cfg)[0]


# ------------------------------------------------------------------------------------------------ writing
def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def array_sha256(arr: np.ndarray) -> str:
    """Hash of an array's dtype, shape and C-order bytes (independent of how it was stored)."""
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def sidecar(cfg: SimulationConfig, arrays: dict[str, np.ndarray], info: dict, file_sha256: str, name: str) -> dict:
    """Everything needed to know what a simulated file is and to check it has not changed."""
    return {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "numpy_version": np.__version__,
        "file": name,
        "sha256": file_sha256,
        "parameters": dataclasses.asdict(cfg),
        "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape), "sha256": array_sha256(v)}
                   for k, v in arrays.items()},
        "nphotons": cfg.nphotons,
        "nphotons_expected": info["nphotons_expected"],
        "nphotons_measured": info["nphotons_measured"],
        "photon_scale": info["photon_scale"],
        "probe_containment": info["probe_containment"],
        "units": {"positions": "object pixels, (x, y) = probe centre", "diffraction": "sqrt(counts)",
                  "probeGuess": "sqrt(counts): forward_intensity(probeGuess, Y) = expected counts",
                  "Y": "object transmission patches (ground truth)"},
    }


def sidecar_path(path: str | os.PathLike) -> Path:
    """``<path>.json`` next to the NPZ (``train.npz`` -> ``train.npz.json``)."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def _atomic_write_text(path: Path, text: str) -> None:
    """Readers never see a half-written sidecar (engine.atomic)."""
    write_text(path, text)


def default_geometry(energy_ev: float | None = None, distance_m: float | None = None,
                     detector_pixel_m: float | None = None) -> tuple[float, float, float]:
    """(E, z, p) with the defaults for what is not given: λ = 1 Å (12398.42 eV), z = 0.48 m, p = 75 µm, so the
    object pixel λ·z/(N·p) is a round 10 nm at N = 64 (20 nm at N = 32, 5 nm at N = 128); docs/data.md."""
    from engine.formats.geometry import HC_EV_M

    return (float(energy_ev) if energy_ev is not None else HC_EV_M / 1e-10,
            float(distance_m) if distance_m is not None else 0.48,
            float(detector_pixel_m) if detector_pixel_m is not None else 75e-6)


def write_simulation(path: str | os.PathLike, cfg: SimulationConfig,
                     geometry: tuple[float, float, float] | None = None) -> dict:
    """Simulate and write ``path`` (NPZ, or CXI for a ``.cxi`` name) and ``<path>.json`` (sidecar), each atomically;
    returns the sidecar.

    ``geometry`` (photon energy eV, detector distance m, detector pixel m) is stored with the scan; a CXI file
    always gets one (``default_geometry``), an NPZ only when given (without it, the same bytes as ever).
    Everything is simulated and checked against the data contract before anything is written, so a bad config
    leaves no file behind. The NPZ goes through ``engine.dataset.save_dataset``, whose zip entries carry fixed
    timestamps (np.savez stamps the current time), so the same config gives the same bytes; HDF5 files record no
    times either.
    """
    from engine.dataset import fingerprint, from_arrays, load_dataset, save_dataset

    path = Path(path)
    cxi = path.suffix.lower() == ".cxi"
    arrays, info = simulate_with_info(cfg)
    if cxi and geometry is None:
        geometry = default_geometry()
    if geometry is not None:
        arrays = {**arrays, **{k: np.array(float(v)) for k, v in zip(
            ("photon_energy_eV", "detector_distance_m", "detector_pixel_size_m"), geometry)}}
    ds = from_arrays(arrays, str(path), require_probe=True)
    if cxi:
        from engine.formats.cxi import write_cxi

        write_cxi(path, ds=ds)
        ds = load_dataset(path)  # the sidecar describes what the file holds (CXI has no Y or scan_index)
    else:
        save_dataset(path, ds)
    try:
        meta = sidecar(cfg, ds.arrays(), info, sha256_file(path), path.name)
        meta["fingerprint"] = fingerprint(ds)
        if ds.geometry.known:
            meta["geometry"] = ds.geometry.to_dict()
        _atomic_write_text(sidecar_path(path), json.dumps(meta, indent=2) + "\n")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return meta
