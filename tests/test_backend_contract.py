"""The backend API contract both backends keep (engine/backend_api.py): predict and batch_loss against the numpy
oracle, on a tiny CI-size synthetic scan. Training tests, which differ per backend, are in tests/tf and tests/torch."""
from __future__ import annotations

import numpy as np
import pytest

from engine import physics
from engine.backends import BACKENDS, info, load_backend
from tests.backend_cases import N, setup

MARKS = {"tensorflow": pytest.mark.tf, "torch": pytest.mark.torch}


@pytest.fixture(params=[pytest.param(name, marks=MARKS[name]) for name in BACKENDS])
def case(request):
    """(backend name, backend module, cfg, data, consts, weights) for a gridsize-2 problem."""
    for framework in info(request.param).frameworks:
        pytest.importorskip(framework)
    return (request.param, load_backend(request.param), *setup(request.param, gridsize=2, M=16))


def raw_network(name: str, cfg, weights: dict, x: np.ndarray) -> np.ndarray:
    """The network's complex patches before the overlap constraint, float64, straight from the framework."""
    if name == "tensorflow":
        from engine.tf.network import build_network, load_canonical

        net = build_network(cfg.model)
        load_canonical(net, weights)
        amp, phase = (t.numpy().astype(np.float64) for t in net(x))
    else:
        import torch

        from engine.torch.network import PtychoNet, load_canonical

        net = PtychoNet(cfg.model)
        load_canonical(net, weights)
        with torch.inference_mode():
            amp, phase = (t.double().numpy() for t in net(torch.from_numpy(x)))
    return amp * np.exp(1j * phase)


def test_batch_loss_matches_the_numpy_oracle(case):
    name, backend, cfg, data, consts, w0 = case
    batch = data.batch(data.train, np.arange(3))
    obj = backend.predict(cfg.model, w0, consts, batch.x, batch.offsets, batch_size=2)
    assert obj.shape == (3, 4, N, N) and obj.dtype == np.complex64
    lam = physics.forward_intensity(consts.probe, obj, consts.photon_scale)
    for loss, oracle in (("poisson", physics.poisson_deviance), ("mae", physics.amplitude_mae)):
        want = oracle(lam, batch.counts)
        got = backend.batch_loss(cfg.model, w0, consts, batch, loss)
        assert abs(got - want) <= 1e-4 * max(1.0, abs(want))


def test_predict_applies_the_overlap_constraint_with_the_oracle_merge(case):
    name, backend, cfg, data, consts, w0 = case
    batch = data.batch(data.train, np.arange(5))
    calls = []
    obj = backend.predict(cfg.model, w0, consts, batch.x, batch.offsets, batch_size=2,  # short last batch
                          progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]
    raw = raw_network(name, cfg, w0, batch.x)
    region, _ = physics.merge_group(raw, batch.offsets)
    want = physics.reextract_group(region, batch.offsets, N)
    assert np.abs(obj - want).max() < 1e-5
    assert np.abs(obj - raw).max() > 1e-2  # the constraint did something
