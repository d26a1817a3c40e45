"""TF-specific checks: gradients through the physics layer, the Keras model's canonical weights.

The level-0 op comparisons against the numpy oracle for both backends are in tests/test_level0_ops.py.
"""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from engine import physics as P  # noqa: E402
from engine.config import ModelConfig  # noqa: E402
from engine.tf import physics as tp  # noqa: E402
from engine.tf.network import build_network, canonical_weights, load_canonical  # noqa: E402
from engine.weights import init_weights, parameter_specs, to_hwio  # noqa: E402

pytestmark = pytest.mark.tf
TOL = 1e-5


def crandn(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def maxerr(a, b):
    return float(np.max(np.abs(np.asarray(a, np.complex128) - np.asarray(b, np.complex128))))


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


@pytest.mark.parametrize("gridsize,N", [(1, 64), (2, 32), (1, 128)])
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
    assert 0.0 < float(amp[..., 8:24, 8:24].min()) and float(amp.max()) < cfg.amplitude_max  # amplitude_max·sigmoid
    assert 0.0 < float(np.abs(phase).max()) <= np.pi


def test_load_refuses_wrong_weights():
    cfg = ModelConfig(N=32, n_filters_scale=1)
    weights = init_weights(cfg, seed=0)
    weights.pop("amp_head.bias")
    with pytest.raises(ValueError, match="amp_head.bias"):
        load_canonical(build_network(cfg), weights, cfg)
