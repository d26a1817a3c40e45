"""The fast stitcher against a slow, plainly written reference (double precision, one patch at a time)."""
from __future__ import annotations

import numpy as np
import pytest

from engine import physics as ph


def reference_stitch(patches, positions, weight, shape, origin=(0, 0), pad=4):
    """SPEC §2 stitching written plainly: pad each weighted patch to L×L, shift it by its fractional position
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
        # Hermitian ramp: the Nyquist bin of each axis is real, cos(π f) (SPEC's one shift, engine.physics.ramp_1d)
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
