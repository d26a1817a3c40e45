"""Analytic tests of the numpy physics oracle. docs/physics.md points at each test by name."""
import numpy as np
import pytest

from engine import physics as ph


def rand_complex(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def smooth_object(rng, H, W, cutoff=0.15):
    """A band-limited periodic object, so Fourier interpolation is exact."""
    spec = np.fft.fft2(rand_complex(rng, (H, W)))
    ky, kx = np.meshgrid(np.fft.fftfreq(H), np.fft.fftfreq(W), indexing="ij")
    spec[np.hypot(ky, kx) > cutoff] = 0
    return np.fft.ifft2(spec).astype(np.complex64)


def test_bright_pixel_lands_at_patch_centre():
    obj = np.zeros((80, 90), np.complex64)
    obj[37, 21] = 1
    patch = ph.extract_patches(obj, np.array([[21.0, 37.0]]), 16)[0]
    assert np.argwhere(np.abs(patch) > 0.5).tolist() == [[8, 8]]


def test_bright_pixel_offset_follows_x_y_convention():
    """Position (x, y): moving x moves the pixel along the patch's second axis."""
    obj = np.zeros((80, 90), np.complex64)
    obj[37, 21] = 1
    patch = ph.extract_patches(obj, np.array([[19.0, 36.0]]), 16)[0]
    assert np.argwhere(np.abs(patch) > 0.5).tolist() == [[8 + 1, 8 + 2]]


def test_fourier_shift_moves_content_by_plus_d():
    a = np.zeros((32, 32), np.complex64)
    a[10, 12] = 1
    out = ph.fourier_shift(a, 3, -2)
    assert np.argwhere(np.abs(out) > 0.5).tolist() == [[13, 10]]


def test_fourier_shift_half_pixel_is_band_limited():
    """Half a pixel there and back is the identity for a band-limited signal."""
    rng = np.random.default_rng(0)
    a = smooth_object(rng, 48, 48)
    back = ph.fourier_shift(ph.fourier_shift(a, 0.5, 0.25), -0.5, -0.25)
    assert np.abs(back - a).max() < 1e-5


def test_subpixel_extraction_matches_shifted_object():
    rng = np.random.default_rng(1)
    obj = smooth_object(rng, 96, 96)
    pos = np.array([[40.3, 50.7]])
    shifted = ph.fourier_shift(obj, -0.7, -0.3)  # content at (50.7, 40.3) moves to (50, 40)
    expect = shifted[50 - 8:50 + 8, 40 - 8:40 + 8]
    got = ph.extract_patches(obj, pos, 16)[0]
    assert np.abs(got - expect).max() < 1e-5


def test_integer_extraction_is_exact_slice():
    rng = np.random.default_rng(2)
    obj = rand_complex(rng, (60, 70))
    got = ph.extract_patches(obj, np.array([[30.0, 25.0]]), 16)[0]
    assert np.array_equal(got, obj[25 - 8:25 + 8, 30 - 8:30 + 8])


def test_far_field_preserves_energy():
    rng = np.random.default_rng(3)
    psi = rand_complex(rng, (5, 32, 32))
    F = ph.far_field(psi)
    np.testing.assert_allclose((np.abs(F) ** 2).sum((1, 2)), (np.abs(psi) ** 2).sum((1, 2)), rtol=1e-5)


def test_far_field_zero_frequency_at_centre():
    psi = np.ones((1, 16, 16), np.complex64)
    I = np.abs(ph.far_field(psi)[0]) ** 2
    assert np.unravel_index(np.argmax(I), I.shape) == (8, 8)
    assert I[8, 8] == pytest.approx(256.0, rel=1e-6)


def test_forward_intensity_scales_with_photon_scale_squared():
    rng = np.random.default_rng(4)
    probe, obj = rand_complex(rng, (16, 16)), rand_complex(rng, (2, 16, 16))
    np.testing.assert_allclose(ph.forward_intensity(probe, obj, 3.0), 9 * ph.forward_intensity(probe, obj), rtol=1e-5)


def test_poisson_deviance_zero_at_perfect_fit_and_positive_elsewhere():
    n = np.array([0.0, 1.0, 10.0, 1e6])
    assert ph.poisson_deviance(n, n) == pytest.approx(0.0, abs=1e-5)
    assert ph.poisson_deviance(n * 1.1 + 0.1, n) > 0


def test_poisson_deviance_gradient_is_one_minus_n_over_lambda():
    lam, n, h = np.array([4.0]), np.array([3.0]), 1e-6
    num = (ph.poisson_deviance(lam + h, n) - ph.poisson_deviance(lam - h, n)) / (2 * h)
    assert num == pytest.approx(1 - 3 / 4, rel=1e-5)


def test_amplitude_mae():
    assert ph.amplitude_mae(np.array([4.0, 9.0]), np.array([1.0, 9.0])) == pytest.approx(0.5)


def test_stitch_exact_patches_returns_object_in_scanned_region():
    rng = np.random.default_rng(5)
    N = 16
    obj = rand_complex(rng, (80, 96))
    xs, ys = np.meshgrid(np.arange(12, 84, 4), np.arange(12, 68, 4))
    pos = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)
    patches = ph.extract_patches(obj, pos, N)
    probe = np.exp(-((np.arange(N) - N // 2)[:, None] ** 2 + (np.arange(N) - N // 2)[None, :] ** 2) / 20.0)
    rec, den = ph.stitch(patches, pos, ph.stitch_weight(probe, N // 2), obj.shape)
    region = (slice(12, 68), slice(12, 84))
    assert np.abs(rec[region] - obj[region]).max() < 1e-5
    assert np.all(den[region] > 0)


def test_stitch_subpixel_of_smooth_object():
    """Sub-pixel placement goes through the Fourier shift: accurate to ~1e-3 on a smooth object."""
    rng = np.random.default_rng(6)
    N = 32
    obj = smooth_object(rng, 96, 96, cutoff=0.1)
    grid = np.arange(24, 72, 3.0)
    xs, ys = np.meshgrid(grid, grid)
    pos = np.stack([xs.ravel(), ys.ravel()], 1) + rng.uniform(-0.5, 0.5, (xs.size, 2))
    patches = ph.extract_patches(obj, pos, N)
    probe = np.exp(-((np.arange(N) - N // 2)[:, None] ** 2 + (np.arange(N) - N // 2)[None, :] ** 2) / 30.0)
    rec, _ = ph.stitch(patches, pos, ph.stitch_weight(probe, N // 2), obj.shape)
    region = (slice(26, 70), slice(26, 70))
    err = np.abs(rec[region] - obj[region]).max() / np.abs(obj[region]).max()
    assert err < 5e-3


def test_stitch_leaves_uncovered_pixels_zero():
    N = 8
    patches = np.ones((1, N, N), np.complex64)
    rec, den = ph.stitch(patches, np.array([[10.0, 10.0]]), ph.stitch_weight(np.ones((N, N)), N, "uniform"), (30, 30))
    assert rec[0, 0] == 0 and den[0, 0] == 0
    assert rec[10, 10] == 1


def test_merge_reextract_of_consistent_patches_is_identity_on_the_predicted_region():
    """Patches cut from one object at the members' offsets merge and re-extract to themselves in the fully weighted
    core of the predicted region (the overlap constraint changes nothing when the patches already agree). The
    residual (< 1 %) is the band-limited shift of a finite, tapered window."""
    rng = np.random.default_rng(7)
    N = 64
    obj = smooth_object(rng, 160, 160, cutoff=0.08)
    offsets = np.array([[-3.3, -2.7], [2.5, -2.0], [-2.5, 3.1], [3.3, 1.6]], np.float32)
    patches = ph.extract_patches(obj, np.array([80.0, 80.0]) + offsets, N)
    region, cov = ph.merge_group(patches, offsets)
    back = ph.reextract_group(region, offsets, N)
    core = (slice(N // 4 + 8, 3 * N // 4 - 8),) * 2  # inside the raised-cosine taper
    for c in range(4):
        err = np.abs(back[c][core] - patches[c][core]).max()
        assert err < 1e-2 * np.abs(patches[c][core]).max()
    assert cov.max() == pytest.approx(4.0, abs=0.1)


def test_merge_window_is_smooth_and_confined_to_predicted_region():
    w = ph.merge_window(64)
    assert w.shape == (64, 64) and w.max() == 1.0
    assert np.all(w[:16] == 0) and np.all(w[:, 48:] == 0)
    assert np.abs(np.diff(w, axis=0)).max() < 0.2


def test_merge_is_coverage_normalised_not_count_plus_eps():
    """A single member merges to itself where covered and to exactly 0 where not."""
    N = 16
    patch = np.full((1, N, N), 2.0 + 1j, np.complex64)
    region, cov = ph.merge_group(patch, np.zeros((1, 2), np.float32))
    p = ph.merge_pad(N)
    centre = region[p + N // 2, p + N // 2]
    assert centre == pytest.approx(2.0 + 1j, abs=1e-6)
    assert abs(region[0, 0]) < 1e-6  # uncovered: zero, not garbage from dividing by ~0


def test_poisson_sample_mean():
    rng = np.random.default_rng(8)
    amp = ph.poisson_sample(np.full((200, 16, 16), 100.0), rng)
    assert amp.dtype == np.float32
    assert (amp**2).mean() == pytest.approx(100, rel=0.01)


def test_shift_of_a_real_array_stays_real():
    """The Nyquist bin of the ramp is real (cos πd), so a shifted real weight stays real (docs/physics.md)."""
    a = np.random.default_rng(9).random((40, 40))
    assert np.abs(ph.fourier_shift(a, 0.3, 0.7).imag).max() < 1e-12


def test_stitch_of_a_constant_object_is_constant_with_probe_weight():
    """Numerator and denominator see the same shift: a constant comes back constant wherever covered."""
    N = 32
    yy, xx = np.mgrid[:N, :N] - N // 2
    probe = np.where(yy**2 + xx**2 < 36, 1.0, 0.0).astype(np.complex64)  # hard-edged disk: worst case
    rng = np.random.default_rng(10)
    pos = rng.uniform(20, 60, (60, 2))
    patches = np.full((60, N, N), 0.7 + 0.2j, np.complex64)
    rec, den = ph.stitch(patches, pos, ph.stitch_weight(probe, N // 2), (80, 80))
    assert np.abs(rec[den > 0] - (0.7 + 0.2j)).max() < 1e-3
