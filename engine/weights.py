"""Canonical parameters of the network: names, layout and the seeded initial values.

Canonical layout is torch's: conv kernels ``[out, in, 3, 3]`` (OIHW), biases ``[out]``. Keras stores kernels
HWIO; ``to_hwio``/``from_hwio`` are the one documented transpose between the two. Initial weights are drawn here
in numpy (Glorot-uniform kernels, zero biases) so that both backends can start from the very same values.

Network, read top to bottom (both backends implement exactly this; docs/backends.md):
  x (B, C, N, N) → encoder.{i}: act(conv0) → act(conv1) → maxpool 2×2, i = 0..n_blocks-1  (N → 8)
  for head in (amp, phase): {head}_decoder.{j}: act(conv0) → act(conv1) → nearest upsample ×2 (8 → N/2)
  act: leaky ReLU, negative slope ModelConfig.relu_slope (0.1; 0 = ReLU, bundles made before the field).
  amp_head: conv3×3 → amplitude_max·sigmoid;  phase_head: conv3×3 → π·tanh;  both (B, C, N/2, N/2), zero-padded
  to N.
All convolutions are 3×3, stride 1, 'same' zero padding, with bias.
"""
from __future__ import annotations

import numpy as np

from engine.config import ModelConfig


def parameter_specs(cfg: ModelConfig) -> list[tuple[str, tuple[int, ...]]]:
    """Ordered (name, canonical shape) of every parameter."""
    specs: list[tuple[str, tuple[int, ...]]] = []

    def conv(name: str, cin: int, cout: int) -> None:
        specs.append((f"{name}.weight", (cout, cin, 3, 3)))
        specs.append((f"{name}.bias", (cout,)))

    def blocks(prefix: str, cin: int, filters) -> int:
        """The conv0, conv1 pair of each block of an encoder or decoder; returns its output channels."""
        for i, f in enumerate(filters):
            conv(f"{prefix}.{i}.conv0", cin, f)
            conv(f"{prefix}.{i}.conv1", f, f)
            cin = f
        return cin

    bottleneck = blocks("encoder", cfg.channels, cfg.encoder_filters)
    for head in ("amp", "phase"):
        conv(f"{head}_head", blocks(f"{head}_decoder", bottleneck, cfg.decoder_filters), cfg.channels)
    return specs


def init_weights(cfg: ModelConfig, seed: int) -> dict[str, np.ndarray]:
    """Seeded Glorot-uniform kernels and zero biases, float32, in canonical layout."""
    rng = np.random.default_rng([seed, 31337])
    out: dict[str, np.ndarray] = {}
    for name, shape in parameter_specs(cfg):
        if name.endswith(".weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            fan_out = shape[0] * shape[2] * shape[3]
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            out[name] = rng.uniform(-limit, limit, size=shape).astype(np.float32)
        else:
            out[name] = np.zeros(shape, dtype=np.float32)
    return out


def to_hwio(w: np.ndarray) -> np.ndarray:
    """Canonical OIHW conv kernel → Keras HWIO."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def from_hwio(w: np.ndarray) -> np.ndarray:
    """Keras HWIO conv kernel → canonical OIHW."""
    return np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1)))


def check_weights(cfg: ModelConfig, weights: dict[str, np.ndarray]) -> str | None:
    """None when ``weights`` hold exactly the canonical tensors; otherwise what is wrong, in one line."""
    specs = dict(parameter_specs(cfg))
    missing = [n for n in specs if n not in weights]
    if missing:
        return f"missing tensor {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    extra = [n for n in weights if n not in specs]
    if extra:
        return f"unexpected tensor {extra[0]}"
    for n, shape in specs.items():
        if tuple(weights[n].shape) != shape:
            return f"tensor {n} has shape {tuple(weights[n].shape)}, expected {shape}"
        if not np.all(np.isfinite(weights[n])):
            return f"tensor {n} holds NaN or Inf"
    return None


def require_fit(cfg: ModelConfig | None, weights: dict[str, np.ndarray]) -> None:
    """ValueError unless ``weights`` fit ``cfg``'s model (no check without a cfg): what every backend's
    ``load_canonical`` asks before copying canonical weights in."""
    problem = None if cfg is None else check_weights(cfg, weights)
    if problem:
        raise ValueError(f"weights do not fit the model: {problem}")
