"""The torch backend API: training through Lightning (hooks, cancel, determinism, resume) and sgd_step;
predict and batch_loss: tests/test_backend_contract.py."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from engine import grouping  # noqa: E402
from engine.config import ModelConfig, RunConfig, TrainingConfig  # noqa: E402
from engine.weights import init_weights  # noqa: E402
from engine.torch import backend  # noqa: E402
from tests.backend_cases import N, RecordingHooks  # noqa: E402
from tests import backend_cases as cases  # noqa: E402

pytestmark = pytest.mark.torch


def setup(**kw):
    return cases.setup("torch", **kw)


def test_training_calls_hooks_and_lowers_the_loss(tmp_path):
    cfg, data, consts, w0 = setup(epochs=3, lr=1e-3)
    hooks = RecordingHooks()
    result = backend.train(cfg, data, consts, w0, hooks, tmp_path / "ckpt")
    n_train = len(data.train)
    per_epoch = -(-n_train // cfg.training.batch_size)
    assert result.status == "ok"
    assert hooks.starts == [(3, per_epoch)]
    assert len(hooks.batches) == 3 * per_epoch
    assert [b[:3] for b in hooks.batches] == [(e, i, per_epoch) for e in range(3) for i in range(per_epoch)]
    assert sum(b[4] for b in hooks.batches[:per_epoch]) == n_train
    assert [e["epoch"] for e in hooks.epochs] == [0, 1, 2]
    # epoch train loss = sample-weighted mean of that epoch's batch losses
    first = hooks.batches[:per_epoch]
    weighted = sum(b[3] * b[4] for b in first) / sum(b[4] for b in first)
    assert hooks.epochs[0]["train_loss"] == pytest.approx(weighted, rel=1e-9)
    assert all(e["val_loss"] is not None and e["lr"] == pytest.approx(1e-3) for e in hooks.epochs)
    assert hooks.epochs[-1]["train_loss"] < hooks.epochs[0]["train_loss"]
    assert hooks.epochs[-1]["val_loss"] < hooks.epochs[0]["val_loss"]
    for k in w0:  # the weights handed to the hooks are the final ones, and they moved
        assert np.array_equal(hooks.epochs[-1]["weights"][k], result.weights[k])
    assert not np.array_equal(result.weights["amp_head.weight"], w0["amp_head.weight"])
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    # the batches are the shared ones, in grouping.epoch_order for Lightning's epoch counter
    for epoch, weights in ((0, w0), (1, hooks.epochs[0]["weights"]), (2, hooks.epochs[1]["weights"])):
        sel = grouping.batches(grouping.epoch_order(n_train, cfg.training.seed, epoch), cfg.training.batch_size)[0]
        want = backend.batch_loss(cfg.model, weights, consts, data.batch(data.train, sel), "poisson")
        assert hooks.batches[epoch * per_epoch][3] == pytest.approx(want, rel=1e-6)


def test_val_loss_is_sample_weighted_mean_over_validation_batches(tmp_path):
    cfg, data, consts, w0 = setup(epochs=1, batch_size=3, val_fraction=0.3)
    hooks = RecordingHooks()
    result = backend.train(cfg, data, consts, w0, hooks, tmp_path)
    w1 = result.weights
    sels = grouping.batches(np.arange(len(data.val)), 3)
    losses = [backend.batch_loss(cfg.model, w1, consts, data.batch(data.val, s), "poisson") for s in sels]
    expected = sum(l * len(s) for l, s in zip(losses, sels)) / len(data.val)
    assert hooks.epochs[0]["val_loss"] == pytest.approx(expected, rel=1e-6)


def test_should_stop_cancels_after_one_batch(tmp_path):
    cfg, data, consts, w0 = setup(epochs=2)
    hooks = RecordingHooks(stop_after=1)
    result = backend.train(cfg, data, consts, w0, hooks, tmp_path)
    assert result.status == "cancelled"
    assert len(hooks.batches) == 1 and hooks.epochs == []
    # the weights so far: exactly one Adam step on the first batch of epoch 0
    first = data.batch(data.train, grouping.batches(grouping.epoch_order(len(data.train), 0, 0), 4)[0])
    stepped = backend.sgd_step(cfg, w0, consts, first)
    for k in w0:
        np.testing.assert_allclose(result.weights[k], stepped[k], rtol=0, atol=1e-6)


def test_same_seed_gives_identical_weights(tmp_path):
    cfg, data, consts, w0 = setup(gridsize=2, M=16, epochs=1, batch_size=3)
    a = backend.train(cfg, data, consts, w0, RecordingHooks(), tmp_path / "a")
    b = backend.train(cfg, data, consts, w0, RecordingHooks(), tmp_path / "b")
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in w0)
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]
    assert not torch.are_deterministic_algorithms_enabled()  # the global switch is restored


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    cfg, data, consts, w0 = setup(epochs=2)
    full = backend.train(cfg, data, consts, w0, RecordingHooks(), tmp_path / "full")
    one = RunConfig(model=cfg.model, training=TrainingConfig(**{**cfg.training.__dict__, "epochs": 1}), backend="torch")
    backend.train(one, data, consts, w0, RecordingHooks(), tmp_path / "half")
    hooks = RecordingHooks()
    resumed = backend.train(cfg, data, consts, init_weights(cfg.model, 99), hooks, tmp_path / "half2",
                            resume=tmp_path / "half")  # a directory means its last.ckpt
    assert [e["epoch"] for e in hooks.epochs] == [1]
    assert [h["epoch"] for h in resumed.history] == [0, 1]
    for k in w0:
        np.testing.assert_allclose(resumed.weights[k], full.weights[k], rtol=0, atol=1e-6)


def test_bad_resume_is_input_error_and_no_checkpoint_dir_writes_nothing(tmp_path, monkeypatch):
    from engine.errors import InputError

    monkeypatch.chdir(tmp_path)

    cfg, data, consts, w0 = setup(epochs=1)
    with pytest.raises(InputError, match="missing.ckpt"):
        backend.train(cfg, data, consts, w0, RecordingHooks(), tmp_path / "a", resume=tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.ckpt"):
        backend.train(cfg, data, consts, w0, RecordingHooks(), tmp_path / "a", resume=junk)
    assert not (tmp_path / "a").exists()
    wide = init_weights(ModelConfig(N=N, n_filters_scale=2), 0)  # a checkpoint of a wider network
    (tmp_path / "wide").mkdir()
    torch.save({"state_dict": {f"net.{k}": torch.from_numpy(v) for k, v in wide.items()}},
               tmp_path / "wide" / "last.ckpt")
    with pytest.raises(InputError, match="shape"):
        backend.train(cfg, data, consts, w0, RecordingHooks(), tmp_path / "a", resume=tmp_path / "wide")
    result = backend.train(cfg, data, consts, w0, RecordingHooks(), None)  # cwd is tmp_path (fixture below)
    assert result.status == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.ckpt", "wide"]


def test_training_is_quiet_on_stdout_stderr_and_warnings(tmp_path, capfd):
    import warnings

    cfg, data, consts, w0 = setup(epochs=1, val_fraction=0.0)  # no validation groups: val_loss is None
    hooks = RecordingHooks()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend.train(cfg, data, consts, w0, hooks, tmp_path)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert [str(w.message) for w in caught] == []
    assert hooks.epochs[0]["val_loss"] is None
