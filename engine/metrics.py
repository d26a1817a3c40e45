"""Reconstruction quality metrics (docs/metrics.md), each with its convention written next to it.

A reconstruction is only defined up to a global phase offset, a linear phase ramp, an amplitude scale and a
(sub-pixel) translation, so ``evaluate`` removes those ambiguities before any number is computed, and compares
only inside the scanned region (the bounding box of the probe centres). docs/metrics.md lists the conventions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Registration precision: 1/20 pixel (skimage phase_cross_correlation ``upsample_factor``).
UPSAMPLE_FACTOR = 20
#: Largest registration shift considered, as a fraction of N (8 px for N = 64): a reconstruction is placed by the
#: scan positions; a refined probe can drift by a few pixels and take the object with it, no more.
MAX_SHIFT_FRACTION = 0.125
#: A pixel counts as measured when the scan's summed probe intensity there reaches this share of its maximum.
LIT_FRACTION = 0.01
#: The predecessor papers' PSNR uses peak R = 255 on [0, 1] data: +20·log10(255) = +48.13 dB over peak 1.
PSNR_255_OFFSET_DB = 20.0 * math.log10(255.0)
FRC_HALF = 0.5
FRC_SEVENTH = 1.0 / 7.0

CONVENTIONS = {
    "region": "bounding box of the probe centres, [y0, y1, x0, x1) in the truth object's pixel frame; with the "
              "probe known, only its lit pixels (summed probe intensity >= 1 % of its maximum) count: lit_fraction",
    "registration": "sub-pixel shift: phase correlation of the complex images (1/20 px, after a first phase-ramp "
                    "removal), polished by minimising the aligned residual; applied to the recon by Fourier shift",
    "amplitude": "recon amplitude scaled by the least-squares factor onto the truth",
    "phase": "global offset and linear ramp of angle(truth * conj(recon)) removed by least squares; recon phase "
             "taken on the branch nearest the truth",
    "mae": "mean absolute error (amplitude units; phase in radians, wrapped difference)",
    "psnr": "10*log10(1 / MSE), peak 1 (phase mapped to [0, 1] as (phi + pi) / (2 pi)); inf when identical",
    "psnr_255": "predecessor papers' R = 255 convention = psnr + 48.13 dB (shown for comparison only)",
    "ssim": "skimage.metrics.structural_similarity, data_range 1 (phase mapped to [0, 1])",
    "complex": "the complex recon after phase offset/ramp removal, times the complex least-squares factor onto "
               "the truth (amplitude scale and global phase); nrmse = ||s*r - t|| / ||t||; FRC of the complex images",
    "frc": "Fourier ring correlation of the mean-removed, Hann-windowed largest centred square of the region; "
           "ring r = r cycles per side S; resolution_px = S / r; null = threshold not crossed up to Nyquist",
}


# ------------------------------------------------------------------------------------------------ region
def scanned_region(positions: np.ndarray, N: int, origin: tuple[float, float] = (0, 0),
                   shape: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """Bounding box (y0, y1, x0, x1), end-exclusive, of the probe centres in a grid whose (0, 0) is ``origin``.

    Only the centres' box is compared: the outer half-probe rim is seen by few patterns and is not
    reconstructed to the same standard. ``N`` is accepted for the shared call signature; ``shape`` clips.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2) - np.asarray(origin, dtype=np.float64)
    if len(pos) == 0 or N < 1:
        raise ValueError("scanned_region needs at least one position and N >= 1")
    x0, y0 = np.floor(pos.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pos.max(axis=0)).astype(int) + 1
    y0, x0 = max(int(y0), 0), max(int(x0), 0)
    if shape is not None:
        y1, x1 = min(int(y1), shape[0]), min(int(x1), shape[1])
    return int(y0), int(y1), int(x0), int(x1)


# ------------------------------------------------------------------------------------------ registration
def register_shift(ref: np.ndarray, moving: np.ndarray, bound: float | None = None) -> tuple[float, float]:
    """(dy, dx) that moves ``moving`` onto ``ref`` (to 1/20 px), by phase correlation of the complex images.

    Complex, not amplitude: phase objects have a flat amplitude with nothing to register on, and a global
    phase offset does not change the correlation peak. A linear phase ramp does (it shifts the spectrum), so
    ``evaluate`` removes a first ramp estimate before registering and fits the ramp again afterwards.
    ``bound``: the largest plausible shift. A reconstruction is placed by the known scan positions, so only a few
    pixels of drift are possible; an object of repeated features (lines) has correlation peaks far away too, and
    a blurred reconstruction can pick one (seen: −76 px). Outside the bound, the best integer peak within it wins.
    """
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(np.asarray(ref), np.asarray(moving), upsample_factor=UPSAMPLE_FACTOR)
    if bound is not None and max(abs(shift[0]), abs(shift[1])) > bound:
        shift = _bounded_peak(np.asarray(ref), np.asarray(moving), int(bound))
    return float(shift[0]), float(shift[1])


def _bounded_peak(ref: np.ndarray, moving: np.ndarray, bound: int) -> tuple[int, int]:
    """The integer shift within ±bound maximising the (phase-normalised) cross-correlation of ref and moving."""
    cross = np.fft.fft2(ref) * np.conj(np.fft.fft2(moving))
    cc = np.abs(np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-30)))
    offs = np.arange(-bound, bound + 1)
    window = cc[np.ix_(offs % cc.shape[0], offs % cc.shape[1])]
    iy, ix = np.unravel_index(int(np.argmax(window)), window.shape)
    return int(offs[iy]), int(offs[ix])


def apply_shift(image: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Band-limited (Fourier) shift of a complex or real image: content moves by (+dy, +dx), periodic."""
    image = np.asarray(image)
    spec = ndimage.fourier_shift(np.fft.fft2(image), (dy, dx))
    out = np.fft.ifft2(spec)
    return out if np.iscomplexobj(image) else out.real


def _crop_shifter(recon: np.ndarray, origin: tuple[int, int], region: tuple[int, int, int, int]):
    """``d -> _crop_recon(apply_shift(recon, *d), origin, region)``, computing only the cropped part.

    The whole grid is shifted periodically (so no wrap reaches the region), but the multiplier is separable:
    one 1-D inverse FFT along x of every row, keep the region's columns, one along y of those, keep its rows —
    the spectrum is computed once. About 4x cheaper per shift than a 2-D exponential and a full inverse FFT.
    """
    import scipy.fft as sfft

    y0, y1, x0, x1 = region
    ox, oy = origin
    rows, cols = slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox)
    spec = sfft.fft2(recon)
    ky = np.fft.fftfreq(recon.shape[0])
    kx = np.fft.fftfreq(recon.shape[1])

    def shifted(d) -> np.ndarray:
        part = sfft.ifft(spec * np.exp(-2j * np.pi * kx * d[1]), axis=1)[:, cols]
        return sfft.ifft(part * np.exp(-2j * np.pi * ky * d[0])[:, None], axis=0)[rows]

    return shifted


def refine_shift(ref: np.ndarray, recon: np.ndarray, origin: tuple[int, int], region: tuple[int, int, int, int],
                 start: tuple[float, float], mask: np.ndarray | None = None) -> tuple[float, float]:
    """Polish a registration by minimising the residual left after offset/ramp/scale removal.

    Phase correlation of cropped, non-periodic, smooth images is biased by a few tenths of a pixel (the crop
    edges correlate at zero shift). Here the whole recon grid is Fourier-shifted and only the region compared,
    so there is no edge; the search stays within ±1.5 px of ``start``. What does not change between the
    ~100 evaluations (the recon's spectrum, the plane-fit design) is computed once.
    """
    from scipy.optimize import minimize

    ref = np.asarray(ref, dtype=np.complex128)
    shifted = _crop_shifter(np.asarray(recon, dtype=np.complex128), origin, region)
    fitter = _PlaneFitter.build(ref.shape, mask)
    m = np.ones(ref.shape, bool) if mask is None else np.asarray(mask, bool)
    refm = ref[m]

    def residual(d):
        r = fitter.remove_ramp(shifted(d), ref)[m]
        # sums rather than np.vdot: BLAS threads on arrays this small cost more than they save on shared cores
        s = float(np.sum(np.conj(r) * refm).real / max(float(np.sum(np.abs(r) ** 2)), 1e-300))
        return float(np.mean(np.abs(refm - s * r) ** 2))

    x0 = np.asarray(start, dtype=np.float64)
    res = minimize(residual, x0, method="Nelder-Mead",
                   options={"xatol": 1e-3, "fatol": 1e-14, "initial_simplex": x0 + [[0, 0], [0.3, 0], [0, 0.3]]})
    d = res.x if res.fun < residual(x0) and np.all(np.abs(res.x - x0) <= 1.5) else x0
    return float(d[0]), float(d[1])


# ------------------------------------------------------------------------------------- ambiguity removal
def _as_complex(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.complex128) if np.iscomplexobj(a) else np.exp(1j * a.astype(np.float64))


@dataclass(frozen=True)
class _PlaneFitter:
    """Least-squares phase plane ``c + gy·y + gx·x`` on one grid and mask (see ``fit_phase_plane``).

    Built once per grid, so ``refine_shift`` can fit the same region ~100 times: the residual plane is solved
    from the 3×3 normal equations in coordinates centred on the mask (well conditioned: the constant is
    orthogonal to them), with numpy reductions rather than LAPACK/BLAS, whose threads cost more than they save on
    arrays this small when the cores are shared. Planes are applied as outer products of 1-D exponentials.
    """
    shape: tuple[int, int]
    mask: np.ndarray | None  # None: every pixel
    basis: tuple[np.ndarray, np.ndarray, np.ndarray]  # mask, mask·(y - ȳ), mask·(x - x̄) as float (H, W)
    centre: tuple[float, float]  # (ȳ, x̄) over the mask
    gram_inv: np.ndarray  # (3, 3) inverse of the normal matrix of the centred basis

    @classmethod
    def build(cls, shape: tuple[int, int], mask: np.ndarray | None = None) -> "_PlaneFitter":
        m = None if mask is None or np.all(mask) else np.asarray(mask, bool)
        yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
        w = np.ones(shape) if m is None else m.astype(np.float64)
        n = max(float(w.sum()), 1.0)
        ybar, xbar = float((w * yy).sum()) / n, float((w * xx).sum()) / n
        basis = (w, w * (yy - ybar), w * (xx - xbar))
        gram = np.array([[float((u * v).sum()) for v in basis] for u in basis])
        gram_inv = np.linalg.pinv(gram)  # pinv: a one-row or one-column grid has no gradient along it
        return cls(tuple(shape), m, basis, (ybar, xbar), gram_inv)

    def _ramp(self, c: float, gy: float, gx: float) -> np.ndarray:
        """``exp(i·(c + gy·y + gx·x))`` on the grid, separably."""
        ey = np.exp(1j * (c + gy * np.arange(self.shape[0])))
        return ey[:, None] * np.exp(1j * gx * np.arange(self.shape[1]))[None, :]

    def coefficients(self, z: np.ndarray) -> tuple[float, float, float]:
        """(c, gy, gx) of the plane fitted to the phase of ``z``, without unwrapping (see ``fit_phase_plane``)."""
        z = np.asarray(z, dtype=np.complex128)
        zm = z if self.mask is None else np.where(self.mask, z, 0)
        gy = float(np.angle(np.sum(zm[1:] * np.conj(zm[:-1])))) if z.shape[0] > 1 else 0.0
        gx = float(np.angle(np.sum(zm[:, 1:] * np.conj(zm[:, :-1])))) if z.shape[1] > 1 else 0.0
        back = np.conj(self._ramp(0.0, gy, gx))
        c = float(np.angle(np.sum(zm * back)))
        resid = np.angle(z * back * np.exp(-1j * c))
        if self.mask is not None:
            resid = np.where(self.mask, resid, 0.0)  # whatever lies outside the mask (even NaN) is not fitted
        a, by, bx = self.gram_inv @ np.array([float((resid * u).sum()) for u in self.basis])
        ybar, xbar = self.centre
        return c + float(a - by * ybar - bx * xbar), gy + float(by), gx + float(bx)

    def plane(self, z: np.ndarray) -> np.ndarray:
        c, gy, gx = self.coefficients(z)
        yy, xx = np.mgrid[: self.shape[0], : self.shape[1]].astype(np.float64)
        return c + gy * yy + gx * xx

    def remove_ramp(self, x: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Complex ``x`` with the phase plane of ``ref·conj(x)`` removed (see ``remove_phase_ramp``)."""
        return x * self._ramp(*self.coefficients(ref * np.conj(x)))


def fit_phase_plane(z: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Least-squares plane c + gy·y + gx·x to the phase of ``z``, fitted without unwrapping.

    A first guess of the gradient comes from the phase of neighbour products (immune to wrapping), the offset
    from the phase of the de-ramped sum; the remaining small, unwrapped residual is fitted by least squares.
    """
    z = np.asarray(z)
    return _PlaneFitter.build(z.shape, mask).plane(z)


def remove_phase_ramp(phase_or_complex: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Remove the global phase offset and linear phase ramp of ``x`` relative to ``ref``.

    Fitted on the product ``ref·conj(x)`` (so the fit never sees a wrapped phase). A real input is a phase
    and a phase comes back (wrapped to (-π, π]); a complex input comes back complex.
    """
    x = np.asarray(phase_or_complex)
    zx, zr = _as_complex(x), _as_complex(ref)
    corrected = _PlaneFitter.build(zx.shape, mask).remove_ramp(zx, zr)
    return corrected if np.iscomplexobj(x) else np.angle(corrected)


def scale_amplitude(amp: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """``amp`` times the least-squares factor s = Σ amp·ref / Σ amp² that best matches ``ref``; returns (scaled, s)."""
    a, r = np.asarray(amp, np.float64), np.asarray(ref, np.float64)
    m = np.ones(a.shape, bool) if mask is None else np.asarray(mask, bool)
    denom = float(np.sum(a[m] ** 2))
    s = float(np.sum(a[m] * r[m]) / denom) if denom > 0 else 1.0
    return a * s, s


# ------------------------------------------------------------------------------------------- pixel metrics
def mae(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference."""
    return float(np.mean(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB with peak 1 (``inf`` when identical)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def psnr_255(a: np.ndarray, b: np.ndarray) -> float:
    """The predecessor papers' convention (peak R = 255 on [0, 1] data): ``psnr + 48.13 dB``. Label it so."""
    return psnr(a, b) + PSNR_255_OFFSET_DB


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, mask: np.ndarray | None = None) -> float:
    """Structural similarity (scikit-image, default 7×7 window), with an explicit data range; with ``mask`` the
    SSIM map is averaged over the masked pixels only."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    win = min(7, *a.shape)
    win -= 1 - win % 2  # odd
    if mask is None:
        return float(structural_similarity(a, b, data_range=data_range, win_size=win))
    _, smap = structural_similarity(a, b, data_range=data_range, win_size=win, full=True)
    return float(smap[mask].mean())


def phase_to_unit(phase: np.ndarray) -> np.ndarray:
    """Map a phase in radians to [0, 1] as (φ + π) / (2π), the convention for phase PSNR and SSIM."""
    return (np.asarray(phase, np.float64) + np.pi) / (2 * np.pi)


# --------------------------------------------------------------------------------------------------- FRC
def _square_crop(a: np.ndarray, side: int) -> np.ndarray:
    y0, x0 = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
    return a[y0:y0 + side, x0:x0 + side]


def _radial_hann(side: int) -> np.ndarray:
    """``skimage.filters.window("hann", (side, side))``: the symmetric 1-D Hann window of length ``side`` sampled,
    by linear interpolation, at each pixel's distance from the centre (rounded to float32, as skimage passes it to
    its warp; 0 beyond the window's end).

    Written out because skimage's ``window`` imports scipy.signal (and with it scipy.stats) on first use, which
    took longer than the rest of ``evaluate``; tests/test_metrics.py checks it equals skimage's to round-off.
    """
    n = np.arange(side)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / (side - 1)) if side > 1 else np.ones(1)
    g = n - (side / 2 - 0.5)
    at = (np.sqrt(g[:, None] ** 2 + g[None, :] ** 2) + (side / 2 - 0.5)).astype(np.float32)  # skimage's coordinates
    return np.interp(at.astype(np.float64), n, hann, left=0.0, right=0.0)


def frc(a: np.ndarray, b: np.ndarray, window: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two images: (rings, curve), rings 0 … S/2 - 1 on the centred S×S square.

    Each image is mean-removed and (by default) Hann-windowed so that the crop edges add no spurious
    high-frequency correlation. Ring r holds spatial frequency r / S cycles per pixel.
    """
    a, b = np.asarray(a), np.asarray(b)
    side = min(a.shape[-2:])
    a, b = _square_crop(a, side), _square_crop(b, side)
    a, b = a - a.mean(), b - b.mean()
    if window:
        hann = _radial_hann(side)
        a, b = a * hann, b * hann
    A, B = np.fft.fftshift(np.fft.fft2(a)), np.fft.fftshift(np.fft.fft2(b))
    y, x = np.indices((side, side)) - side // 2
    ring = np.rint(np.hypot(y, x)).astype(int).ravel()
    n = side // 2
    keep = ring < n
    ring = ring[keep]
    cross = np.bincount(ring, np.real(A * np.conj(B)).ravel()[keep], n)
    pa = np.bincount(ring, (np.abs(A) ** 2).ravel()[keep], n)
    pb = np.bincount(ring, (np.abs(B) ** 2).ravel()[keep], n)
    denom = np.sqrt(pa * pb)
    curve = np.where(denom > 0, cross / np.where(denom > 0, denom, 1.0), 1.0)
    return np.arange(n), curve


def frc_thresholds(curve: np.ndarray, size: int | None = None) -> dict:
    """FRC50 and FRC 1/7: the first ring (from ring 1) where the curve drops below the threshold.

    Each as ring index and as resolution in pixels (``size / ring``; ``size`` defaults to 2·len(curve), the
    square side that ``frc`` used). ``None`` when the curve never drops below it up to Nyquist.
    """
    curve = np.asarray(curve, np.float64)
    size = 2 * len(curve) if size is None else int(size)
    out = {}
    for name, thr in (("frc50", FRC_HALF), ("frc7", FRC_SEVENTH)):
        below = np.nonzero(curve[1:] < thr)[0]
        ring = int(below[0]) + 1 if len(below) else None
        out[f"{name}_ring"] = ring
        out[f"{name}_px"] = float(size / ring) if ring else None
    return out


# ---------------------------------------------------------------------------------------------- evaluate
def frc_crossing(curve: np.ndarray, threshold: float = FRC_HALF) -> float | None:
    """The ring (fractional, linear between the two rings around it) where the curve first drops below
    ``threshold``, from ring 1; None when it never does up to Nyquist."""
    curve = np.asarray(curve, np.float64)
    below = np.nonzero(curve[1:] < threshold)[0]
    if not len(below):
        return None
    k = int(below[0]) + 1
    c0, c1 = curve[k - 1], curve[k]
    return float(k - 1 + (c0 - threshold) / (c0 - c1)) if c0 != c1 else float(k)


def complex_metrics(r: np.ndarray, t: np.ndarray, lit: np.ndarray | None = None) -> dict:
    """NRMSE and FRC of the complex image ``r`` (already registered, offset and ramp removed) against ``t``, after
    the complex least-squares factor s = <r, t>/<r, r> (one amplitude scale and one global phase); with ``lit``,
    over the lit pixels (the FRC with the unlit ones levelled)."""
    m = np.ones(r.shape, bool) if lit is None else lit
    denom = complex(np.vdot(r[m], r[m]))
    s = complex(np.vdot(r[m], t[m])) / denom if denom else 1.0
    rs = s * r
    _, curve = frc(rs, t) if lit is None else frc(*level_unlit(rs, t, lit))
    out = {"nrmse": float(np.linalg.norm((rs - t)[m]) / max(float(np.linalg.norm(t[m])), 1e-300)),
           "frc50_crossing": frc_crossing(curve)}
    out.update(frc_thresholds(curve, size=min(r.shape)))
    return out


def _crop_recon(recon: np.ndarray, origin: tuple[int, int], region: tuple[int, int, int, int]) -> np.ndarray:
    y0, y1, x0, x1 = region
    ox, oy = origin
    return recon[y0 - oy:y1 - oy, x0 - ox:x1 - ox]


def _image_metrics(rec: np.ndarray, truth: np.ndarray, mae_value: float, lit: np.ndarray | None = None) -> dict:
    """PSNR and SSIM over the ``lit`` pixels (the SSIM map averaged there), FRC with unlit pixels levelled."""
    if lit is None:
        _, curve = frc(rec, truth)
        out = {"mae": mae_value, "psnr": psnr(rec, truth), "psnr_255": psnr_255(rec, truth), "ssim": ssim(rec, truth)}
    else:
        _, curve = frc(*level_unlit(rec, truth, lit))
        p = psnr(rec[lit], truth[lit])
        out = {"mae": mae_value, "psnr": p, "psnr_255": p + PSNR_255_OFFSET_DB, "ssim": ssim(rec, truth, mask=lit)}
    out.update(frc_thresholds(curve, size=min(rec.shape)))
    return out


def level_unlit(a: np.ndarray, b: np.ndarray, lit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images with their unlit pixels set to their own lit mean: nothing is compared there (after the FRC's
    mean removal they are 0 in both), and no edge appears at the boundary of the lit area."""
    return np.where(lit, a, a[lit].mean()), np.where(lit, b, b[lit].mean())


def illuminated(positions: np.ndarray, probe: np.ndarray, shape: tuple[int, int], origin: tuple[int, int] = (0, 0),
                fraction: float = LIT_FRACTION) -> np.ndarray:
    """Pixels of a grid (``shape``, pixel (0, 0) at object pixel ``origin``) whose summed probe intensity over the
    scan reaches ``fraction`` of its maximum: what the measurement saw. Patches placed at whole pixels (a
    one-pixel difference at the boundary of a 1 % level does not matter)."""
    N = probe.shape[-1]
    p2 = np.abs(np.asarray(probe)) ** 2
    pad = N
    acc = np.zeros((shape[0] + 2 * pad, shape[1] + 2 * pad))
    for x, y in np.round(np.asarray(positions, np.float64) - N // 2 - np.asarray(origin)).astype(int).tolist():
        acc[y + pad:y + pad + N, x + pad:x + pad + N] += p2
    acc = acc[pad:pad + shape[0], pad:pad + shape[1]]
    return acc >= fraction * float(acc.max()) if acc.max() > 0 else np.ones(shape, bool)


def evaluate(recon_object: np.ndarray, recon_origin: tuple[float, float], truth_object: np.ndarray,
             positions: np.ndarray, N: int, probe: np.ndarray | None = None) -> dict:
    """All metrics for amplitude and phase after removing the ambiguities; a JSON-able dict with conventions.

    ``recon_origin`` (x, y) is the recon grid's top-left in the truth object's pixel frame (rounded to whole
    pixels; the sub-pixel part is left to registration). With ``probe``, only the pixels of the scanned region the
    probe lit (``illuminated``) are compared: a pixel no pattern saw is not a measurement of any method. Raises
    ValueError when the grids do not overlap the scanned region.
    """
    rec = np.asarray(recon_object).astype(np.complex128)
    truth = np.asarray(truth_object).astype(np.complex128)
    ox, oy = (int(round(float(v))) for v in recon_origin)
    y0, y1, x0, x1 = scanned_region(positions, N, shape=truth.shape)
    y0, x0 = max(y0, oy), max(x0, ox)
    y1, x1 = min(y1, oy + rec.shape[0]), min(x1, ox + rec.shape[1])
    if y1 - y0 < 2 or x1 - x0 < 2:
        raise ValueError("the reconstruction does not cover the scanned region of the truth object")
    region = (y0, y1, x0, x1)
    t = truth[y0:y1, x0:x1]
    lit = None
    if probe is not None:
        lit = illuminated(positions, probe, truth.shape)[y0:y1, x0:x1]
        lit = None if lit.all() else lit
    coarse = remove_phase_ramp(_crop_recon(rec, (ox, oy), region), t, lit)  # a ramp would bias the correlation
    dy, dx = register_shift(t, coarse if lit is None else np.where(lit, coarse, 0), bound=MAX_SHIFT_FRACTION * N)
    if np.any(coarse != t):  # nothing to polish for an identical copy
        dy, dx = refine_shift(t, rec, (ox, oy), region, (dy, dx), lit)
    if dy or dx:  # shift the whole grid, so the periodic wrap stays outside the region
        rec = apply_shift(rec, dy, dx)
    r = _crop_recon(rec, (ox, oy), region)

    m = np.ones(r.shape, bool) if lit is None else lit
    amp_r, s = scale_amplitude(np.abs(r), np.abs(t), lit)
    amp_t = np.abs(t)
    r_aligned = remove_phase_ramp(r, t, lit)
    phase_t = np.angle(t)
    dphi = np.angle(r_aligned * np.conj(t))  # wrapped difference
    phase_r = phase_t + dphi  # recon phase on the branch nearest the truth
    return {
        "amplitude": {**_image_metrics(amp_r, amp_t, mae(amp_r[m], amp_t[m]), lit), "scale": s},
        "phase": _image_metrics(phase_to_unit(phase_r), phase_to_unit(phase_t), float(np.mean(np.abs(dphi[m]))),
                                lit),
        "complex": complex_metrics(r_aligned, t, lit),
        "lit_fraction": float(m.mean()),
        "registration_shift_px": [dy, dx],
        "region": [int(v) for v in region],
        "conventions": dict(CONVENTIONS),
    }
