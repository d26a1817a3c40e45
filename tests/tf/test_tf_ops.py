"""Level-0 parity: every TF op against the float64 numpy oracle, plus the Keras model's canonical weights."""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from engine import physics as P  # noqa: E402
from engine.config import ModelConfig  # noqa: E402
from engine.tf import ops  # noqa: E402
from engine.tf import physics as tp  # noqa: E402
from engine.tf.network import build_network, canonical_weights, load_canonical  # noqa: E402
from engine.weights import init_weights, parameter_specs, to_hwio  # noqa: E402

pytestmark = pytest.mark.tf
TOL = 1e-5


def crandn(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def maxerr(a, b):
    return float(np.max(np.abs(np.asarray(a, np.complex128) - np.asarray(b, np.complex128))))


def test_single_bright_pixel_lands_where_the_shift_says():
    a = np.zeros((32, 32), np.float32)
    a[10, 12] = 1.0
    out = ops.fourier_shift(a, 3.0, -5.0)  # content moves by (+dy, +dx)
    assert np.unravel_index(np.argmax(np.abs(out)), out.shape) == (13, 7)
    assert abs(out[13, 7] - 1.0) < TOL
    half = ops.fourier_shift(a, 0.5, 0.0).real  # half a pixel down: equal weight on rows 10 and 11
    assert abs(half[10, 12] - half[11, 12]) < TOL
    assert maxerr(half, P.fourier_shift(a.astype(np.float64), 0.5, 0.0).real) < TOL


def test_fourier_shift_matches_oracle_for_batched_shifts():
    rng = np.random.default_rng(1)
    a = crandn(rng, (3, 4, 32, 48))
    dy, dx = rng.uniform(-8, 8, (3, 4)), rng.uniform(-8, 8, (3, 4))
    assert maxerr(ops.fourier_shift(a, dy, dx), P.fourier_shift(a, dy, dx)) < TOL


@pytest.mark.parametrize("N", [32, 64])
def test_merge_and_reextract_match_oracle(N):
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


def test_forward_intensity_matches_oracle_and_preserves_energy():
    rng = np.random.default_rng(3)
    N = 32
    probe = crandn(rng, (N, N)) / N  # O(1) far field
    obj = crandn(rng, (2, 4, N, N))
    lam = ops.forward_intensity(probe, obj, 1.7)
    lam0 = P.forward_intensity(probe, obj, 1.7)
    assert lam.dtype == np.float32 and lam.shape == lam0.shape
    assert maxerr(lam, lam0) < TOL
    assert np.isclose(lam.sum(), np.sum(np.abs(1.7 * probe * obj) ** 2), rtol=1e-5)


@pytest.mark.parametrize("name", ["poisson_deviance", "amplitude_mae"])
def test_losses_match_oracle(name):
    rng = np.random.default_rng(4)
    lam = rng.uniform(0.0, 4.0, (2, 4, 16, 16)).astype(np.float32)
    n = rng.poisson(lam).astype(np.float32)  # includes zeros
    assert np.any(n == 0)
    got, want = getattr(ops, name)(lam, n), getattr(P, name)(lam, n)
    assert abs(got - want) <= TOL * max(1.0, abs(want))


def test_poisson_gradient_is_one_minus_n_over_lambda_and_finite_at_zero_counts():
    rng = np.random.default_rng(5)
    lam = tf.Variable(rng.uniform(0.5, 4.0, 64).astype(np.float32))
    n_np = rng.poisson(2.0, 64).astype(np.float32)
    n_np[:3] = 0.0
    with tf.GradientTape() as tape:
        loss = tp.poisson_deviance(lam, tf.constant(n_np))
    grad = tape.gradient(loss, lam).numpy().astype(np.float64)
    expected = (1.0 - n_np / (lam.numpy().astype(np.float64) + P.LOSS_EPS)) / 64
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-9)
    h, i = 1e-4, 7  # and by central differences of the float64 oracle
    up, down = lam.numpy().astype(np.float64), lam.numpy().astype(np.float64)
    up[i] += h
    down[i] -= h
    numeric = (P.poisson_deviance(up, n_np) - P.poisson_deviance(down, n_np)) / (2 * h)
    assert abs(grad[i] - numeric) < 1e-6


def test_gradient_flows_through_merge_and_forward_model():
    """d loss / d phase by autodiff equals a central difference through the whole physics layer (C = 4)."""
    rng = np.random.default_rng(6)
    N = 16
    amp = tf.Variable(rng.uniform(0.5, 1.0, (1, 4, N, N)))
    phase = tf.Variable(rng.uniform(-1, 1, (1, 4, N, N)))
    offsets = tf.constant(rng.uniform(-3, 3, (1, 4, 2)).astype(np.float32))
    probe = tf.constant(crandn(rng, (N, N)).astype(np.complex64))
    n = tf.constant(rng.poisson(2.0, (1, 4, N, N)).astype(np.float32))

    def loss_of(a, p):
        obj = tp.object_patches(tf.cast(a, tf.float32), tf.cast(p, tf.float32))
        region, _ = tp.merge_group(obj, offsets)
        return tp.poisson_deviance(tp.forward_intensity(probe, tp.reextract_group(region, offsets, N)), n)

    with tf.GradientTape() as tape:
        loss = loss_of(amp, phase)
    g = tape.gradient(loss, phase).numpy()
    idx = (0, 2, N // 2, N // 2 + 1)
    h = 1e-2
    e = np.zeros(phase.shape)
    e[idx] = h
    numeric = (float(loss_of(amp, phase + e)) - float(loss_of(amp, phase - e))) / (2 * h)
    assert abs(g[idx]) > 1e-5
    assert abs(g[idx] - numeric) <= 2e-2 * abs(numeric)


@pytest.mark.parametrize("gridsize,N", [(1, 64), (2, 32)])
def test_layers_carry_the_canonical_names_and_shapes(gridsize, N):
    cfg = ModelConfig(N=N, n_filters_scale=1, gridsize=gridsize)
    model = build_network(cfg)
    weights = canonical_weights(model)
    specs = parameter_specs(cfg)
    assert sorted(weights) == sorted(name for name, _ in specs)
    for name, shape in specs:
        assert weights[name].shape == shape
    assert model.get_layer("encoder.0.conv0").kernel.shape == (3, 3, gridsize**2, 32)  # HWIO inside Keras


def test_load_then_export_is_exact_and_output_has_the_spec_shape():
    cfg = ModelConfig(N=32, n_filters_scale=1, gridsize=2)
    weights = init_weights(cfg, seed=3)
    model = build_network(cfg)
    load_canonical(model, weights, cfg)
    np.testing.assert_array_equal(model.get_layer("amp_head").kernel.numpy(), to_hwio(weights["amp_head.weight"]))
    back = canonical_weights(model)
    assert set(back) == set(weights)
    for k in weights:
        assert back[k].dtype == np.float32 and np.array_equal(back[k], weights[k])
    amp, phase = (t.numpy() for t in model(np.random.default_rng(0).random((2, 4, 32, 32)).astype(np.float32)))
    assert amp.shape == phase.shape == (2, 4, 32, 32)
    assert float(np.abs(amp[..., :8, :]).max()) == 0.0  # zero outside the predicted centre
    assert 0.0 < float(amp[..., 8:24, 8:24].min()) and float(amp.max()) < 1.0
    assert 0.0 < float(np.abs(phase).max()) <= np.pi


def test_load_refuses_wrong_weights():
    cfg = ModelConfig(N=32, n_filters_scale=1)
    weights = init_weights(cfg, seed=0)
    weights.pop("amp_head.bias")
    with pytest.raises(ValueError, match="amp_head.bias"):
        load_canonical(build_network(cfg), weights, cfg)
