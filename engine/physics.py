"""The physics of docs/physics.md in numpy: the oracle that both backends are tested against.

Conventions (docs/physics.md pins each with a test):
- images are ``[y, x]``; positions are ``(x, y)`` in object pixels and name the probe centre;
- the N×N patch for position p has its pixel ``(N//2, N//2)`` on p;
- every sub-pixel move is one band-limited (Fourier) shift: ``fourier_shift(a, dy, dx)[y, x] == a(y - dy, x - dx)``
  (content moves by +d), with the frequency grid of ``np.fft.fftfreq`` (Nyquist at -1/2) in every backend;
- far field ``F = fftshift(fft2(P * O)) / N``; intensity ``|F|²``; energy is preserved.
"""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view

#: Relative weight below which a stitched pixel counts as not covered (the Fourier-shifted weight rings at ~1e-4).
STITCH_MIN_WEIGHT = 1e-3
#: Merged-region pixels are normalised where the summed, shifted merge weights reach this; below, the average fades out.
COVERAGE_MIN = 0.5
#: Guards log(n/λ) in the Poisson deviance where the model predicts zero counts; same value in every backend.
LOSS_EPS = 1e-6


# --------------------------------------------------------------------------------------------------- shifts
def ramp_1d(k: np.ndarray, d, dtype=np.complex128) -> np.ndarray:
    """1-D shift multiplier ``exp(-2πi·k·d)``, real (``cos(πd)``) at the Nyquist bin of an even length.

    Splitting the Nyquist term evenly between ±1/2 keeps the shift of a real array real (Hermitian spectrum);
    with a one-sided Nyquist a shifted real weight turns complex and numerator/denominator of an average disagree.
    """
    ang = -2.0 * np.pi * k * np.asarray(d, dtype=np.float64)[..., None]
    im = np.sin(ang) * (k != -0.5)
    return (np.cos(ang) + 1j * im).astype(dtype)


def shift_ramp(shape: tuple[int, int], dy, dx, dtype=np.complex128) -> np.ndarray:
    """Fourier multiplier that moves content by (+dy, +dx); broadcast over leading dims of dy/dx.

    Built as an outer product of two 1-D ramps (separable), so the cost is O(H + W) exponentials per shift.
    """
    ry = ramp_1d(np.fft.fftfreq(shape[0]), dy, dtype)
    rx = ramp_1d(np.fft.fftfreq(shape[1]), dx, dtype)
    return ry[..., :, None] * rx[..., None, :]


def fourier_shift(a: np.ndarray, dy, dx) -> np.ndarray:
    """Band-limited periodic shift of the last two axes: ``out[y, x] = a(y - dy, x - dx)``.

    Single precision in, single precision out (complex64); double otherwise.
    """
    a = np.asarray(a)
    single = a.dtype in (np.float32, np.complex64)
    ctype = np.complex64 if single else np.complex128
    spec = sfft.fft2(a.astype(ctype, copy=False), axes=(-2, -1), workers=-1)
    spec = spec * shift_ramp(a.shape[-2:], dy, dx, ctype)  # broadcasts: one image, many shifts
    return sfft.ifft2(spec, axes=(-2, -1), workers=-1, overwrite_x=True)


# ------------------------------------------------------------------------------------------- patch geometry
def patch_origin(positions: np.ndarray, N: int) -> np.ndarray:
    """Object coordinates (x, y) of patch pixel (0, 0) for each position (may be fractional)."""
    return np.asarray(positions, dtype=np.float64) - N // 2


def extract_patches(obj: np.ndarray, positions: np.ndarray, N: int, chunk: int = 64) -> np.ndarray:
    """N×N patches of ``obj`` centred on ``positions`` (M, 2) as (x, y); complex64 (M, N, N).

    Sub-pixel sampling evaluates the band-limited (periodic) interpolant of the whole object exactly, by a
    matrix DFT restricted to the patch rows/columns — no windowing, so no ringing from a cropped window.
    Integer positions take the exact slice.
    """
    obj = np.asarray(obj)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    H, W = obj.shape
    out = np.empty((len(pos), N, N), dtype=np.complex64)
    origin = patch_origin(pos, N)
    integral = np.all(origin == np.round(origin), axis=1)
    for m in np.nonzero(integral)[0]:
        x0, y0 = int(origin[m, 0]), int(origin[m, 1])
        out[m] = obj[y0:y0 + N, x0:x0 + N]
    frac = np.nonzero(~integral)[0]
    if len(frac):
        spec = np.fft.fft2(obj.astype(np.complex128)) / (H * W)
        ky, kx = np.fft.fftfreq(H), np.fft.fftfreq(W)
        grid = np.arange(N)
        for s in range(0, len(frac), chunk):
            idx = frac[s:s + chunk]
            ys = origin[idx, 1][:, None] + grid  # (b, N) object rows sampled
            xs = origin[idx, 0][:, None] + grid
            ey = ramp_1d(ky, -ys)  # (b, N, H): exp(+2πi·k·y), real Nyquist bin like every shift
            ex = ramp_1d(kx, -xs)  # (b, N, W)
            out[idx] = (ey @ spec @ ex.transpose(0, 2, 1)).astype(np.complex64)
    return out


def pad_center(a: np.ndarray, N: int) -> np.ndarray:
    """Zero-pad the last two axes symmetrically to N×N (the network predicts the central region)."""
    n = a.shape[-1]
    p = (N - n) // 2
    width = [(0, 0)] * (a.ndim - 2) + [(p, N - n - p), (p, N - n - p)]
    return np.pad(a, width)


def center_mask(N: int, n: int) -> np.ndarray:
    """1 on the central n×n region of an N×N patch, 0 elsewhere."""
    return pad_center(np.ones((n, n), dtype=np.float32), N)


# ------------------------------------------------------------------------------------------ forward model
def exit_wave(probe: np.ndarray, obj_patches: np.ndarray, photon_scale: float = 1.0) -> np.ndarray:
    return (photon_scale * probe * obj_patches).astype(np.complex64)


def far_field(psi: np.ndarray) -> np.ndarray:
    """``fftshift(fft2(psi)) / N`` over the last two axes — energy preserving."""
    N = psi.shape[-1]
    return np.fft.fftshift(np.fft.fft2(psi, axes=(-2, -1)), axes=(-2, -1)) / N


def forward_intensity(probe: np.ndarray, obj_patches: np.ndarray, photon_scale: float = 1.0) -> np.ndarray:
    """Expected counts ``|F|²`` (float32) for object patches lit by the probe."""
    F = far_field(exit_wave(probe, obj_patches, photon_scale).astype(np.complex128))
    return (np.abs(F) ** 2).astype(np.float32)


def poisson_sample(intensity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Measured amplitude ``sqrt(counts)`` (float32) for Poisson counts of the given expectation."""
    return np.sqrt(rng.poisson(np.asarray(intensity, dtype=np.float64))).astype(np.float32)


# ----------------------------------------------------------------------------------------------- losses
def poisson_deviance(pred_counts: np.ndarray, counts: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Poisson negative log-likelihood minus its value at a perfect fit, mean over all pixels.

    ``λ - n + n·log(n / (λ + eps))``. Same optimum and gradient as the NLL; about 0.5 per pixel at the noise
    floor whatever the dose, so values are comparable across datasets. ``n·log(n/·)`` is 0 where n = 0.
    ``valid`` (N, N), True = measured: the mean runs over valid pixels only, so a masked detector pixel (a gap, a
    hot pixel) is no measurement at all, rather than a measured zero; its counts are never read.
    """
    lam = np.asarray(pred_counts, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    if valid is not None:
        n = np.where(valid, n, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(n > 0, n * np.log(n / (lam + LOSS_EPS)), 0.0)
    return masked_mean(lam - n + term, valid)


def amplitude_mae(pred_counts: np.ndarray, counts: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean absolute error of amplitudes ``|sqrt(λ) - sqrt(n)|`` (sqrt-count units), over ``valid`` pixels."""
    lam = np.asarray(pred_counts, np.float64)
    n = np.asarray(counts, np.float64)
    if valid is not None:
        lam, n = np.where(valid, lam, 1.0), np.where(valid, n, 1.0)
    return masked_mean(np.abs(np.sqrt(lam) - np.sqrt(n)), valid)


def masked_mean(term: np.ndarray, valid: np.ndarray | None) -> float:
    """Mean of ``term`` (..., N, N) over the pixels where ``valid`` (N, N) is True (all pixels when None)."""
    if valid is None:
        return float(np.mean(term))
    w = np.broadcast_to(np.asarray(valid, dtype=bool), term.shape)
    return float(np.sum(np.where(w, term, 0.0)) / np.count_nonzero(w))


# -------------------------------------------------------------------------------- group merge / re-extract
def merge_pad(N: int) -> int:
    """Margin of the merged solution region: group members may sit up to N/4 from the group centre."""
    return N // 4


def merge_window(N: int) -> np.ndarray:
    """Smooth weight of a predicted patch in the merge: 1 inside, raised-cosine to 0 at the predicted region's edge.

    A hard 0/1 mask would ring (Gibbs, ~4 % of the signal) under the band-limited sub-pixel shift; this taper keeps
    the shifted, weighted patches nearly band-limited so consistent patches merge and re-extract to themselves.
    """
    n = N // 2
    taper = n // 4
    t = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(taper) + 0.5) / taper)
    t[:taper], t[n - taper:] = ramp, ramp[::-1]
    return pad_center(np.outer(t, t).astype(np.float32), N)


def merge_group(patches: np.ndarray, offsets: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Merge a group's patches into one solution region by coverage-weighted averaging.

    patches (..., C, N, N) complex; offsets (..., C, 2) as (dx, dy) of each member from the group centre;
    mask (N, N) is each patch's weight (default ``merge_window(N)``). Returns (region (..., R, R), coverage
    (..., R, R)), R = N + 2·merge_pad(N): ``region = Σ shift(w·O) / max(Σ shift(w), COVERAGE_MIN)`` — normalised
    where coverage ≥ COVERAGE_MIN; below it the average fades continuously to 0 (never ``count + eps``, which
    biases every pixel, and no hard cut, which would ring under the shift back).
    """
    N = patches.shape[-1]
    w = merge_window(N) if mask is None else mask
    p = merge_pad(N)
    width = [(0, 0)] * (patches.ndim - 2) + [(p, p), (p, p)]
    dx, dy = offsets[..., 0], offsets[..., 1]
    num = fourier_shift(np.pad(patches * w, width), dy, dx).sum(axis=-3)
    cov = fourier_shift(np.pad(np.broadcast_to(w, patches.shape).astype(np.complex64), width), dy, dx).real.sum(axis=-3)
    region = num / np.maximum(cov, COVERAGE_MIN)
    return region.astype(np.complex64), cov.astype(np.float32)


def reextract_group(region: np.ndarray, offsets: np.ndarray, N: int) -> np.ndarray:
    """The N×N patch of each member, taken back out of the merged region (inverse of the merge shift)."""
    return reextract_with(fourier_shift, region, offsets, N).astype(np.complex64)


def reextract_with(shift, region, offsets, N: int, *grid):
    """``reextract_group`` around any backend's ``shift(a, dy, dx, *grid)`` (its fourier_shift; ``grid``: its
    frequency grids ky, kx, if given): the same index maths in every backend — each member shifted back by its
    offset, then the N×N window at the margin ``merge_pad(N)`` cut out. region (..., R, R), offsets (..., C, 2) as
    (dx, dy) → (..., C, N, N)."""
    p = merge_pad(N)
    shifted = shift(region[..., None, :, :], -offsets[..., 1], -offsets[..., 0], *grid)
    return shifted[..., p:p + N, p:p + N]


# -------------------------------------------------------------------------------------------- stitching
def stitch_weight(probe: np.ndarray, predicted: int, kind: str = "probe") -> np.ndarray:
    """Per-patch weight: probe intensity (normalised to peak 1) on the predicted central region, or uniform."""
    N = probe.shape[-1]
    mask = center_mask(N, predicted)
    if kind == "uniform":
        return mask
    w = np.abs(probe) ** 2
    return (mask * w / max(float(w.max()), 1e-30)).astype(np.float32)


def _impulse_shift(f: np.ndarray, L: int) -> np.ndarray:
    """(b, L) float64: a unit impulse at window index 0, shifted by ``f`` (b,) periodically over L.

    The same band-limited shift as ``fourier_shift`` (``ramp_1d`` on the fftfreq grid, real Nyquist bin), so it is
    real; ``f == 0`` gives the exact impulse (integer positions stay exact slices).
    """
    g = np.fft.ifft(ramp_1d(np.fft.fftfreq(L), f), axis=-1).real
    still = np.asarray(f) == 0
    g[still] = 0.0
    g[still, 0] = 1.0
    return g


def _toeplitz_generators(f: np.ndarray, offset: int, n: int, L: int) -> np.ndarray:
    """(b, L + n - 1) float32 ``e`` with ``e[u] = g[(u - offset - n + 1) mod L]`` (g from ``_impulse_shift``).

    The shift matrix of a block of n samples placed at ``offset`` in the L-window is Toeplitz:
    ``K[t, j] = g[(t - offset - j) mod L] = e[t + n - 1 - j]``; ``_shift_matrices`` cuts K out of ``e``.
    """
    u = (np.arange(L + n - 1) - offset - (n - 1)) % L
    return np.take(_impulse_shift(f, L), u, axis=-1).astype(np.float32, order="C")  # C order: fast slicing later


def _shift_matrices(e: np.ndarray, n: int, L: int, transpose: bool = False) -> np.ndarray:
    """Contiguous (b, L, n) shift matrices K (or (b, n, L) Kᵀ) from their generators ``e`` (b, L + n - 1)."""
    if transpose:
        return sliding_window_view(e, L, axis=-1)[:, ::-1, :].copy()
    return sliding_window_view(e, n, axis=-1)[:, :, ::-1].copy()


def _stitch_windows(block: np.ndarray, wblock: np.ndarray, ey: np.ndarray, ex: np.ndarray, L: int) -> np.ndarray:
    """(b, 3, L, L) float32: real and imaginary part of each weighted patch, and the weight, each zero-padded to
    the L×L window and shifted by its fractional position, periodic over the window.

    ``block`` (b, ny, nx) is the patches on the weight's support ``wblock`` (ny, nx). A periodic band-limited shift
    is separable and the shifted block is ``Ky · block · Kxᵀ`` with real (L × n) matrices (``_shift_matrices``):
    two small batched matrix products: more multiply-adds than the padded 2-D FFTs they replace, but run at BLAS
    speed (docs/performance.md); the same numbers to float32 round-off (tests/test_stitch.py).
    """
    b, ny, nx = block.shape
    z = np.empty((b, 3, ny, nx), np.float32)
    np.multiply(block.real, wblock, out=z[:, 0], casting="unsafe")
    np.multiply(block.imag, wblock, out=z[:, 1], casting="unsafe")
    z[:, 2] = wblock
    rows = z.reshape(b, 3 * ny, nx) @ _shift_matrices(ex, nx, L, transpose=True)  # (b, 3·ny, L): x shifted
    return _shift_matrices(ey, ny, L)[:, None] @ rows.reshape(b, 3, ny, L)  # (b, 3, L, L): y shifted


def stitch(patches: np.ndarray, positions: np.ndarray, weight: np.ndarray, shape: tuple[int, int],
           origin: tuple[int, int] = (0, 0), pad: int = 4, chunk: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Place weighted patches on the object grid and normalise by the summed weight.

    ``shape`` (H, W) of the output grid whose pixel (0, 0) is object pixel ``origin`` = (x0, y0). Integer parts
    of the positions are a slice; fractional parts a Fourier shift of the zero-padded, weighted patch (periodic
    over its (N + 2·pad)² window; see ``_stitch_windows``). Returns (object complex64, summed weight float32);
    the object is 0 where the weight is below STITCH_MIN_WEIGHT·max. ``chunk`` patches are shifted per batched
    product (small enough that the batch stays in cache).
    """
    patches = np.asarray(patches)
    M, N, _ = patches.shape
    H, W = shape
    L = N + 2 * pad
    acc = np.zeros((3, H + 2 * L, W + 2 * L), dtype=np.float32)  # real, imag, weight; margins absorb edge patches
    org = patch_origin(positions, N) - np.asarray(origin, dtype=np.float64)  # (x, y) in the output grid
    base = np.floor(org).astype(np.int64)
    frac = org - base
    w = np.asarray(weight, dtype=np.float32)
    rows, cols = np.nonzero(w.any(axis=1))[0], np.nonzero(w.any(axis=0))[0]
    if M and len(rows):  # only the weight's support is shifted; its offset in the window is in the generators
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        ey = _toeplitz_generators(frac[:, 1], r0 + pad, r1 - r0, L)
        ex = _toeplitz_generators(frac[:, 0], c0 + pad, c1 - c0, L)
        for s in range(0, M, chunk):
            win = _stitch_windows(patches[s:s + chunk, r0:r1, c0:c1], w[r0:r1, c0:c1], ey[s:s + chunk],
                                  ex[s:s + chunk], L)
            for k, (bx, by) in enumerate(base[s:s + chunk].tolist()):
                y0, x0 = by - pad + L, bx - pad + L
                acc[:, y0:y0 + L, x0:x0 + L] += win[k]
    acc = acc[:, L:L + H, L:L + W]
    num, den = acc[0].astype(np.complex64), acc[2]
    num.imag = acc[1]
    ok = den > STITCH_MIN_WEIGHT * max(float(den.max()), 1e-30)
    obj = np.where(ok, num / np.where(ok, den, 1.0), 0).astype(np.complex64)
    return obj, np.where(ok, den, 0).astype(np.float32)
