"""The differentiable physics layer and losses in TensorFlow, mirroring engine/physics.py line for line.

engine/physics.py is the definition (conventions, constants, formulas); this file only translates it to TF,
complex64, so that gradients flow from the losses back to the network's amplitude and phase. The frequency grids
``ky``/``kx`` are ``np.fft.fftfreq`` values passed in as float64 constants (the same grid in every backend).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from engine.tf.framework import tf  # first: imports TF without matplotlib.pyplot
from engine.physics import COVERAGE_MIN, LOSS_EPS, merge_pad, merge_window, reextract_with


def fftfreq(n: int) -> tf.Tensor:
    """``np.fft.fftfreq(n)`` as a float64 constant (ramps are built in double, then cast to complex64)."""
    return tf.constant(np.fft.fftfreq(n), dtype=tf.float64)


def shift_ramp(ky: tf.Tensor, kx: tf.Tensor, dy: tf.Tensor, dx: tf.Tensor) -> tf.Tensor:
    """Separable Fourier multiplier moving content by (+dy, +dx); shape (*dy.shape, len(ky), len(kx)).

    The phase is formed in float64 so that offsets up to N/4 keep float32 accuracy after the cast.
    """
    dy = tf.cast(dy, tf.float64)[..., None]
    dx = tf.cast(dx, tf.float64)[..., None]
    ay = -2.0 * math.pi * ky * dy
    ax = -2.0 * math.pi * kx * dx
    # Nyquist bin real (cos πd), as engine.physics.ramp_1d: the shift of a real array stays real.
    ry = tf.cast(tf.complex(tf.cos(ay), tf.sin(ay) * tf.cast(ky != -0.5, tf.float64)), tf.complex64)
    rx = tf.cast(tf.complex(tf.cos(ax), tf.sin(ax) * tf.cast(kx != -0.5, tf.float64)), tf.complex64)
    return ry[..., :, None] * rx[..., None, :]


def fourier_shift(a: tf.Tensor, dy: tf.Tensor, dx: tf.Tensor,
                  ky: tf.Tensor | None = None, kx: tf.Tensor | None = None) -> tf.Tensor:
    """Band-limited periodic shift of the last two axes: ``out[y, x] = a(y - dy, x - dx)`` (complex64)."""
    H, W = a.shape[-2], a.shape[-1]
    ky = fftfreq(H) if ky is None else ky
    kx = fftfreq(W) if kx is None else kx
    spec = tf.signal.fft2d(tf.cast(a, tf.complex64))
    return tf.signal.ifft2d(spec * shift_ramp(ky, kx, dy, dx))


def pad_last2(a: tf.Tensor, p: int) -> tf.Tensor:
    """Zero margin of p pixels on the last two axes."""
    rank = len(a.shape)
    return tf.pad(a, [[0, 0]] * (rank - 2) + [[p, p], [p, p]])


def merge_group(patches: tf.Tensor, offsets: tf.Tensor, mask: tf.Tensor | None = None,
                ky: tf.Tensor | None = None, kx: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """engine.physics.merge_group → (region, coverage); ky/kx: the padded region's frequency grids (fftfreq(R))."""
    N = patches.shape[-1]
    mask = tf.constant(merge_window(N)) if mask is None else tf.cast(mask, tf.float32)
    p = merge_pad(N)
    dx, dy = offsets[..., 0], offsets[..., 1]
    patches = tf.cast(patches, tf.complex64)
    num = tf.reduce_sum(fourier_shift(pad_last2(patches * tf.cast(mask, tf.complex64), p), dy, dx, ky, kx), axis=-3)
    cover = pad_last2(tf.broadcast_to(mask, tf.shape(patches)), p)
    cov = tf.reduce_sum(tf.math.real(fourier_shift(cover, dy, dx, ky, kx)), axis=-3)
    region = num / tf.cast(tf.maximum(cov, COVERAGE_MIN), tf.complex64)
    return region, cov


#: engine.physics.reextract_group: engine.physics.reextract_with's index maths around this module's fourier_shift
#: (``reextract_group(region, offsets, N[, ky, kx])``, complex64).
reextract_group = functools.partial(reextract_with, fourier_shift)


def object_patches(amp: tf.Tensor, phase: tf.Tensor) -> tf.Tensor:
    """O = amp·exp(i·phase), complex64."""
    return tf.complex(amp * tf.cos(phase), amp * tf.sin(phase))


def forward_intensity(probe: tf.Tensor, obj: tf.Tensor, photon_scale: float = 1.0) -> tf.Tensor:
    """Expected counts ``|fftshift(fft2(photon_scale·P·O)) / N|²`` (float32)."""
    N = obj.shape[-1]
    psi = (tf.cast(photon_scale, tf.complex64) * tf.cast(probe, tf.complex64)) * tf.cast(obj, tf.complex64)
    F = tf.signal.fftshift(tf.signal.fft2d(psi), axes=(-2, -1)) / tf.cast(N, tf.complex64)
    return tf.math.square(tf.math.real(F)) + tf.math.square(tf.math.imag(F))


def poisson_deviance(lam: tf.Tensor, n: tf.Tensor, valid: tf.Tensor | None = None) -> tf.Tensor:
    """engine.physics.poisson_deviance in float64, with ``xlogy``: 0 where n = 0 and so is its gradient there,
    which keeps the gradient ``1 - n/λ`` finite. Masked counts are never read."""
    lam, n = tf.cast(lam, tf.float64), _filled(n, valid, 0.0)
    return masked_mean(lam - n + tf.math.xlogy(n, n / (lam + LOSS_EPS)), valid)


def amplitude_mae(lam: tf.Tensor, n: tf.Tensor, valid: tf.Tensor | None = None) -> tf.Tensor:
    """engine.physics.amplitude_mae in float64; masked pixels read as 1 (a finite sqrt gradient)."""
    lam, n = _filled(lam, valid, 1.0), _filled(n, valid, 1.0)
    return masked_mean(tf.abs(tf.sqrt(lam) - tf.sqrt(n)), valid)


def _mask(valid: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    return tf.broadcast_to(tf.cast(valid, tf.bool), tf.shape(like))


def _filled(x: tf.Tensor, valid: tf.Tensor | None, value: float) -> tf.Tensor:
    """``x`` in float64, ``value`` on the pixels outside ``valid`` (N, N): what the masked losses read there."""
    x = tf.cast(x, tf.float64)
    return x if valid is None else tf.where(_mask(valid, x), x, tf.constant(value, tf.float64))


def masked_mean(term: tf.Tensor, valid: tf.Tensor | None) -> tf.Tensor:
    """Mean over the pixels where ``valid`` (N, N) is True (engine.physics.masked_mean)."""
    if valid is None:
        return tf.reduce_mean(term)
    return tf.reduce_sum(_filled(term, valid, 0.0)) / tf.reduce_sum(tf.cast(_mask(valid, term), tf.float64))


LOSSES = {"poisson": poisson_deviance, "mae": amplitude_mae}
