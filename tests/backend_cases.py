"""What the backend tests share (tests/test_backend_contract.py, tests/tf, tests/torch): a tiny CI-size problem and
hooks that record what a backend's training loop reports. No framework import here."""
from __future__ import annotations

from engine import grouping
from engine.backend_api import PhysicsConstants, TrainingData
from engine.config import ModelConfig, RunConfig, TrainingConfig
from engine.scaling import compute_scales
from engine.weights import init_weights
from tests.synthetic import make_synthetic

N = 32


def setup(backend: str, gridsize=1, M=16, epochs=2, batch_size=4, val_fraction=0.25, seed=0, lr=1e-3,
          orientations=(0,)):
    """A tiny CI-size problem built from the synthetic scan: (cfg, data, consts, weights); ``orientations``: those
    the training order draws (engine/augment.py; the synthetic probe is not checked for them)."""
    syn = make_synthetic(N=N, M=M, seed=seed, step=4.0)
    model = ModelConfig(N=N, n_filters_scale=1, gridsize=gridsize)
    cfg = RunConfig(model=model, training=TrainingConfig(epochs=epochs, batch_size=batch_size, learning_rate=lr,
                                                         val_fraction=val_fraction, seed=seed), backend=backend)
    scales = compute_scales(syn["diffraction"], syn["probe"])
    groups = grouping.make_groups(syn["positions"], gridsize, N, seed=seed)
    tr, va = grouping.split_train_val(len(groups), val_fraction, seed)
    data = TrainingData(syn["diffraction"], groups.take(tr), groups.take(va), scales.input_scale, tuple(orientations))
    consts = PhysicsConstants(syn["probe"], scales.photon_scale, scales.input_scale, N, model.channels)
    return cfg, data, consts, init_weights(model, seed)


def first_oriented_batch(data, batch_size: int):
    """The first batch of epoch 0 (seed 0) in the shared oriented order, and whether any entry is turned."""
    sel = grouping.batches(data.epoch_order(0, 0), batch_size)[0]
    return data.batch(data.train, sel), bool((sel >= len(data.train)).any())


class RecordingHooks:
    def __init__(self, stop_after=None):
        self.stop_after = stop_after
        self.starts, self.batches, self.epochs = [], [], []

    def on_train_start(self, epochs, batches_per_epoch):
        self.starts.append((epochs, batches_per_epoch))

    def on_batch_end(self, epoch, batch, batches, loss, samples):
        self.batches.append((epoch, batch, batches, loss, samples))

    def on_epoch_end(self, epoch, train_loss, val_loss, lr, seconds, samples_per_s, weights):
        self.epochs.append(dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss, lr=lr, seconds=seconds,
                                samples_per_s=samples_per_s, weights=weights()))

    def should_stop(self):
        return self.stop_after is not None and len(self.batches) >= self.stop_after
