"""The TF backend API: the explicit training loop (hooks, cancel, determinism, checkpoints, resume) and sgd_step,
on a tiny CI-size synthetic scan (tests/backend_cases.py); predict and batch_loss: tests/test_backend_contract.py."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from engine import grouping  # noqa: E402
from engine.config import RunConfig  # noqa: E402
from engine.errors import InputError  # noqa: E402
from engine.tf import backend  # noqa: E402
from engine.weights import init_weights  # noqa: E402
from tests import backend_cases as cases  # noqa: E402

pytestmark = pytest.mark.tf


def setup(**kw):
    return cases.setup("tensorflow", **kw)


def with_epochs(cfg: RunConfig, epochs: int) -> RunConfig:
    return dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, epochs=epochs))


class RecordingHooks(cases.RecordingHooks):
    def on_batch_end(self, epoch, batch, batches, loss, samples):
        assert isinstance(loss, float)
        super().on_batch_end(epoch, batch, batches, loss, samples)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """One 2-epoch gridsize-2 run shared by the tests below (each training traces its graph: keep them few)."""
    cfg, data, consts, w0 = setup(gridsize=2, epochs=2, batch_size=3, val_fraction=0.25)
    hooks = RecordingHooks()
    ckpt = tmp_path_factory.mktemp("full")
    result = backend.train(cfg, data, consts, w0, hooks, ckpt)
    return cfg, data, consts, w0, hooks, result, ckpt


def test_training_calls_hooks_and_lowers_the_loss(full):
    cfg, data, consts, w0, hooks, result, ckpt = full
    n_train, bs = len(data.train), cfg.training.batch_size
    per_epoch = -(-n_train // bs)
    assert result.status == "ok"
    assert hooks.starts == [(2, per_epoch)]
    assert [b[:3] for b in hooks.batches] == [(e, i, per_epoch) for e in range(2) for i in range(per_epoch)]
    assert sum(b[4] for b in hooks.batches[:per_epoch]) == n_train
    assert [e["epoch"] for e in hooks.epochs] == [0, 1]
    first = hooks.batches[:per_epoch]  # epoch train loss = sample-weighted mean of that epoch's batch losses
    weighted = sum(b[3] * b[4] for b in first) / sum(b[4] for b in first)
    assert hooks.epochs[0]["train_loss"] == pytest.approx(weighted, rel=1e-9)
    assert all(e["val_loss"] is not None and e["lr"] == pytest.approx(1e-3) for e in hooks.epochs)
    assert all(e["samples_per_s"] > 0 and e["seconds"] > 0 for e in hooks.epochs)
    assert hooks.epochs[-1]["train_loss"] < 0.8 * hooks.epochs[0]["train_loss"]
    assert hooks.epochs[-1]["val_loss"] < hooks.epochs[0]["val_loss"]
    for k in w0:  # the weights handed to the hooks are the final ones, and they moved
        assert np.array_equal(hooks.epochs[-1]["weights"][k], result.weights[k])
    assert not np.array_equal(result.weights["amp_head.weight"], w0["amp_head.weight"])
    assert [h["epoch"] for h in result.history] == [0, 1]
    assert tf.train.latest_checkpoint(str(ckpt)).endswith("ckpt-1")
    # the batches are the shared ones, in grouping.epoch_order, and the loss is taken before the step
    for epoch, weights in ((0, w0), (1, hooks.epochs[0]["weights"])):
        sel = grouping.batches(grouping.epoch_order(n_train, cfg.training.seed, epoch), bs)[0]
        want = backend.batch_loss(cfg.model, weights, consts, data.batch(data.train, sel), "poisson")
        assert hooks.batches[epoch * per_epoch][3] == pytest.approx(want, rel=1e-6)


def test_val_loss_is_sample_weighted_mean_over_validation_batches(full):
    cfg, data, consts, w0, hooks, result, ckpt = full
    sels = grouping.batches(np.arange(len(data.val)), cfg.training.batch_size)
    assert len(sels) > 1 and len(sels[-1]) < len(sels[0])  # a short last batch: the weighting matters
    losses = [backend.batch_loss(cfg.model, result.weights, consts, data.batch(data.val, s), "poisson")
              for s in sels]
    expected = sum(l * len(s) for l, s in zip(losses, sels)) / len(data.val)
    assert hooks.epochs[-1]["val_loss"] == pytest.approx(expected, rel=1e-6)


def test_same_seed_gives_identical_weights(full, tmp_path):
    cfg, data, consts, w0, hooks, result, ckpt = full
    again = backend.train(cfg, data, consts, w0, RecordingHooks(), tmp_path)
    for k in w0:
        np.testing.assert_allclose(again.weights[k], result.weights[k], rtol=0, atol=1e-6)
    assert again.history[-1]["train_loss"] == pytest.approx(result.history[-1]["train_loss"], rel=1e-6)


def test_resume_continues_from_the_last_checkpoint(full, tmp_path):
    cfg, data, consts, w0, _, result, _ = full
    backend.train(with_epochs(cfg, 1), data, consts, w0, RecordingHooks(), tmp_path / "half")
    hooks = RecordingHooks()
    resumed = backend.train(cfg, data, consts, init_weights(cfg.model, 99), hooks, tmp_path / "more",
                            resume=tmp_path / "half")
    assert hooks.starts[0][0] == 2 and [e["epoch"] for e in hooks.epochs] == [1]
    assert [h["epoch"] for h in resumed.history] == [0, 1]  # history travels in the checkpoint
    assert resumed.history[0]["train_loss"] == pytest.approx(result.history[0]["train_loss"], rel=1e-6)
    for k in w0:  # weights AND Adam moments were restored: the result equals the uninterrupted run
        np.testing.assert_allclose(resumed.weights[k], result.weights[k], rtol=0, atol=1e-6)
    assert tf.train.latest_checkpoint(str(tmp_path / "more")).endswith("ckpt-1")


def test_should_stop_cancels_after_one_batch(tmp_path):
    cfg, data, consts, w0 = setup(epochs=2)
    hooks = RecordingHooks(stop_after=1)
    result = backend.train(cfg, data, consts, w0, hooks, tmp_path)
    assert result.status == "cancelled"
    assert len(hooks.batches) == 1 and hooks.epochs == [] and result.history == []
    assert tf.train.latest_checkpoint(str(tmp_path)) is None  # a partial epoch is not checkpointed
    # the weights so far: exactly one Adam step on the first batch of epoch 0
    first = data.batch(data.train, grouping.batches(grouping.epoch_order(len(data.train), 0, 0), 4)[0])
    stepped = backend.sgd_step(cfg, w0, consts, first)
    for k in w0:
        np.testing.assert_allclose(result.weights[k], stepped[k], rtol=0, atol=1e-6)
    assert any(not np.array_equal(stepped[k], w0[k]) for k in w0)


def test_no_validation_groups_gives_none(tmp_path):
    cfg, data, consts, w0 = setup(epochs=1, val_fraction=0.0)
    hooks = RecordingHooks()
    result = backend.train(cfg, data, consts, w0, hooks, None)
    assert hooks.epochs[0]["val_loss"] is None and result.history[0]["val_loss"] is None


def test_resume_from_a_directory_without_checkpoint_is_bad_input(tmp_path):
    cfg, data, consts, w0 = setup(epochs=1)
    with pytest.raises(InputError, match="checkpoint"):
        backend.train(cfg, data, consts, w0, RecordingHooks(), tmp_path / "a", resume=tmp_path)
