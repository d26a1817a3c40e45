"""Level-0 parity (docs/parity.md): every op of each backend against the float64 numpy oracle, max abs error ≤ 1e-5.

One file for both backends: the ``ops`` fixture imports ``engine.<backend>.ops`` (numpy in, numpy out) and skips
a backend whose framework is not installed. Framework-specific checks (gradients, canonical weights) stay in
tests/tf/ and tests/torch/.
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from engine import physics as P

TOL = 1e-5


@pytest.fixture(params=[pytest.param(("tensorflow", "tf"), marks=pytest.mark.tf, id="tensorflow"),
                        pytest.param(("torch", "torch"), marks=pytest.mark.torch, id="torch")])
def ops(request):
    framework, package = request.param
    pytest.importorskip(framework)
    return importlib.import_module(f"engine.{package}.ops")


def crandn(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def maxerr(a, b):
    return float(np.max(np.abs(np.asarray(a, np.complex128) - np.asarray(b, np.complex128))))


def test_single_bright_pixel_lands_where_the_shift_says(ops):
    a = np.zeros((32, 32), np.float32)
    a[10, 12] = 1.0
    out = ops.fourier_shift(a, 3.0, -5.0)  # content moves by (+dy, +dx)
    assert np.unravel_index(np.argmax(np.abs(out)), out.shape) == (13, 7)
    assert abs(out[13, 7] - 1.0) < TOL
    half = ops.fourier_shift(a, 0.5, 0.0).real  # half a pixel down: equal weight on rows 10 and 11
    assert abs(half[10, 12] - half[11, 12]) < TOL
    assert maxerr(half, P.fourier_shift(a.astype(np.float64), 0.5, 0.0).real) < TOL


def test_fourier_shift_matches_oracle_for_batched_shifts(ops):
    rng = np.random.default_rng(1)
    a = crandn(rng, (3, 4, 32, 48))
    dy, dx = rng.uniform(-8, 8, (3, 4)), rng.uniform(-8, 8, (3, 4))
    assert maxerr(ops.fourier_shift(a, dy, dx), P.fourier_shift(a, dy, dx)) < TOL


@pytest.mark.parametrize("N", [32, 64])
def test_merge_and_reextract_match_oracle(ops, N):
    rng = np.random.default_rng(2)
    patches = crandn(rng, (3, 4, N, N))
    offsets = rng.uniform(-N / 4, N / 4, (3, 4, 2)).astype(np.float32)
    region, cov = ops.merge_group(patches, offsets)
    region0, cov0 = P.merge_group(patches, offsets)
    assert region.shape == region0.shape == (3, N + 2 * P.merge_pad(N), N + 2 * P.merge_pad(N))
    assert maxerr(region, region0) < TOL
    assert maxerr(cov, cov0) < TOL
    mask = P.center_mask(N, N // 2)  # an explicit mask is honoured too
    assert maxerr(ops.merge_group(patches, offsets, mask)[0], P.merge_group(patches, offsets, mask)[0]) < TOL
    assert maxerr(ops.reextract_group(region0, offsets, N), P.reextract_group(region0, offsets, N)) < TOL


def test_forward_intensity_matches_oracle(ops):
    rng = np.random.default_rng(3)
    N = 32
    probe = crandn(rng, (N, N)) / N  # O(1) far field
    obj = crandn(rng, (2, 4, N, N))
    lam = ops.forward_intensity(probe, obj, 1.7)
    lam0 = P.forward_intensity(probe, obj, 1.7)
    assert lam.dtype == np.float32 and lam.shape == lam0.shape
    assert maxerr(lam, lam0) < TOL
    assert np.isclose(lam.sum(), np.sum(np.abs(1.7 * probe * obj) ** 2), rtol=1e-5)  # energy preserved


@pytest.mark.parametrize("name", ["poisson_deviance", "amplitude_mae"])
def test_losses_match_oracle(ops, name):
    rng = np.random.default_rng(4)
    lam = rng.uniform(0.0, 4.0, (2, 4, 16, 16)).astype(np.float32)
    n = rng.poisson(lam).astype(np.float32)  # includes zeros
    got, want = getattr(ops, name)(lam, n), getattr(P, name)(lam, n)
    assert abs(got - want) <= TOL * max(1.0, abs(want))


@pytest.mark.parametrize("name", ["poisson_deviance", "amplitude_mae"])
def test_masked_losses_match_oracle_and_never_read_masked_counts(ops, name):
    """Detector mask: the mean over valid pixels only; garbage counts at masked pixels change nothing."""
    rng = np.random.default_rng(5)
    lam = rng.uniform(0.0, 4.0, (2, 4, 16, 16)).astype(np.float32)
    n = rng.poisson(lam).astype(np.float32)
    valid = rng.uniform(size=(16, 16)) > 0.25
    garbage = np.where(valid, n, np.float32(1e7)).astype(np.float32)
    want = getattr(P, name)(lam, n, valid)
    # the oracle's masked loss is the plain loss of the valid pixels alone (its definition, docs/physics.md)
    assert want == pytest.approx(getattr(P, name)(lam[..., valid], n[..., valid]), rel=1e-12)
    assert getattr(P, name)(lam, garbage, valid) == want
    got = getattr(ops, name)(lam, garbage, valid)
    assert abs(got - want) <= TOL * max(1.0, abs(want))
    assert abs(getattr(ops, name)(lam, garbage) - want) > 1.0  # without the mask the garbage does count


# ------------------------------------------------------------------------------------------- refinement
def test_refinement_extraction_matches_oracle_and_integer_windows_are_slices(ops):
    from engine import refine as R
    from engine.parity.probe import refine_ops_inputs

    a = refine_ops_inputs(0)["refine_patches"]
    args = (a["obj"], a["corners"], a["fractions"], int(a["N"]), int(a["margin"]))
    assert maxerr(ops.refine_patches(*args), R.refine_patches(*args)) < TOL
    whole = np.zeros_like(a["fractions"])  # no sub-pixel part: the patch is the window's centre, exactly
    got = ops.refine_patches(a["obj"], a["corners"], whole, int(a["N"]), int(a["margin"]))
    m, N = int(a["margin"]), int(a["N"])
    x, y = a["corners"][0]
    assert maxerr(got[0], a["obj"][y + m:y + m + N, x + m:x + m + N]) < TOL


def test_refinement_gradients_match_oracle_and_ignore_masked_pixels(ops):
    from engine import refine as R
    from engine.parity.probe import refine_ops_inputs

    a = refine_ops_inputs(0)["refine_gradients"]
    args = [a[k] for k in ("obj", "probe", "counts", "corners", "fractions")] + [int(a["margin"]), a["valid"]]
    want = R.refine_gradients(*[x.astype(np.complex128) if np.iscomplexobj(x) else x for x in args])
    got = ops.refine_gradients(*args)
    for g, w in zip(got[:2], want[:2]):  # relative to the largest component (gradients are not of order 1)
        assert maxerr(g, w) / np.abs(w).max() < TOL
    assert abs(got[2] - want[2]) / abs(want[2]) < TOL
    garbage = np.where(a["valid"], a["counts"], 1e6).astype(np.float32)  # masked counts are never read
    again = ops.refine_gradients(*args[:2], garbage, *args[3:])
    assert maxerr(again[0], got[0]) == 0.0 and again[2] == got[2]
