"""Torch-specific checks: gradients, the Keras Adam rule, the model's canonical weights.

The level-0 op comparisons against the numpy oracle for both backends are in tests/test_level0_ops.py.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine import physics as P  # noqa: E402
from engine.config import ModelConfig  # noqa: E402
from engine.weights import init_weights, parameter_specs  # noqa: E402
from engine.torch import physics as tp  # noqa: E402
from engine.torch.network import PtychoNet, canonical_state, load_canonical  # noqa: E402

pytestmark = pytest.mark.torch
TOL = 1e-5


def crandn(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def maxerr(a, b):
    return float(np.max(np.abs(np.asarray(a, np.complex128) - np.asarray(b, np.complex128))))


def test_poisson_gradient_is_one_minus_n_over_lambda():
    rng = np.random.default_rng(5)
    lam = torch.tensor(rng.uniform(0.5, 4.0, 64), dtype=torch.float32, requires_grad=True)
    n = torch.tensor(rng.poisson(2.0, 64), dtype=torch.float32)
    tp.poisson_deviance(lam, n).backward()
    expected = (1.0 - n.double() / (lam.detach().double() + P.LOSS_EPS)) / lam.numel()
    assert torch.allclose(lam.grad.double(), expected, rtol=1e-5, atol=1e-9)
    # and numerically, by central differences of the float64 oracle
    h, i = 1e-4, 7
    base = lam.detach().numpy().astype(np.float64)
    up, down = base.copy(), base.copy()
    up[i] += h
    down[i] -= h
    numeric = (P.poisson_deviance(up, n.numpy()) - P.poisson_deviance(down, n.numpy())) / (2 * h)
    assert abs(float(lam.grad[i]) - numeric) < 1e-6


def test_poisson_gradient_is_finite_where_counts_are_zero():
    lam = torch.tensor([0.0, 1.0, 2.0], requires_grad=True)
    n = torch.tensor([0.0, 0.0, 3.0])
    tp.poisson_deviance(lam, n).backward()
    assert torch.all(torch.isfinite(lam.grad))
    assert abs(float(lam.grad[0]) - 1.0 / 3.0) < 1e-6


@pytest.mark.parametrize("gridsize,N", [(1, 64), (2, 32), (1, 128)])
def test_state_dict_keys_are_the_canonical_names(gridsize, N):
    cfg = ModelConfig(N=N, n_filters_scale=1, gridsize=gridsize)
    net = PtychoNet(cfg)
    specs = parameter_specs(cfg)
    assert list(net.state_dict()) == [name for name, _ in specs]
    assert [tuple(v.shape) for v in net.state_dict().values()] == [shape for _, shape in specs]


def test_load_then_export_is_exact_and_output_has_the_spec_shape():
    cfg = ModelConfig(N=32, n_filters_scale=1, gridsize=2)
    weights = init_weights(cfg, seed=3)
    net = PtychoNet(cfg)
    load_canonical(net, weights, cfg)
    back = canonical_state(net)
    assert set(back) == set(weights)
    for k in weights:
        assert back[k].dtype == np.float32 and np.array_equal(back[k], weights[k])
    with torch.inference_mode():
        amp, phase = net(torch.rand(2, 4, 32, 32))
    assert amp.shape == phase.shape == (2, 4, 32, 32)
    assert float(amp[..., :8, :].abs().max()) == 0.0  # zero outside the predicted centre
    assert 0.0 < float(amp[..., 8:24, 8:24].min()) and float(amp.max()) < cfg.amplitude_max  # amplitude_max·sigmoid
    assert float(phase.abs().max()) <= np.pi


def test_load_refuses_wrong_weights():
    cfg = ModelConfig(N=32, n_filters_scale=1)
    weights = init_weights(cfg, seed=0)
    weights.pop("amp_head.bias")
    with pytest.raises(ValueError, match="amp_head.bias"):
        load_canonical(PtychoNet(cfg), weights, cfg)


def test_adam_follows_the_keras_rule_epsilon_on_the_uncorrected_moment():
    from engine.torch.optim import KerasAdam

    rng = np.random.default_rng(6)
    grads = [rng.standard_normal(50) * 10.0 ** rng.uniform(-8, 0, 50) for _ in range(3)]  # incl. tiny gradients
    theta0 = rng.standard_normal(50)
    p = torch.nn.Parameter(torch.tensor(theta0, dtype=torch.float64))
    opt = KerasAdam([p], lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    theta, m, v = theta0.copy(), np.zeros(50), np.zeros(50)
    for t, g in enumerate(grads, start=1):
        p.grad = torch.tensor(g)
        opt.step()
        m += (g - m) * 0.1
        v += (g * g - v) * 0.001
        theta -= 1e-3 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(p.detach().numpy(), theta, rtol=0, atol=1e-12)
    # and it is not torch's rule: for a 1e-6 gradient the first steps differ by a large fraction of lr
    q = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    ref = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    for opt, par in ((KerasAdam([q], lr=1e-3), q), (torch.optim.Adam([ref], lr=1e-3, eps=1e-7), ref)):
        par.grad = torch.tensor([1e-6], dtype=torch.float64)
        opt.step()
    assert abs(float(q.detach()) - float(ref.detach())) > 5e-4
