"""Immutable configuration, passed explicitly (no global params dict; docs/backends.md).

Each dataclass validates itself in ``__post_init__`` and raises ``ConfigError`` naming the one bad field.
``to_dict``/``from_dict`` round-trip through JSON for run.json and the bundle manifest.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from engine.backends import BACKENDS, DEFAULT_BACKEND
from engine.errors import ConfigError, require
from engine.schedule import SCHEDULES

LOSSES = ("poisson", "mae")
OBJECT_KINDS = ("lines", "grf", "dead_leaves")
PROBE_KINDS = ("disk", "gaussian")
SCAN_KINDS = ("raster", "random", "fermat")


@dataclass(frozen=True)
class ModelConfig:
    """The network of engine/weights.py. ``N`` is the pattern size, ``gridsize`` g gives C = g² patterns per group."""

    N: int = 64
    n_filters_scale: int = 2
    gridsize: int = 1
    #: The amplitude head is amplitude_max·sigmoid: |O| in (0, amplitude_max), and |O| = amplitude_max/2 at a zero
    #: logit. 2 puts a fully transmissive sample (|O| ≈ 1, or a little above: the photon scale is an estimate) at the
    #: sigmoid's steepest point, not at its saturated top; 1 is the published network (bundles made before this
    #: field existed are read with 1).
    amplitude_max: float = 2.0
    #: Negative slope of the hidden layers' leaky ReLU (0: plain ReLU, the network of bundles written before this
    #: field existed). Plain ReLU left most units dead after 20 epochs (46 of 64 in the amplitude decoder's first
    #: layer, never positive on the held-out scan) and the amplitude flat; 0.1 keeps a gradient through every unit
    #: (fixture, 3 seeds: held-out amplitude SSIM 0.34-0.42 → 0.51-0.54; docs/performance.md).
    relu_slope: float = 0.1

    def __post_init__(self) -> None:
        require(isinstance(self.N, int) and self.N in (32, 64, 128, 256), "N", "one of 32, 64, 128, 256")
        require(isinstance(self.amplitude_max, (int, float)) and 0 < self.amplitude_max <= 16, "amplitude_max",
               "a number in (0, 16]")
        require(isinstance(self.relu_slope, (int, float)) and 0 <= self.relu_slope < 1, "relu_slope",
                "a number in [0, 1)")
        require(isinstance(self.n_filters_scale, int) and 1 <= self.n_filters_scale <= 8,
               "n_filters_scale", "an integer from 1 to 8")
        require(isinstance(self.gridsize, int) and 1 <= self.gridsize <= 3, "gridsize", "1, 2 or 3")

    @property
    def channels(self) -> int:
        return self.gridsize * self.gridsize

    @property
    def n_blocks(self) -> int:
        """Encoder depth: the bottleneck is always 8×8 (3 blocks for N=64, 4 for N=128)."""
        return int(math.log2(self.N)) - 3

    @property
    def encoder_filters(self) -> tuple[int, ...]:
        return tuple(32 * self.n_filters_scale * 2**i for i in range(self.n_blocks))

    @property
    def decoder_filters(self) -> tuple[int, ...]:
        """Decoder blocks upsample 8 → N/2; the heads predict the central N/2 region of the patch."""
        return tuple(reversed(self.encoder_filters[:-1]))


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-3
    loss: str = "poisson"
    n_groups: int | None = None  # None: one group per pattern
    val_fraction: float = 0.1
    seed: int = 0
    neighbours: int = 4  # KD-tree candidates per group member pool (>= C)
    augment: bool = True  # orientation augmentation where the probe allows it (engine/augment.py)
    lr_schedule: str = "constant"  # engine/schedule.py: constant | cosine

    def __post_init__(self) -> None:
        require(isinstance(self.epochs, int) and self.epochs >= 1, "epochs", "an integer >= 1")
        require(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", "an integer >= 1")
        require(isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1,
               "learning_rate", "a number in (0, 1)")
        require(self.loss in LOSSES, "loss", f"one of {', '.join(LOSSES)}")
        require(self.n_groups is None or (isinstance(self.n_groups, int) and self.n_groups >= 1),
               "n_groups", "an integer >= 1 (or unset for one group per pattern)")
        require(isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 0.9,
               "val_fraction", "a number in [0, 0.9)")
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", "an integer >= 0")
        require(isinstance(self.neighbours, int) and self.neighbours >= 1, "neighbours", "an integer >= 1")
        require(isinstance(self.augment, bool), "augment", "true or false")
        require(self.lr_schedule in SCHEDULES, "lr_schedule", " or ".join(SCHEDULES))


@dataclass(frozen=True)
class InferenceConfig:
    batch_size: int = 64
    stitch_weight: str = "probe"  # "probe": |P|² on the predicted region; "uniform": the predicted region

    def __post_init__(self) -> None:
        require(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", "an integer >= 1")
        require(self.stitch_weight in ("probe", "uniform"), "stitch_weight", "probe or uniform")


@dataclass(frozen=True)
class SimulationConfig:
    object_kind: str = "lines"
    probe_kind: str = "disk"
    scan_kind: str = "raster"
    N: int = 64
    n_positions: int = 256
    object_size: int = 160
    nphotons: float = 1e9
    probe_radius: float = 10.0  # pixels (disk radius or Gaussian sigma·2)
    probe_defocus: float = 0.0  # quadratic phase, radians at the probe radius
    scan_step: float = 6.0  # pixels, raster / fermat spacing
    jitter: float = 0.5  # pixels, raster jitter (uniform ±)
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.object_kind in OBJECT_KINDS, "object_kind", f"one of {', '.join(OBJECT_KINDS)}")
        require(self.probe_kind in PROBE_KINDS, "probe_kind", f"one of {', '.join(PROBE_KINDS)}")
        require(self.scan_kind in SCAN_KINDS, "scan_kind", f"one of {', '.join(SCAN_KINDS)}")
        require(isinstance(self.N, int) and self.N >= 8 and self.N % 2 == 0, "N", "an even integer >= 8")
        require(isinstance(self.n_positions, int) and self.n_positions >= 1, "n_positions", "an integer >= 1")
        require(isinstance(self.object_size, int) and self.object_size >= self.N + 2,
               "object_size", f"an integer >= N + 2 ({self.N + 2})")
        require(isinstance(self.nphotons, (int, float)) and math.isfinite(self.nphotons) and self.nphotons > 0,
               "nphotons", "a positive finite number")
        require(isinstance(self.probe_radius, (int, float)) and 0 < self.probe_radius <= self.N / 2,
               "probe_radius", f"a number in (0, N/2 = {self.N / 2}]")
        require(isinstance(self.scan_step, (int, float)) and self.scan_step > 0, "scan_step", "a positive number")
        require(isinstance(self.jitter, (int, float)) and self.jitter >= 0, "jitter", "a number >= 0")
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", "an integer >= 0")


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs, in one immutable object."""

    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    backend: str = DEFAULT_BACKEND

    def __post_init__(self) -> None:
        require(self.backend in BACKENDS, "backend", f"one of {', '.join(BACKENDS)}")


_SECTIONS = {"model": ModelConfig, "training": TrainingConfig, "inference": InferenceConfig}


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(d: dict) -> RunConfig:
    """Rebuild a RunConfig from ``to_dict`` output; unknown keys are refused so typos do not pass silently."""
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key in _SECTIONS:
            cls = _SECTIONS[key]
            if key == "model":  # written before a field existed: the network those bundles were trained as
                value = {"amplitude_max": 1.0, "relu_slope": 0.0, **value}
            if key == "training":  # written before orientation augmentation existed: trained without it
                value = {"augment": False, **value}
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = set(value) - names
            require(not unknown, f"{key}.{sorted(unknown)[0] if unknown else ''}", "a known field")
            kwargs[key] = cls(**value)
        elif key == "backend":
            kwargs[key] = value
        else:
            raise ConfigError(key, "a known section (model, training, inference, backend)")
    return RunConfig(**kwargs)
