"""Refinement on TensorFlow: engine/refine.py's update, with the gradient from GradientTape (docs/refinement.md).

Each step: windows of the object at the batch's corners (``tf.gather_nd``) → band-limited shift by −fraction →
crop → far field of P·patch; ∂L_w/∂F* of the Newton-weighted Poisson surrogate is written out and the tape carries
it back through the linear part (extraction, probe, FFT) to ∂/∂O* and ∂/∂P*. The step is one ``tf.function`` with a
free batch dimension (one trace); the loop (batches in the shared order, epoch momentum, hooks) is
engine.refine_loop.run, shared with the other backend.
"""
from __future__ import annotations

import numpy as np

from engine.tf.framework import tf  # first: imports TF without matplotlib.pyplot
from engine import physics
from engine import refine as R
from engine import refine_loop
from engine.backend_api import RefineHooks, RefineResult


class Refiner:
    """The problem as device constants and the compiled step; one per refinement, nothing global."""

    def __init__(self, problem: R.RefineProblem, cfg: R.RefineConfig):
        self.problem, self.cfg = problem, cfg
        N, m, L = problem.N, problem.margin, problem.L
        self.N, self.m, self.L = N, m, L
        counts = np.fft.ifftshift(np.asarray(problem.counts, np.float32), axes=(-2, -1))  # FFT order, no fftshift
        self.counts = tf.constant(counts)
        k = np.fft.fftfreq(L)
        self.ry = tf.constant(physics.ramp_1d(k, -problem.fractions[:, 1], np.complex64))
        self.rx = tf.constant(physics.ramp_1d(k, -problem.fractions[:, 0], np.complex64))
        cy, cx = problem.corners[:, 1], problem.corners[:, 0]
        self.rows = tf.constant((cy[:, None] + np.arange(L)).astype(np.int32))  # (M, L) window rows
        self.cols = tf.constant((cx[:, None] + np.arange(L)).astype(np.int32))  # (M, L) window columns
        self.centres = tf.constant(np.stack([cy + m, cx + m], axis=-1).astype(np.int32))  # (M, 2) patch corners
        self.shape = problem.shape
        self.mask = tf.constant(R.momentum_mask(problem))
        valid = np.ones((N, N), bool) if problem.valid is None else problem.valid
        self.valid = tf.constant(np.fft.ifftshift(valid).astype(np.float32))  # FFT order
        sel = tf.TensorSpec((None,), tf.int32)
        obj = tf.TensorSpec(problem.shape, tf.complex64)
        probe = tf.TensorSpec((N, N), tf.complex64)
        alpha = tf.TensorSpec((), tf.float32)
        # XLA: one compiled step (per batch size) fuses the elementwise work around the FFTs: 2× on 2 cores
        self.step_object = tf.function(lambda o, p, s, a: self._step(o, p, s, a, False), autograph=False,
                                       jit_compile=True, input_signature=[obj, probe, sel, alpha])
        self.step_both = tf.function(lambda o, p, s, a: self._step(o, p, s, a, True), autograph=False,
                                     jit_compile=True, input_signature=[obj, probe, sel, alpha])

    # --------------------------------------------------------------------------------- model, top to bottom
    def patches(self, obj: tf.Tensor, sel: tf.Tensor) -> tf.Tensor:
        """(B, N, N): windows shifted by −fraction (band-limited) and cropped to their centre.

        Windows are gathered as rows, then columns (two ``tf.gather``): half the time of one ``gather_nd`` over
        (B, L, L, 2) indices, mostly in the backward scatter.
        """
        rows = tf.gather(obj, tf.gather(self.rows, sel))  # (B, L, W)
        win = tf.gather(rows, tf.gather(self.cols, sel), axis=2, batch_dims=1)  # (B, L, L)
        ramp = tf.gather(self.ry, sel)[:, :, None] * tf.gather(self.rx, sel)[:, None, :]
        m, N = self.m, self.N
        return tf.signal.ifft2d(tf.signal.fft2d(win) * ramp)[:, m:m + N, m:m + N]

    def far_field_gradient(self, F: tf.Tensor, sel: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(∂L_w/∂F* = w·(1 − n/λ)·F with w = λ/(λ + n), Σ deviance in float64) — as engine.torch.refine."""
        lam = tf.math.square(tf.math.real(F)) + tf.math.square(tf.math.imag(F))
        n = tf.gather(self.counts, sel)
        w = lam / (lam + n + R.WEIGHT_EPS) * self.valid
        ratio = tf.where(n > 0, n, tf.ones_like(n)) / (lam + physics.LOSS_EPS)
        dev = tf.reduce_sum(tf.cast((lam - n + n * tf.math.log(ratio)) * self.valid, tf.float64))
        return tf.cast(w * (1.0 - n / (lam + physics.LOSS_EPS)), tf.complex64) * F, dev

    def _illumination(self, weight: tf.Tensor, sel: tf.Tensor) -> tf.Tensor:
        """Σ of ``weight`` (N×N) at the batch's integer positions on the grid (engine.refine.batch_illumination),
        as the circular convolution of the positions' impulses with ``weight`` (two real FFTs of the grid: 5× faster
        than scattering B·N² values; no window wraps, since every window lies inside the grid)."""
        impulses = tf.scatter_nd(tf.gather(self.centres, sel), tf.ones(tf.shape(sel), tf.float32), self.shape)
        kernel = tf.pad(weight, [[0, self.shape[0] - self.N], [0, self.shape[1] - self.N]])
        conv = tf.signal.irfft2d(tf.signal.rfft2d(impulses) * tf.signal.rfft2d(kernel), fft_length=self.shape)
        return tf.maximum(conv, 0.0)  # round-off below 0 where the sum is 0

    def _gradients(self, obj: tf.Tensor, probe: tf.Tensor, sel: tf.Tensor, with_probe: bool):
        """(∂L_w/∂O*, ∂L_w/∂P* or None, Σ deviance) — the tape through the linear part of the model."""
        with tf.GradientTape() as tape:
            tape.watch(obj)
            if with_probe:
                tape.watch(probe)
            F = tf.signal.fft2d(probe * self.patches(obj, sel)) / tf.cast(self.N, tf.complex64)
        dF, dev = self.far_field_gradient(tf.stop_gradient(F), sel)
        # TensorFlow's complex convention: the gradient passed in and returned is 2·∂L/∂z*
        grads = tape.gradient(F, [obj, probe] if with_probe else [obj], output_gradients=2 * dF)
        g_obj = tf.convert_to_tensor(grads[0])  # the gathers' gradient comes as IndexedSlices: summed, dense
        return g_obj / 2, (grads[1] / 2 if with_probe else None), dev

    def gradients(self, obj: tf.Tensor, probe: tf.Tensor, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Level-0 parity: (G_O, G_P, Σ deviance) in numpy."""
        g_obj, g_probe, dev = self._gradients(obj, probe, tf.constant(np.asarray(sel, np.int32)), True)
        return g_obj.numpy(), g_probe.numpy(), float(dev)

    def _step(self, obj: tf.Tensor, probe: tf.Tensor, sel: tf.Tensor, alpha: tf.Tensor, update_probe: bool):
        g_obj, g_probe, dev = self._gradients(obj, probe, sel, update_probe)
        beta = self.cfg.regularization
        a = tf.cast(alpha, tf.complex64)
        den = _normaliser(self._illumination(tf.math.square(tf.abs(probe)), sel), beta)
        new_obj = obj - a * g_obj / tf.cast(den, tf.complex64)
        new_probe = probe
        if update_probe:
            inten = tf.reduce_sum(tf.math.square(tf.abs(self.patches(obj, sel))), axis=0)
            new_probe = probe - a * g_probe / tf.cast(_normaliser(inten, beta), tf.complex64)
        return new_obj, new_probe, dev

    def step(self, obj: tf.Tensor, probe: tf.Tensor, sel: np.ndarray, update_probe: bool,
             step_size: float | None = None):
        fn = self.step_both if update_probe else self.step_object
        alpha = tf.constant(self.cfg.step if step_size is None else step_size, tf.float32)
        new_obj, new_probe, dev = fn(obj, probe, tf.constant(np.asarray(sel, np.int32)), alpha)
        return new_obj, new_probe, float(dev)


def _normaliser(intensity: tf.Tensor, beta: float) -> tf.Tensor:
    return (1.0 - beta) * intensity + beta * tf.reduce_max(intensity)


def _c64(a: np.ndarray) -> tf.Tensor:
    return tf.constant(np.asarray(a, np.complex64))


def refine_step(problem: R.RefineProblem, state: R.RefineState, sel: np.ndarray, cfg: R.RefineConfig,
                update_probe: bool) -> tuple[R.RefineState, float]:
    """One step from ``state`` on ``sel`` (parity level 2: the same update as engine.refine.step)."""
    obj, probe, dev = Refiner(problem, cfg).step(_c64(state.object), _c64(state.probe), np.asarray(sel), update_probe)
    return R.RefineState(obj.numpy(), probe.numpy()), dev


def _momentum(mask: tf.Tensor, eta: float, velocity: tf.Tensor, obj: tf.Tensor, begin: tf.Tensor):
    """The epoch's momentum on the lit pixels: (velocity, object)."""
    eta = tf.cast(eta, tf.complex64)
    velocity = tf.where(mask, eta * velocity + (obj - begin), tf.zeros_like(obj))
    return velocity, obj + eta * velocity


#: The loop's TensorFlow operations; tensors are immutable, so a kept state needs no copy.
TENSORS = refine_loop.Tensors(tensor=_c64, copy=lambda t: t, zeros_like=tf.zeros_like, momentum=_momentum,
                              state=lambda obj, probe: R.RefineState(obj.numpy(), probe.numpy()))


def refine(problem: R.RefineProblem, start: R.RefineState, cfg: R.RefineConfig, hooks: RefineHooks
           ) -> RefineResult:
    """engine.refine.refine on TensorFlow, with progress and cancel through ``hooks`` (checked after every batch)."""
    return refine_loop.run(Refiner(problem, cfg), TENSORS, problem, start, cfg, hooks)
