"""The network of engine/weights.py as a torch ``nn.Module`` whose ``state_dict`` keys are the canonical names.

engine/weights.py is normative; the module tree below is laid out so that torch's own naming reproduces it
(``encoder.0.conv0.weight``, ``amp_decoder.1.conv1.bias``, ``phase_head.weight``), and torch's OIHW kernels are
the canonical layout — so loading and exporting weights is a plain copy, no transpose.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engine.config import ModelConfig
from engine.weights import require_fit


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True)


def _pool(x: torch.Tensor) -> torch.Tensor:
    """An encoder block's end: maxpool 2×2."""
    return F.max_pool2d(x, 2)


def _upsample(x: torch.Tensor) -> torch.Tensor:
    """A decoder block's end: nearest upsample ×2."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class Block(nn.Module):
    """act(conv0) → act(conv1) → ``resample`` (_pool in the encoder, _upsample in the decoders), act the leaky ReLU
    of ``slope`` (0: ReLU); conv0 and conv1 are the canonical parameter names (engine/weights.py)."""

    def __init__(self, cin: int, cout: int, resample, slope: float):
        super().__init__()
        self.conv0 = _conv(cin, cout)
        self.conv1 = _conv(cout, cout)
        self.resample = resample
        self.slope = float(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resample(self._act(self.conv1(self._act(self.conv0(x)))))

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        # In place on the convolution's fresh output (nothing else holds it; autograd differentiates both through
        # their result): one fewer activation-sized allocation per layer. The out-of-place form spent 17 % of a
        # cold CPU inference in page faults of those buffers (docs/performance.md); values are bit-identical.
        return F.leaky_relu(x, self.slope, inplace=True) if self.slope else F.relu(x, inplace=True)


def _stack(cin: int, filters, resample, slope: float) -> tuple[nn.ModuleList, int]:
    """The blocks of the encoder or of a decoder, ``filters`` wide, and the channels that come out."""
    blocks = []
    for f in filters:
        blocks.append(Block(cin, f, resample, slope))
        cin = f
    return nn.ModuleList(blocks), cin


class PtychoNet(nn.Module):
    """x (B, C, N, N) → (amplitude, phase), each (B, C, N, N) with the predicted N/2 centre, zero elsewhere."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.N = cfg.N
        self.amplitude_max = float(cfg.amplitude_max)
        C = cfg.channels
        self.encoder, bottleneck = _stack(C, cfg.encoder_filters, _pool, cfg.relu_slope)

        def decoder() -> tuple[nn.ModuleList, nn.Conv2d]:
            blocks, c = _stack(bottleneck, cfg.decoder_filters, _upsample, cfg.relu_slope)
            return blocks, _conv(c, C)

        self.amp_decoder, self.amp_head = decoder()
        self.phase_decoder, self.phase_head = decoder()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.encoder:
            x = block(x)
        a = x
        for block in self.amp_decoder:
            a = block(a)
        p = x
        for block in self.phase_decoder:
            p = block(p)
        amp = self.amplitude_max * torch.sigmoid(self.amp_head(a))
        phase = math.pi * torch.tanh(self.phase_head(p))
        return pad_center(amp, self.N), pad_center(phase, self.N)


def pad_center(a: torch.Tensor, N: int) -> torch.Tensor:
    """Zero-pad the last two axes symmetrically to N×N (mirrors engine.physics.pad_center)."""
    n = a.shape[-1]
    p = (N - n) // 2
    return F.pad(a, (p, N - n - p, p, N - n - p))


def load_canonical(model: PtychoNet, weights: dict[str, np.ndarray], cfg: ModelConfig | None = None) -> None:
    """Copy canonical numpy weights into ``model`` (exact; refuses anything but the canonical tensors)."""
    require_fit(cfg, weights)
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in weights.items()}
    model.load_state_dict(state, strict=True)


def canonical_state(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's parameters as canonical numpy arrays (float32 copies, OIHW)."""
    return {k: v.detach().cpu().to(torch.float32).contiguous().numpy().copy()
            for k, v in model.state_dict().items()}

