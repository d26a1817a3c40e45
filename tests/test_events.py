"""Event protocol: schema round-trip, validation, a parser that survives anything, throttling, sinks."""
from __future__ import annotations

import io
import json
import os
import random
import sys

import numpy as np
import pytest

from engine.errors import InputError
from engine.events import (EVENT_TYPES, PROTOCOL_VERSION, STAGES, EventWriter, open_sink, parse_line,
                           validate_event)

EXAMPLES = {
    "run_started": dict(kind="train", backend="torch", run_dir="/r/x", pid=42, dataset={"path": "d.npz"}),
    "stage": dict(stage="training"),
    "epoch": dict(epoch=3, epochs=10, train_loss=0.25, val_loss=0.3, lr=1e-3, seconds=1.5, samples_per_s=120.0),
    "progress": dict(done=5, total=64, unit="batch", stage="training"),
    "metric": dict(name="phase_ssim", value=0.81, convention="scanned region, offset+ramp removed"),
    "artifact": dict(kind="recon", path="recon.npz"),
    "log": dict(level="info", message="hello"),
    "warning": dict(message="careful"),
    "error": dict(kind="RuntimeError", message="boom", traceback="Traceback ...\nRuntimeError: boom\n"),
    "run_finished": dict(status="ok", exit_code=0, seconds=12.5),
}


class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_examples_cover_every_type():
    assert set(EXAMPLES) == set(EVENT_TYPES)


def test_round_trip_every_type_through_writer_and_parser():
    clock = FakeClock()
    sink, mirror = io.StringIO(), io.StringIO()
    w = EventWriter(sink, "20261123-190412-3f9a-train", clock=clock, mirror=mirror)
    emitted = []
    for i, (kind, fields) in enumerate(EXAMPLES.items()):
        clock.t += 0.5
        emitted.append(w.emit(kind, **fields))
    lines = sink.getvalue().splitlines()
    assert sink.getvalue() == mirror.getvalue()
    assert len(lines) == len(EXAMPLES)
    for i, (line, ev) in enumerate(zip(lines, emitted)):
        parsed = parse_line(line)
        assert parsed == ev
        assert validate_event(parsed) is None, (line, validate_event(parsed))
        assert parsed["v"] == PROTOCOL_VERSION and parsed["seq"] == i + 1
        assert parsed["t"] == pytest.approx(0.5 * (i + 1))
        assert parsed["run_id"] == "20261123-190412-3f9a-train"
        for key, value in EXAMPLES[parsed["type"]].items():
            assert parsed[key] == value


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_validate_names_each_missing_required_field(kind):
    w = EventWriter(io.StringIO(), "r")
    ev = w.emit(kind, **EXAMPLES[kind])
    for field in ("v", "type", "run_id", "seq", "t", *EVENT_TYPES[kind]):
        broken = {k: v for k, v in ev.items() if k != field}
        reason = validate_event(broken)
        assert reason is not None and field in reason


def test_validate_rejects_bad_values():
    w = EventWriter(io.StringIO(), "r")
    good = w.emit("stage", stage="training")
    assert validate_event({**good, "stage": "dancing"}) is not None
    assert validate_event({**good, "v": PROTOCOL_VERSION + 1}) is not None
    assert validate_event({**good, "seq": 0}) is not None
    assert validate_event({**good, "t": -1}) is not None
    fin = w.emit("run_finished", status="ok", exit_code=0)
    assert validate_event({**fin, "status": "great"}) is not None
    art = w.emit("artifact", kind="recon", path="recon.npz")
    assert validate_event({**art, "path": "/etc/passwd"}) is not None
    assert validate_event({**art, "path": "../other/recon.npz"}) is not None
    assert validate_event("not a dict") is not None


def test_writer_rejects_unknown_type():
    with pytest.raises(ValueError):
        EventWriter(io.StringIO(), "r").emit("telepathy", message="x")


def test_non_finite_and_numpy_values_are_json_safe():
    sink = io.StringIO()
    ev = EventWriter(sink, "r").emit("epoch", epoch=np.int64(1), epochs=2, train_loss=float("nan"),
                                     val_loss=np.float32(np.inf), lr=np.float32(0.5), seconds=1.0,
                                     samples_per_s=None)
    line = sink.getvalue()
    assert "NaN" not in line and "Infinity" not in line
    parsed = json.loads(line)
    assert parsed == ev
    assert parsed["epoch"] == 1 and parsed["train_loss"] is None and parsed["val_loss"] is None
    assert parsed["lr"] == 0.5
    assert validate_event(parsed) is None


def _garbage_lines() -> list:
    good = json.dumps({"v": 1, "type": "epoch", "run_id": "r", "seq": 1, "t": 0.1, "epoch": 1, "epochs": 2,
                       "train_loss": 0.5, "val_loss": None, "lr": None, "seconds": 1, "samples_per_s": None})
    rng = random.Random(1234)
    lines = ["", "\n", "   ", "not json", "{", "}", "[1, 2]", '"a string"', "null", "42", "true",
             '{"type": 5}', '{"type": "telepathy"}', '{"no_type": 1}', "\x00\x01\x02", "\ufeff{}",
             "NaN", '{"type": "log", "message": "\ud800"}', good[: len(good) // 2], good + good,
             "x" * 1_000_000, "[" * 1_000_000, '{"a":' * 100_000, b"\xff\xfe\x00garbage", None, 12]
    lines += ["".join(chr(rng.randrange(0, 0x2FFF)) for _ in range(rng.randrange(1, 300))) for _ in range(200)]
    lines += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(100)]
    return lines


def test_parser_never_raises_on_garbage():
    for line in _garbage_lines():
        ev = parse_line(line)
        assert isinstance(ev, dict) and ev["type"] in EVENT_TYPES
        if ev.get("raw"):
            assert ev["type"] == "log" and isinstance(ev["message"], str)
            assert len(ev["message"]) < 1000  # a 1 MB line never becomes a 1 MB log message


def test_parser_turns_every_partial_line_into_a_raw_log():
    line = json.dumps({"v": 1, "type": "progress", "run_id": "r", "seq": 7, "t": 1.0, "done": 3, "total": 9})
    for cut in range(len(line)):
        ev = parse_line(line[:cut])
        assert ev["type"] == "log" and ev["raw"] is True
    assert parse_line(line)["done"] == 3
    assert parse_line(line + "\n")["done"] == 3


def test_parser_accepts_a_valid_1mb_event():
    message = "m" * 1_000_000
    sink = io.StringIO()
    EventWriter(sink, "r").emit("log", level="info", message=message)
    ev = parse_line(sink.getvalue())
    assert ev["message"] == message and "raw" not in ev


def test_progress_is_throttled_but_the_final_event_always_goes_out():
    clock = FakeClock()
    sink = io.StringIO()
    w = EventWriter(sink, "r", clock=clock, progress_hz=20)
    sent = [w.progress(i, 10_000) for i in range(1, 10_001)]  # a loop faster than any reader
    kept = [e for e in sent if e is not None]
    assert [e["done"] for e in kept] == [1, 10_000]
    sink2 = io.StringIO()
    w2 = EventWriter(sink2, "r", clock=clock, progress_hz=20)
    for i in range(1, 201):  # 2 seconds at 100 calls/s
        clock.t += 0.01
        w2.progress(i, 200)
    n = len(sink2.getvalue().splitlines())
    assert 38 <= n <= 42  # 20 per second, plus the final one
    assert parse_line(sink2.getvalue().splitlines()[-1])["done"] == 200


def test_progress_for_a_new_total_or_stage_is_not_dropped():
    w = EventWriter(io.StringIO(), "r", clock=FakeClock())
    assert w.progress(1, 10, stage="loading") is not None
    assert w.progress(2, 10, stage="loading") is None
    assert w.progress(1, 10, stage="training") is not None
    assert w.progress(1, 50, stage="training") is not None


class BrokenSink:
    def write(self, s):
        raise BrokenPipeError

    def flush(self):
        raise BrokenPipeError


def test_reader_going_away_does_not_kill_the_job():
    mirror = io.StringIO()
    w = EventWriter(BrokenSink(), "r", mirror=mirror)
    w.emit("log", level="info", message="one")
    w.emit("log", level="info", message="two")
    assert [parse_line(x)["message"] for x in mirror.getvalue().splitlines()] == ["one", "two"]


def test_open_sink_choices(tmp_path):
    assert open_sink(None, None) is None
    assert open_sink("-", None) is sys.stdout
    path = tmp_path / "ev.jsonl"
    sink = open_sink(str(path), None)
    EventWriter(sink, "r").emit("stage", stage=STAGES[0])
    sink.close()
    assert parse_line(path.read_text())["stage"] == STAGES[0]
    read_fd, write_fd = os.pipe()
    sink = open_sink(None, write_fd)
    w = EventWriter(sink, "r")
    w.emit("warning", message="via fd")
    w.close()
    with os.fdopen(read_fd) as fh:
        assert parse_line(fh.readline())["message"] == "via fd"


@pytest.mark.parametrize("events,fd,source", [("-", 5, "--events"), (None, -1, "--events-fd"),
                                                (None, 987, "--events-fd"), ("missing/dir/ev.jsonl", None, "--events")])
def test_open_sink_refuses_bad_choices(tmp_path, monkeypatch, events, fd, source):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as err:
        open_sink(events, fd)
    assert err.value.source == source
