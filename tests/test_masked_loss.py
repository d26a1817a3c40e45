"""A detector mask leaves masked pixels out of the training loss in both backends: their counts (set to garbage)
change neither the loss nor any parameter's gradient, and the masked loss is the mean over valid pixels only."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine import physics
from engine.backend_api import Batch, PhysicsConstants
from engine.config import ModelConfig
from engine.weights import init_weights
from tests.synthetic import disk_probe

N = 32


@pytest.fixture(params=[pytest.param("tensorflow", marks=pytest.mark.tf),
                        pytest.param("torch", marks=pytest.mark.torch)])
def backend(request):
    pytest.importorskip(request.param)
    from engine.backends import load_backend

    return load_backend(request.param)


def _case(seed: int = 0):
    rng = np.random.default_rng(seed)
    cfg = ModelConfig(N=N, n_filters_scale=1, gridsize=1)
    counts = rng.poisson(50.0, (3, 1, N, N)).astype(np.float32)
    x = (np.sqrt(counts) * 0.05).astype(np.float32)
    valid = np.ones((N, N), bool)
    valid[:, N // 2 - 1:N // 2 + 1] = False  # a detector gap through the centre
    valid[5, 7] = False  # a hot pixel
    consts = PhysicsConstants(probe=disk_probe(N, 5.0), photon_scale=3.0, input_scale=1.0, N=N, C=1, valid=valid)
    garbage = np.where(valid, counts, np.float32(3e6)).astype(np.float32)
    offsets = np.zeros((3, 1, 2), np.float32)
    return cfg, init_weights(cfg, seed), consts, Batch(x, counts, offsets), Batch(x, garbage, offsets)


@pytest.mark.parametrize("loss", ["poisson", "mae"])
def test_masked_counts_change_neither_loss_nor_gradient(backend, loss):
    cfg, w, consts, clean, garbage = _case()
    assert backend.batch_loss(cfg, w, consts, garbage, loss) == backend.batch_loss(cfg, w, consts, clean, loss)
    g_clean = backend.gradients(cfg, w, consts, clean, loss)
    g_garbage = backend.gradients(cfg, w, consts, garbage, loss)
    for name in g_clean:
        np.testing.assert_array_equal(g_garbage[name], g_clean[name], err_msg=name)
    unmasked = PhysicsConstants(consts.probe, consts.photon_scale, consts.input_scale, N, 1)
    moved = backend.gradients(cfg, w, unmasked, garbage, loss)  # without the mask the garbage is a measurement
    assert any(not np.allclose(moved[k], g_clean[k]) for k in g_clean)


def test_masked_loss_is_the_oracle_mean_over_valid_pixels(backend):
    cfg, w, consts, clean, garbage = _case(1)
    obj = backend.predict(cfg, w, consts, clean.x, clean.offsets, 3)
    lam = physics.forward_intensity(consts.probe, obj, consts.photon_scale)
    for loss, oracle in (("poisson", physics.poisson_deviance), ("mae", physics.amplitude_mae)):
        want = oracle(lam, clean.counts, consts.valid)
        got = backend.batch_loss(cfg, w, consts, garbage, loss)
        assert abs(got - want) <= 1e-4 * max(1.0, abs(want))  # float32 network vs float64 oracle, as level 1
        assert abs(oracle(lam, clean.counts) - want) > 1e-3  # the mask makes a difference here


def test_parity_probe_inputs_carry_the_mask(tmp_path):
    """Parity levels 1-2 run in child processes: the case they read must hold the mask the training loss uses."""
    from engine.config import RunConfig
    from engine.parity.probe import Case, read_inputs, write_inputs

    cfg, w, consts, clean, _ = _case()
    write_inputs(tmp_path / "in.npz", {"masked": Case(RunConfig(model=cfg), w, consts, clean),
                                       "plain": Case(RunConfig(model=cfg), w, replace(consts, valid=None), clean)})
    back = read_inputs(tmp_path / "in.npz")
    np.testing.assert_array_equal(back["masked"].consts.valid, consts.valid)
    assert back["plain"].consts.valid is None
