"""The PINN's computation, top to bottom — network → object → (merge, re-extract) → far field → loss — as a plain
``torch.nn.Module``. Inference, the loss of a batch, gradients and single optimiser steps use it directly, so they do
not import Lightning (~4 s of a cold ``infer``); engine/torch/module.py adds the Lightning training steps on top.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.backend_api import ADAM_BETAS, ADAM_EPS, PhysicsConstants
from engine.config import RunConfig
from engine.physics import merge_pad, merge_window
from engine.torch import physics as tp
from engine.torch.network import PtychoNet, load_canonical
from engine.torch.optim import KerasAdam


class PinnModel(torch.nn.Module):
    """Holds the network and the physics constants (non-persistent buffers: the state is the network's alone)."""

    def __init__(self, cfg: RunConfig, consts: PhysicsConstants, weights: dict[str, np.ndarray]):
        super().__init__()
        self.cfg = cfg
        self.net = PtychoNet(cfg.model)
        load_canonical(self.net, weights, cfg.model)
        # Channels-last lets oneDNN pick its blocked conv kernels on CPU: ~2× inference and ~1.25× a training epoch on
        # 2 cores (docs/performance.md); only the summation order changes (the canonical weights are copied out
        # contiguous, engine/torch/network.py canonical_state).
        self.net.to(memory_format=torch.channels_last)
        N, R = consts.N, consts.N + 2 * merge_pad(consts.N)
        self.register_buffer("probe", torch.from_numpy(np.asarray(consts.probe, np.complex64)), persistent=False)
        self.register_buffer("window", torch.from_numpy(merge_window(N)), persistent=False)
        self.register_buffer("ky", tp.fftfreq(R), persistent=False)
        self.register_buffer("kx", tp.fftfreq(R), persistent=False)
        valid = None if consts.valid is None else torch.from_numpy(np.array(consts.valid, bool))  # detector mask
        self.register_buffer("valid", valid, persistent=False)
        self.photon_scale = float(consts.photon_scale)
        self.loss_fn = tp.LOSSES[cfg.training.loss]

    def forward(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Complex object patches (B, C, N, N) after the overlap constraint (merge → re-extract when C > 1)."""
        amp, phase = self.net(x.contiguous(memory_format=torch.channels_last))
        obj = torch.polar(amp, phase)
        if obj.shape[1] > 1:
            region, _ = tp.merge_group(obj, offsets, self.window, self.ky, self.kx)
            obj = tp.reextract_group(region, offsets, obj.shape[-1], self.ky, self.kx)
        return obj

    def predicted_counts(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return tp.forward_intensity(self.probe, self(x, offsets), self.photon_scale)

    def loss(self, batch) -> torch.Tensor:
        x, counts, offsets = batch
        lam = self.predicted_counts(x, offsets)
        return self.loss_fn(lam, counts) if self.valid is None else self.loss_fn(lam, counts, self.valid)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Keras' Adam (its defaults and epsilon placement, engine/torch/optim.py), as the TensorFlow backend."""
        return KerasAdam(self.net.parameters(), lr=self.cfg.training.learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS)
