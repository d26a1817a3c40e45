"""Adam with Keras' update rule, so that both backends take the same step (parity level 2).

torch.optim.Adam and keras.optimizers.Adam differ in where epsilon goes: torch adds it to the bias-corrected
``sqrt(v̂)``, Keras to the uncorrected ``sqrt(v)`` (the paper's "epsilon hat"), i.e. Keras' effective epsilon is
``eps / sqrt(1 - β₂ᵗ)`` — 32× larger at step 1. For parameters with gradients near 1e-6 (common in the deep
layers) the two steps then differ by most of a learning rate. This class is Keras' rule, written out:

    m ← m + (g − m)(1 − β₁);  v ← v + (g² − v)(1 − β₂)
    θ ← θ − lr·sqrt(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (sqrt(v) + eps)
"""
from __future__ import annotations

import math

import torch

from engine.backend_api import ADAM_BETAS, ADAM_EPS


class KerasAdam(torch.optim.Optimizer):
    """Constant learning rate, no weight decay, no amsgrad — exactly what training uses (docs/backends.md)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = ADAM_BETAS, eps: float = ADAM_EPS):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"]
                m, v, g = state["m"], state["v"], p.grad
                m.lerp_(g, 1.0 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                alpha = group["lr"] * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
                p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-alpha)
        return loss
