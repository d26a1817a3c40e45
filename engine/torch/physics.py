"""The differentiable physics layer and losses in torch, mirroring engine/physics.py line for line.

engine/physics.py is the definition (conventions, constants, formulas); this file only translates it to torch,
complex64, so that gradients flow from the losses back to the network's amplitude and phase. The frequency
grids ``ky``/``kx`` are ``np.fft.fftfreq`` values passed in as constants (same grid in every backend).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from engine.physics import COVERAGE_MIN, LOSS_EPS, merge_pad, merge_window


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
    """Coverage-weighted merge of a group's patches (..., C, N, N) into one region (..., R, R).

    offsets (..., C, 2) as (dx, dy) from the group centre; mask (N, N) is each patch's weight (default
    ``engine.physics.merge_window(N)``). ``region = Σ shift(w·O) / max(Σ shift(w), COVERAGE_MIN)``, exactly as
    the oracle: normalised where covered, fading continuously to 0 below.
    """
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


def reextract_group(region: torch.Tensor, offsets: torch.Tensor, N: int,
                    ky: torch.Tensor | None = None, kx: torch.Tensor | None = None) -> torch.Tensor:
    """Each member's N×N patch taken back out of the merged region (the inverse of the merge shift)."""
    p = merge_pad(N)
    shifted = fourier_shift(region[..., None, :, :], -offsets[..., 1], -offsets[..., 0], ky, kx)
    return shifted[..., p:p + N, p:p + N]


def forward_intensity(probe: torch.Tensor, obj: torch.Tensor, photon_scale: float = 1.0) -> torch.Tensor:
    """Expected counts ``|fftshift(fft2(photon_scale·P·O)) / N|²`` (float32)."""
    N = obj.shape[-1]
    psi = (photon_scale * probe) * obj
    F = torch.fft.fftshift(torch.fft.fft2(psi), dim=(-2, -1)) / N
    return F.real.square() + F.imag.square()


def poisson_deviance(lam: torch.Tensor, n: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``λ - n + n·log(n / (λ + eps))`` (0 where n = 0), evaluated in float64 for an exact reduction.

    The n = 0 case uses a safe ratio instead of ``xlogy`` so that its gradient stays finite (1 - n/λ).
    ``valid`` (N, N): the mean over valid pixels only (engine.physics.poisson_deviance); masked counts never read.
    """
    lam = lam.to(torch.float64)
    n = n.to(torch.float64)
    if valid is not None:
        n = torch.where(_mask(valid, n), n, torch.zeros_like(n))
    ratio = torch.where(n > 0, n, torch.ones_like(n)) / (lam + LOSS_EPS)
    return masked_mean(lam - n + n * torch.log(ratio), valid)


def amplitude_mae(lam: torch.Tensor, n: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean ``|sqrt(λ) - sqrt(n)|`` (sqrt-count units) over valid pixels; masked pixels read as 1 (finite sqrt
    gradient) and are left out of the mean."""
    lam = lam.to(torch.float64)
    n = n.to(torch.float64)
    if valid is not None:
        m = _mask(valid, n)
        lam, n = torch.where(m, lam, torch.ones_like(lam)), torch.where(m, n, torch.ones_like(n))
    return masked_mean(torch.abs(torch.sqrt(lam) - torch.sqrt(n)), valid)


def _mask(valid: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return valid.to(device=like.device, dtype=torch.bool).expand(like.shape)


def masked_mean(term: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean over the pixels where ``valid`` (N, N) is True (engine.physics.masked_mean)."""
    if valid is None:
        return torch.mean(term)
    m = _mask(valid, term)
    return torch.where(m, term, torch.zeros_like(term)).sum() / m.sum().to(torch.float64)


LOSSES = {"poisson": poisson_deviance, "mae": amplitude_mae}
