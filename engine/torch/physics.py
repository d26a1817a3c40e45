"""The differentiable physics layer and losses in torch, mirroring engine/physics.py line for line.

engine/physics.py is the definition (conventions, constants, formulas); this file only translates it to torch,
complex64, so that gradients flow from the losses back to the network's amplitude and phase. The frequency
grids ``ky``/``kx`` are ``np.fft.fftfreq`` values passed in as constants (same grid in every backend).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from engine.physics import COVERAGE_MIN, LOSS_EPS, merge_pad, merge_window, reextract_with


def fftfreq(n: int, device=None) -> torch.Tensor:
    """``np.fft.fftfreq(n)`` as a float64 constant (ramps are built in double, then cast to complex64)."""
    return torch.from_numpy(np.fft.fftfreq(n)).to(device)


def shift_ramp(ky: torch.Tensor, kx: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Separable Fourier multiplier moving content by (+dy, +dx); shape (*dy.shape, len(ky), len(kx)).

    The phase is formed in float64 so that large offsets (up to N/4) keep float32 accuracy after the cast.
    """
    dy = dy.to(torch.float64)[..., None]
    dx = dx.to(torch.float64)[..., None]
    ay, ax = -2 * math.pi * ky * dy, -2 * math.pi * kx * dx
    # Nyquist bin real (cos πd), as engine.physics.ramp_1d: the shift of a real array stays real.
    ry = torch.complex(torch.cos(ay), torch.sin(ay) * (ky != -0.5)).to(torch.complex64)
    rx = torch.complex(torch.cos(ax), torch.sin(ax) * (kx != -0.5)).to(torch.complex64)
    return ry[..., :, None] * rx[..., None, :]


def fourier_shift(a: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                  ky: torch.Tensor | None = None, kx: torch.Tensor | None = None) -> torch.Tensor:
    """Band-limited periodic shift of the last two axes: ``out[y, x] = a(y - dy, x - dx)`` (complex64)."""
    H, W = a.shape[-2:]
    ky = fftfreq(H, a.device) if ky is None else ky
    kx = fftfreq(W, a.device) if kx is None else kx
    spec = torch.fft.fft2(a.to(torch.complex64))
    return torch.fft.ifft2(spec * shift_ramp(ky, kx, dy, dx))


def pad_last2(a: torch.Tensor, p: int) -> torch.Tensor:
    """Zero margin of p pixels on the last two axes."""
    return torch.nn.functional.pad(a, (p, p, p, p))


def merge_group(patches: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor | None = None,
                ky: torch.Tensor | None = None, kx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """engine.physics.merge_group → (region, coverage); ky/kx: the padded region's frequency grids (fftfreq(R))."""
    N = patches.shape[-1]
    if mask is None:
        mask = torch.from_numpy(merge_window(N)).to(patches.device)
    p = merge_pad(N)
    dx, dy = offsets[..., 0], offsets[..., 1]
    num = fourier_shift(pad_last2(patches * mask, p), dy, dx, ky, kx).sum(dim=-3)
    cover = pad_last2(mask.to(torch.float32).expand(patches.shape), p)
    cov = fourier_shift(cover, dy, dx, ky, kx).real.sum(dim=-3)
    region = num / torch.clamp(cov, min=COVERAGE_MIN)
    return region, cov


#: engine.physics.reextract_group: engine.physics.reextract_with's index maths around this module's fourier_shift
#: (``reextract_group(region, offsets, N[, ky, kx])``, complex64).
reextract_group = functools.partial(reextract_with, fourier_shift)


def forward_intensity(probe: torch.Tensor, obj: torch.Tensor, photon_scale: float = 1.0) -> torch.Tensor:
    """Expected counts ``|fftshift(fft2(photon_scale·P·O)) / N|²`` (float32)."""
    N = obj.shape[-1]
    psi = (photon_scale * probe) * obj
    F = torch.fft.fftshift(torch.fft.fft2(psi), dim=(-2, -1)) / N
    return F.real.square() + F.imag.square()


def poisson_deviance(lam: torch.Tensor, n: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """engine.physics.poisson_deviance in float64. The n = 0 case uses a safe ratio instead of ``xlogy`` so that
    its gradient stays finite (1 - n/λ). Masked counts are never read."""
    lam, n = lam.to(torch.float64), _filled(n, valid, 0.0)
    ratio = torch.where(n > 0, n, torch.ones_like(n)) / (lam + LOSS_EPS)
    return masked_mean(lam - n + n * torch.log(ratio), valid)


def amplitude_mae(lam: torch.Tensor, n: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """engine.physics.amplitude_mae in float64; masked pixels read as 1 (a finite sqrt gradient)."""
    lam, n = _filled(lam, valid, 1.0), _filled(n, valid, 1.0)
    return masked_mean(torch.abs(torch.sqrt(lam) - torch.sqrt(n)), valid)


def _mask(valid: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return valid.to(device=like.device, dtype=torch.bool).expand(like.shape)


def _filled(x: torch.Tensor, valid: torch.Tensor | None, value: float) -> torch.Tensor:
    """``x`` in float64, ``value`` on the pixels outside ``valid`` (N, N): what the masked losses read there."""
    x = x.to(torch.float64)
    return x if valid is None else torch.where(_mask(valid, x), x, torch.full_like(x, value))


def masked_mean(term: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean over the pixels where ``valid`` (N, N) is True (engine.physics.masked_mean)."""
    if valid is None:
        return torch.mean(term)
    return _filled(term, valid, 0.0).sum() / _mask(valid, term).sum().to(torch.float64)


LOSSES = {"poisson": poisson_deviance, "mae": amplitude_mae}
