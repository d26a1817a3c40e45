"""How much of the machine other processes took while a timed child ran — the trust to put in a runtime ratio.

The load average cannot say it: it counts the measured job itself, and decays over a minute. Here the kernel's
whole-machine CPU time (``/proc/stat``) over a child's wall time, minus the child's own CPU time (``getrusage`` of
waited-for children), is what everything else used, in cores. On two cores, another process holding half a core
moves a framework's epoch time by tens of percent (docs/performance.md), so a ratio measured then says little.
"""
from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

#: Other processes' mean use above this fraction of the machine's cores makes a runtime comparison unreliable.
RELIABLE_OTHER_FRACTION = 0.2


def machine_busy_seconds() -> float | None:
    """CPU-seconds all processes have used since boot, summed over cores (None where /proc/stat is missing)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def other_cores(busy: float, own: float, wall: float) -> float:
    """Mean cores used by others: the machine's CPU-seconds minus ours, over the wall time (never below 0)."""
    return max(0.0, (busy - own) / wall) if wall > 0 else 0.0


@dataclass
class Meter:
    """Start before launching one child, ``stop`` after waiting for it: other processes' mean cores meanwhile."""

    wall0: float = 0.0
    busy0: float | None = None
    own0: float = 0.0

    @classmethod
    def start(cls) -> "Meter":
        return cls(time.monotonic(), machine_busy_seconds(), children_cpu_seconds() + _self_cpu())

    def stop(self) -> float | None:
        busy1 = machine_busy_seconds()
        if self.busy0 is None or busy1 is None:
            return None
        own = children_cpu_seconds() + _self_cpu() - self.own0
        return other_cores(busy1 - self.busy0, own, time.monotonic() - self.wall0)


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cores() -> int:
    return os.cpu_count() or 1


def reliable(max_other: float | None, n_cores: int) -> bool | None:
    """Whether runtimes measured with others using up to ``max_other`` cores can be compared (None: unknown)."""
    return None if max_other is None else max_other <= RELIABLE_OTHER_FRACTION * n_cores
