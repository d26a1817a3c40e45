"""The fast stitcher against a slow, plainly written reference (double precision, one patch at a time)."""
from __future__ import annotations

import numpy as np
import pytest

from engine import physics as ph


def reference_stitch(patches, positions, weight, shape, origin=(0, 0), pad=4):
    """docs/physics.md stitching written plainly: pad each weighted patch to L×L, shift it by its fractional position
    with a 2-D Fourier shift periodic over the window (fftfreq grid, real Nyquist bin), add it at the integer
    position."""
    M, N, _ = patches.shape
    H, W = shape
    L = N + 2 * pad
    num = np.zeros((H + 2 * L, W + 2 * L), complex)
    den = np.zeros((H + 2 * L, W + 2 * L))
    k = np.fft.fftfreq(L)
    w = np.pad(weight.astype(np.float64), pad)
    for m in range(M):
        ox = positions[m, 0] - N // 2 - origin[0]
        oy = positions[m, 1] - N // 2 - origin[1]
        bx, by = int(np.floor(ox)), int(np.floor(oy))
        fx, fy = ox - bx, oy - by
        # Hermitian ramp: the Nyquist bin of each axis is real, cos(π f) (docs/physics.md, engine.physics.ramp_1d)
        ry = np.where(k == -0.5, np.cos(np.pi * fy), np.exp(-2j * np.pi * k * fy))
        rx = np.where(k == -0.5, np.cos(np.pi * fx), np.exp(-2j * np.pi * k * fx))
        ramp = ry[:, None] * rx[None, :]
        p = np.pad(patches[m].astype(complex), pad) * w
        num[by - pad + L:by - pad + 2 * L, bx - pad + L:bx - pad + 2 * L] += np.fft.ifft2(np.fft.fft2(p) * ramp)
        den[by - pad + L:by - pad + 2 * L, bx - pad + L:bx - pad + 2 * L] += np.fft.ifft2(np.fft.fft2(w) * ramp).real
    num, den = num[L:L + H, L:L + W], den[L:L + H, L:L + W]
    return num, den


CASES = [  # (N, weight kind, predicted, pad)
    (16, "probe", 8, 4),
    (32, "probe", 16, 4),
    (32, "uniform", 32, 3),
    (15, "uniform", 15, 4),  # odd window: no Nyquist bin
]


@pytest.mark.parametrize("N,kind,predicted,pad", CASES)
def test_fast_stitch_matches_plain_reference(N, kind, predicted, pad):
    rng = np.random.default_rng(N + pad)
    M, shape, origin = 40, (70, 80), (3, -2)
    patches = (rng.uniform(0.5, 1, (M, N, N)) * np.exp(1j * rng.uniform(-3, 3, (M, N, N)))).astype(np.complex64)
    yy, xx = np.mgrid[:N, :N] - N // 2
    probe = np.exp(-(yy**2 + xx**2) / (N * N / 8.0)) * np.exp(0.3j * xx)
    weight = ph.stitch_weight(probe, predicted, kind)
    pos = rng.uniform(N // 2 - 4, [80 - N // 2 + 6, 70 - N // 2 + 4], (M, 2))
    pos[:5] = np.round(pos[:5])  # integer positions take the no-shift path
    obj, den = ph.stitch(patches, pos, weight, shape, origin=origin, pad=pad, chunk=16)
    num_ref, den_ref = reference_stitch(patches, pos, weight, shape, origin=origin, pad=pad)

    scale = den_ref.max()
    assert np.abs(np.where(den > 0, den, den_ref) - den_ref).max() <= 1e-6 * scale  # measured ~2e-7
    ok_ref = den_ref > ph.STITCH_MIN_WEIGHT * scale
    near = np.abs(den_ref - ph.STITCH_MIN_WEIGHT * scale) < 1e-5 * scale  # threshold ties may go either way
    assert np.array_equal((den > 0)[~near], ok_ref[~near])
    both = (den > 0) & ok_ref
    obj_ref = num_ref[both] / den_ref[both]
    # num/den amplifies float32 rounding by max/den: compare in units of the summed weight
    err = np.abs(obj[both] - obj_ref)
    assert (err * den_ref[both] / scale).max() <= 1e-5  # measured ~2e-6
    assert err[den_ref[both] > 0.05 * scale].max() <= 1e-5  # well-covered pixels, absolute; measured ~1e-6


# ------------------------------------------------------------------ the previous fast stitcher (2-D FFT windows)
def previous_stitch(patches, positions, weight, shape, origin=(0, 0), pad=4, chunk=512):
    """The FFT-window stitcher that ``engine.physics.stitch`` replaced (kept verbatim here, not in the engine):
    each weighted patch's support is zero-padded to the L×L window, 2-D FFT, shift ramp, inverse FFT; the weight
    by one real inverse FFT; integer positions by an exact slice; a Python scatter-add per patch."""
    import scipy.fft as sfft

    def windows(p, frac, w):
        N = w.shape[-1]
        L = N + 2 * pad
        rows, cols = np.nonzero(w.any(axis=1))[0], np.nonzero(w.any(axis=0))[0]
        b = len(frac)
        fx, fy = frac[:, 0], frac[:, 1]
        if len(rows) == 0:
            return np.zeros((b, L, L), np.complex64), np.zeros((b, L, L), np.float32)
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        spec = sfft.fft(p[:, r0:r1, c0:c1] * w[r0:r1, c0:c1], n=L, axis=-1, workers=-1)
        spec = sfft.fft(spec, n=L, axis=-2, workers=-1, overwrite_x=True)
        k = np.fft.fftfreq(L)
        spec *= ph.ramp_1d(k, fy + r0 + pad, np.complex64)[:, :, None]
        spec *= ph.ramp_1d(k, fx + c0 + pad, np.complex64)[:, None, :]
        wp = sfft.ifft2(spec, workers=-1, overwrite_x=True)
        h = L // 2 + 1
        wspec = sfft.rfft2(np.pad(w, pad).astype(np.float64))
        dspec = wspec.astype(np.complex64)[None] * ph.ramp_1d(k, fy, np.complex64)[:, :, None]
        dspec *= ph.ramp_1d(k[:h], fx, np.complex64)[:, None, :]
        ww = sfft.irfft2(dspec, s=(L, L), workers=-1, overwrite_x=True).astype(np.float32, copy=False)
        return wp, ww

    patches = np.asarray(patches)
    M, N, _ = patches.shape
    H, W = shape
    L = N + 2 * pad
    num = np.zeros((H + 2 * L, W + 2 * L), dtype=np.complex64)
    den = np.zeros((H + 2 * L, W + 2 * L), dtype=np.float32)
    org = ph.patch_origin(positions, N) - np.asarray(origin, dtype=np.float64)
    base = np.floor(org).astype(np.int64)
    frac = org - base
    w = np.asarray(weight, dtype=np.float32)
    wpad = np.pad(w, pad)
    for s in range(0, M, chunk):
        sl = slice(s, s + chunk)
        moving = np.any(frac[sl] != 0, axis=1)
        wp = np.empty((len(moving), L, L), np.complex64)
        ww = np.empty((len(moving), L, L), np.float32)
        if np.any(moving):
            wp[moving], ww[moving] = windows(patches[sl][moving], frac[sl][moving], w)
        if not np.all(moving):
            wp[~moving] = np.pad(patches[sl][~moving] * w, ((0, 0), (pad, pad), (pad, pad)))
            ww[~moving] = wpad
        for k, (bx, by) in enumerate(base[sl].tolist()):
            y0, x0 = by - pad + L, bx - pad + L
            num[y0:y0 + L, x0:x0 + L] += wp[k]
            den[y0:y0 + L, x0:x0 + L] += ww[k]
    num, den = num[L:L + H, L:L + W], den[L:L + H, L:L + W]
    ok = den > ph.STITCH_MIN_WEIGHT * max(float(den.max()), 1e-30)
    obj = np.where(ok, num / np.where(ok, den, 1.0), 0).astype(np.complex64)
    return obj, np.where(ok, den, 0).astype(np.float32)


EPS32 = float(np.finfo(np.float32).eps)

PREVIOUS_CASES = [  # (N, weight kind, predicted, pad, M): inference's N 64 case, small, uniform, odd, odd N/even L
    (64, "probe", 32, 4, 300),
    (16, "probe", 8, 4, 80),
    (32, "uniform", 32, 3, 80),
    (15, "uniform", 15, 4, 80),
    (33, "probe", 16, 5, 80),
]


def _random_case(N, kind, predicted, M, seed):
    rng = np.random.default_rng(seed)
    patches = (rng.uniform(0.5, 1, (M, N, N)) * np.exp(1j * rng.uniform(-3, 3, (M, N, N)))).astype(np.complex64)
    yy, xx = np.mgrid[:N, :N] - N // 2
    probe = np.exp(-(yy**2 + xx**2) / (N * N / 8.0)) * np.exp(0.3j * xx)
    weight = ph.stitch_weight(probe, predicted, kind)
    shape = (N + 60, N + 70)
    pos = rng.uniform(N // 2 - 4, [shape[1] - N // 2 + 4, shape[0] - N // 2 + 4], (M, 2))  # some past the edges
    return patches, pos, weight, shape


@pytest.mark.parametrize("N,kind,predicted,pad,M", PREVIOUS_CASES)
def test_stitch_equals_previous_fft_algorithm_to_float32_round_off(N, kind, predicted, pad, M):
    """Both compute the same linear map in float32 (the shift by FFTs before, by small matrix products now): each
    output sums a few windows of two length-≤N float32 contractions of O(1) terms, so they differ by O(10) float32
    epsilons of the peak summed weight (measured ≤ 3 ε for the weight and ≤ 15 ε for weight × object); 16 ε and
    64 ε bound it. The object is compared as num = object · weight, since num/den amplifies round-off where the
    weight is small."""
    patches, pos, weight, shape = _random_case(N, kind, predicted, M, seed=N + pad)
    obj, den = ph.stitch(patches, pos, weight, shape, origin=(2, -3), pad=pad)
    obj_p, den_p = previous_stitch(patches, pos, weight, shape, origin=(2, -3), pad=pad)
    scale = float(den_p.max())
    near = np.abs(den_p - ph.STITCH_MIN_WEIGHT * scale) < 16 * EPS32 * scale  # threshold ties may go either way
    assert np.array_equal((den > 0)[~near], (den_p > 0)[~near])
    both = (den > 0) & (den_p > 0)
    assert np.abs(den - den_p)[both].max() <= 16 * EPS32 * scale
    assert (np.abs(obj - obj_p) * den_p)[both].max() <= 64 * EPS32 * scale
    assert np.all(obj[den == 0] == 0)


def test_integer_positions_are_exact_slices_as_before():
    """An integer position is a plain slice in both algorithms: the results are bitwise equal."""
    patches, pos, weight, shape = _random_case(16, "probe", 8, 50, seed=7)
    pos = np.round(pos)
    obj, den = ph.stitch(patches, pos, weight, shape, chunk=7)
    obj_p, den_p = previous_stitch(patches, pos, weight, shape)
    assert np.array_equal(den, den_p) and np.array_equal(obj, obj_p)


def test_stitch_result_does_not_depend_on_chunk():
    patches, pos, weight, shape = _random_case(16, "probe", 8, 50, seed=8)
    a = ph.stitch(patches, pos, weight, shape, chunk=3)
    b = ph.stitch(patches, pos, weight, shape, chunk=64)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_stitch_of_nothing_is_zero():
    """No patches, or a weight that is zero everywhere: nothing is covered (as before)."""
    patches, pos, weight, shape = _random_case(16, "probe", 8, 5, seed=9)
    for args in ((patches[:0], pos[:0], weight), (patches, pos, np.zeros_like(weight))):
        obj, den = ph.stitch(*args, shape)
        obj_p, den_p = previous_stitch(*args, shape)
        assert not obj.any() and not den.any() and not obj_p.any() and not den_p.any()
        assert obj.shape == shape and obj.dtype == np.complex64 and den.dtype == np.float32
