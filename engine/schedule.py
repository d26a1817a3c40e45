"""The learning rate of each training epoch — one pure function both backends call at the start of an epoch.

``constant``: the configured rate throughout (the default). ``cosine``: from the configured rate down to 1 % of it
at the last epoch, along half a cosine. Measured on the benchmark scans (docs/performance.md "Learning-rate
decay"): with 60 epochs, 1e-3 → 1e-5, the held-out amplitude SSIM 0.708 → 0.747 and complex NRMSE 0.123 → 0.119; the
decay matters where training is long enough to settle, so it is the ten-minute setting, not the fixture's default.
Set per epoch rather than per step so that a resumed run (which restarts at an epoch) follows the same curve.
"""
from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")
#: Where the cosine ends, as a fraction of the configured rate.
COSINE_FINAL_FRACTION = 0.01


def learning_rate(base: float, schedule: str, epoch: int, epochs: int) -> float:
    """The rate of 0-based ``epoch`` of ``epochs``."""
    if schedule == "constant" or epochs <= 1:
        return float(base)
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}")
    final = base * COSINE_FINAL_FRACTION
    return float(final + 0.5 * (base - final) * (1.0 + math.cos(math.pi * min(epoch, epochs - 1) / (epochs - 1))))
