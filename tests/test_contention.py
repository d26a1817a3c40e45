"""engine/contention.py: what other processes took of the machine while a timed child ran, and what the parity
report and the Parity screen say about it."""
from __future__ import annotations

import json
import time

import pytest

from console.parity_report import load_parity
from engine import contention
from engine.parity.report import contention_note


def test_other_cores_is_the_machine_s_cpu_time_minus_ours_over_the_wall_time():
    assert contention.other_cores(busy=3.0, own=1.0, wall=2.0) == pytest.approx(1.0)
    assert contention.other_cores(busy=1.0, own=1.2, wall=1.0) == 0.0  # tick rounding never goes negative
    assert contention.other_cores(busy=1.0, own=0.0, wall=0.0) == 0.0


def test_reliable_below_a_fifth_of_the_cores():
    assert contention.reliable(0.4, 2) is True and contention.reliable(0.41, 2) is False
    assert contention.reliable(None, 2) is None


def test_machine_busy_seconds_counts_our_own_work():
    before_busy, before_own = contention.machine_busy_seconds(), time.process_time()
    if before_busy is None:
        pytest.skip("no /proc/stat on this system")
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # spin 0.3 CPU-seconds
        pass
    busy = contention.machine_busy_seconds() - before_busy
    own = time.process_time() - before_own
    tick = 1 / 100  # USER_HZ ticks, and our own accounting's rounding
    assert busy >= own - 3 * tick


def _report(tmp_path, contention_record):
    runtimes = {"tensorflow": {"train per epoch (s)": 2.0}, "torch": {"train per epoch (s)": 2.6}}
    (tmp_path / "parity.json").write_text(json.dumps({"checks": [], "runtimes": runtimes,
                                                       "contention": contention_record}))
    return load_parity(tmp_path)


def test_the_parity_view_says_when_runtimes_were_measured_on_a_busy_machine(tmp_path):
    busy = {"cores": 2, "other_cores_max": 0.93, "load_average": [2.1, 1.5, 0.9], "reliable": False}
    view = _report(tmp_path, busy)
    assert view.runtimes_reliable is False and view.runtime_note == "others used 0.9 of 2 cores"
    assert contention_note(busy).startswith("**Unreliable runtimes:** other processes used up to 0.93 of 2 cores")
    quiet = {"cores": 2, "other_cores_max": 0.05, "load_average": [1.0, 0.8, 0.5], "reliable": True}
    assert _report(tmp_path, quiet).runtimes_reliable is True
    assert contention_note(quiet).startswith("Quiet machine:")
    assert _report(tmp_path, None).runtimes_reliable is None and contention_note(None) == ""  # older reports
