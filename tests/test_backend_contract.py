"""The backend API contract both backends keep (engine/backend_api.py): predict and batch_loss against the numpy
oracle, on a tiny CI-size synthetic scan; and what both training loops take from shared code (the oriented batch
order, the learning-rate schedule). Training tests that differ per backend are in tests/tf and tests/torch."""
from __future__ import annotations

import numpy as np
import pytest

import dataclasses

from engine import augment, physics
from engine.backends import BACKENDS, info, load_backend
from engine.schedule import learning_rate
from tests.backend_cases import N, RecordingHooks, first_oriented_batch, setup

MARKS = {"tensorflow": pytest.mark.tf, "torch": pytest.mark.torch}


@pytest.fixture(params=[pytest.param(name, marks=MARKS[name]) for name in BACKENDS])
def case(request):
    """(backend name, backend module, cfg, data, consts, weights) for a gridsize-2 problem."""
    for framework in info(request.param).frameworks:
        pytest.importorskip(framework)
    return (request.param, load_backend(request.param), *setup(request.param, gridsize=2, M=16))


@pytest.fixture(params=[pytest.param(name, marks=MARKS[name]) for name in BACKENDS])
def trainer(request):
    """(backend name, backend module) of an installed backend, for the training tests both backends share."""
    for framework in info(request.param).frameworks:
        pytest.importorskip(framework)
    return request.param, load_backend(request.param)


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


def test_each_backend_module_implements_the_typed_contract(case):
    """Every member of engine.backend_api.Backend exists in the backend module with at least the contract's
    parameters (same names, same kinds): what a third backend must provide (docs/backends.md)."""
    import inspect

    from engine.backend_api import Backend

    name, module = case[0], case[1]
    assert isinstance(module, Backend), name
    members = [m for m in vars(Backend) if not m.startswith("_") and callable(getattr(Backend, m))]
    assert len(members) >= 10
    for member in members:
        wanted = list(inspect.signature(getattr(Backend, member)).parameters.values())[1:]  # drop self
        have = inspect.signature(getattr(module, member)).parameters
        for p in wanted:
            assert p.name in have, f"{name}.{member} lacks parameter {p.name}"
            assert have[p.name].kind == p.kind, f"{name}.{member}: {p.name} is {have[p.name].kind}, not {p.kind}"
            assert (have[p.name].default is inspect.Parameter.empty) == (p.default is inspect.Parameter.empty), \
                f"{name}.{member}: {p.name} is {'required' if p.default is inspect.Parameter.empty else 'optional'} in the contract"
        extra = [q for q in have.values() if q.name not in {p.name for p in wanted}]
        assert all(q.default is not inspect.Parameter.empty or q.kind is q.VAR_KEYWORD for q in extra), \
            f"{name}.{member} requires a parameter the contract does not pass: {extra}"


def test_training_steps_on_the_shared_oriented_order(trainer, tmp_path):
    """With orientations (engine/augment.py), the first step is on the first batch of TrainingData.epoch_order —
    turned patterns included — in either backend."""
    name, backend = trainer
    cfg, data, consts, w0 = setup(name, epochs=1, orientations=augment.ALL)
    result = backend.train(cfg, data, consts, w0, RecordingHooks(stop_after=1), tmp_path)
    first, turned = first_oriented_batch(data, 4)
    assert turned  # the case exercises an orientation (seed 0 draws some)
    stepped = backend.sgd_step(cfg, w0, consts, first)
    for k in w0:
        np.testing.assert_allclose(result.weights[k], stepped[k], rtol=0, atol=1e-6)


def test_training_follows_the_shared_learning_rate_schedule(trainer, tmp_path):
    """engine/schedule.py: each epoch's rate is set at its start and reported in the history; cosine ends at 1 % of
    the configured rate, and the optimiser steps with it: epoch 2 of a 2-epoch cosine (rate 1e-5) moves the weights
    ~100x less than epoch 2 at the constant 1e-3, from the same weights after epoch 1 (Adam's step ∝ the rate)."""
    name, backend = trainer
    cfg, data, consts, w0 = setup(name, epochs=3, lr=1e-3)

    def trained(epochs, schedule, where):
        c = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, epochs=epochs, lr_schedule=schedule))
        return backend.train(c, data, consts, w0, RecordingHooks(), tmp_path / where)

    want = [learning_rate(1e-3, "cosine", e, 3) for e in range(3)]
    assert want[0] == pytest.approx(1e-3) and want[-1] == pytest.approx(1e-5)
    assert [h["lr"] for h in trained(3, "cosine", "three").history] == pytest.approx(want, rel=1e-6)
    one, cos2, const2 = (trained(e, s, s + str(e)).weights for e, s in ((1, "cosine"), (2, "cosine"), (2, "constant")))
    step = {s: np.sqrt(sum(float(np.sum((w[k] - one[k]) ** 2)) for k in w0)) for s, w in (("cosine", cos2),
                                                                                            ("constant", const2))}
    assert step["cosine"] < 0.05 * step["constant"], step
