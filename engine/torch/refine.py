"""Refinement on PyTorch: engine/refine.py's update, with the gradient from autograd (docs/refinement.md).

Each step: windows of the object at the batch's corners → band-limited shift by −fraction → crop → far field of
P·patch → the Newton-weighted Poisson surrogate → ∂/∂O* (and ∂/∂P*) by autograd → the normalised update. The
loop (batches in the shared order, epoch momentum, hooks) is engine.refine_loop.run, shared with the other backend.
"""
from __future__ import annotations

import numpy as np
import torch

from engine import physics
from engine import refine as R
from engine import refine_loop
from engine.backend_api import RefineHooks, RefineResult


class _Windows(torch.autograd.Function):
    """(B, L, L) windows of a 2-D tensor at integer corners; backward adds each window's gradient back in place.

    Written out because advanced indexing's backward (``index_put_`` with accumulate) runs single-threaded over
    every element and was most of a refinement step's time; B slices and B slice-adds are exact and cheap.
    """

    @staticmethod
    def forward(ctx, obj: torch.Tensor, corners: list[tuple[int, int]], L: int) -> torch.Tensor:
        ctx.shape, ctx.corners, ctx.L = obj.shape, corners, L
        return torch.stack([obj[y:y + L, x:x + L] for x, y in corners])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        out = grad.new_zeros(ctx.shape)
        L = ctx.L
        for g, (x, y) in zip(grad, ctx.corners):
            out[y:y + L, x:x + L] += g
        return out, None, None


def _ramps(fractions: np.ndarray, L: int, device) -> torch.Tensor:
    """(M, L) multipliers moving content by −fraction: engine.physics.ramp_1d (real Nyquist bin)."""
    return torch.from_numpy(physics.ramp_1d(np.fft.fftfreq(L), -np.asarray(fractions, np.float64),
                                            np.complex64)).to(device)


class Refiner:
    """The problem on the device and the step; one per refinement, nothing global."""

    def __init__(self, problem: R.RefineProblem, cfg: R.RefineConfig, device: str = "cpu"):
        self.problem, self.cfg, self.device = problem, cfg, device
        self.N, self.m, self.L = problem.N, problem.margin, problem.L
        counts = np.fft.ifftshift(np.asarray(problem.counts, np.float32), axes=(-2, -1))  # FFT order
        self.counts = torch.from_numpy(np.ascontiguousarray(counts)).to(device)
        self.corners = [tuple(c) for c in problem.corners.tolist()]
        self.ry = _ramps(problem.fractions[:, 1], self.L, device)
        self.rx = _ramps(problem.fractions[:, 0], self.L, device)
        self.mask = torch.from_numpy(R.momentum_mask(problem)).to(device)
        valid = np.ones((self.N, self.N), bool) if problem.valid is None else problem.valid
        self.valid = torch.from_numpy(np.fft.ifftshift(valid).astype(np.float32)).to(device)  # FFT order

    # --------------------------------------------------------------------------------- model, top to bottom
    def patches(self, obj: torch.Tensor, sel: np.ndarray) -> torch.Tensor:
        """(B, N, N): windows shifted by −fraction (band-limited) and cropped to their centre."""
        win = _Windows.apply(obj, [self.corners[i] for i in sel], self.L)
        idx = torch.from_numpy(np.asarray(sel, np.int64)).to(self.device)
        spec = torch.fft.fft2(win) * (self.ry[idx][:, :, None] * self.rx[idx][:, None, :])
        m, N = self.m, self.N
        return torch.fft.ifft2(spec)[:, m:m + N, m:m + N]

    def far_field(self, obj: torch.Tensor, probe: torch.Tensor, sel: np.ndarray) -> torch.Tensor:
        """fft2(P·patch)/N, in FFT order: the counts are stored ifftshift-ed once, so no fftshift per step."""
        return torch.fft.fft2(probe * self.patches(obj, sel)) / self.N

    def far_field_gradient(self, F: torch.Tensor, sel: np.ndarray) -> tuple[torch.Tensor, float]:
        """(∂L_w/∂F* = w·(1 − n/λ)·F with w = λ/(λ + n), Σ deviance) for the batch — the surrogate's gradient
        written out, so that autograd only runs through the linear part (extraction, probe, FFT)."""
        lam = F.real.square() + F.imag.square()
        n = self.counts[torch.from_numpy(np.asarray(sel, np.int64)).to(self.device)]
        w = lam / (lam + n + R.WEIGHT_EPS) * self.valid
        ratio = torch.where(n > 0, n, torch.ones_like(n)) / (lam + physics.LOSS_EPS)
        dev = ((lam - n + n * torch.log(ratio)) * self.valid).to(torch.float64).sum()
        return w * (1.0 - n / (lam + physics.LOSS_EPS)) * F, float(dev)

    def _illumination(self, weight: torch.Tensor, sel: np.ndarray) -> torch.Tensor:
        out = torch.zeros(self.problem.shape, dtype=torch.float32, device=self.device)
        m, N = self.m, self.N
        for i in sel:
            x, y = self.corners[i]
            out[y + m:y + m + N, x + m:x + m + N] += weight
        return out

    def _gradients(self, obj: torch.Tensor, probe: torch.Tensor, sel: np.ndarray, with_probe: bool
                   ) -> tuple[torch.Tensor, torch.Tensor | None, float]:
        """(∂L_w/∂O*, ∂L_w/∂P* or None, Σ deviance) — autograd through the linear part of the model."""
        o = obj.detach().requires_grad_(True)
        p = probe.detach().requires_grad_(with_probe)
        F = self.far_field(o, p, sel)
        dF, dev = self.far_field_gradient(F.detach(), sel)
        # autograd's complex convention: the gradient returned is 2·∂L/∂z*. The vector–Jacobian product with
        # v = 2·dF is taken as the gradient of the real scalar Re Σ conj(v)·F (the same product, bit for bit):
        # passing ``grad_outputs`` instead makes torch import sympy on its first call (0.4 s, most of a short
        # refinement's first epoch).
        surrogate = (torch.conj(2 * dF) * F).real.sum()
        grads = torch.autograd.grad(surrogate, [o, p] if with_probe else [o])
        return grads[0] / 2, (grads[1] / 2 if with_probe else None), dev

    def gradients(self, obj: torch.Tensor, probe: torch.Tensor, sel: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, float]:
        """Level-0 parity: (G_O, G_P, Σ deviance) in numpy."""
        g_obj, g_probe, dev = self._gradients(obj, probe, sel, True)
        return g_obj.numpy(), g_probe.numpy(), dev

    def step(self, obj: torch.Tensor, probe: torch.Tensor, sel: np.ndarray, update_probe: bool,
             step_size: float | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
        """One update (engine.refine.step): returns (object, probe, summed deviance of the batch before it)."""
        cfg = self.cfg
        alpha = cfg.step if step_size is None else step_size
        g_obj, g_probe, dev = self._gradients(obj, probe, sel, update_probe)
        with torch.no_grad():
            beta = cfg.regularization
            den = _normaliser(self._illumination(probe.abs().square(), sel), beta)
            new_obj = obj - alpha * g_obj / den
            new_probe = probe
            if update_probe:
                inten = self.patches(obj, sel).abs().square().sum(dim=0)
                new_probe = probe - alpha * g_probe / _normaliser(inten, beta)
        return new_obj.detach(), new_probe.detach(), dev


def _normaliser(intensity: torch.Tensor, beta: float) -> torch.Tensor:
    return (1.0 - beta) * intensity + beta * intensity.max()


def _as_tensor(a: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, np.complex64)).to(device)


def refine_step(problem: R.RefineProblem, state: R.RefineState, sel: np.ndarray, cfg: R.RefineConfig,
                update_probe: bool) -> tuple[R.RefineState, float]:
    """One step from ``state`` on ``sel`` (parity level 2: the same update as engine.refine.step)."""
    ref = Refiner(problem, cfg)
    obj, probe, dev = ref.step(_as_tensor(state.object, "cpu"), _as_tensor(state.probe, "cpu"), np.asarray(sel),
                               update_probe)
    return R.RefineState(obj.numpy().copy(), probe.numpy().copy()), dev


def _momentum(mask: torch.Tensor, eta: float, velocity: torch.Tensor, obj: torch.Tensor, begin: torch.Tensor):
    """The epoch's momentum on the lit pixels: (velocity, object)."""
    with torch.no_grad():
        velocity = torch.where(mask, eta * velocity + (obj - begin), torch.zeros_like(obj))
        return velocity, obj + eta * velocity


def refine(problem: R.RefineProblem, start: R.RefineState, cfg: R.RefineConfig, hooks: RefineHooks,
           device: str = "cpu") -> RefineResult:
    """engine.refine.refine on PyTorch, with progress and cancel through ``hooks`` (checked after every batch)."""
    from engine.torch.backend import cpu_threads

    if device == "cpu":
        torch.set_num_threads(cpu_threads())
    tensors = refine_loop.Tensors(tensor=lambda a: _as_tensor(a, device), copy=torch.clone, zeros_like=torch.zeros_like,
                                  momentum=_momentum, state=_state)  # steps update in place: kept states are copies
    return refine_loop.run(Refiner(problem, cfg, device), tensors, problem, start, cfg, hooks)


def _state(obj: torch.Tensor, probe: torch.Tensor) -> R.RefineState:
    return R.RefineState(obj.detach().cpu().numpy().copy(), probe.detach().cpu().numpy().copy())
