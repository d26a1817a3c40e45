"""The event protocol (docs/protocol.md §1): one JSON object per line from a job to whoever follows it.

Why a module of its own: the console, both backends and scripts must agree on one schema, and the reader must
survive anything a crashing child or noisy library writes (``parse_line`` never raises). The writer flushes every
line so a follower sees events as they happen, and throttles ``progress`` at the source so a fast loop cannot flood
a reader. docs/protocol.md documents every type with an example line.
"""
from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from typing import Any, Callable, TextIO

PROTOCOL_VERSION = 1

STAGES = ("loading", "grouping", "training", "inference", "stitching", "refining", "evaluating", "saving")
LOADING, GROUPING, TRAINING, INFERENCE, STITCHING, REFINING, EVALUATING, SAVING = STAGES
FINAL_STATUSES = ("ok", "failed", "cancelled")
OK, FAILED, CANCELLED = FINAL_STATUSES
#: The run store's other statuses (engine/runstore.py): a run being written, and one whose writer died.
RUNNING, INTERRUPTED = "running", "interrupted"
LOG_LEVELS = ("debug", "info", "warning", "error")
COMMON_FIELDS = ("v", "type", "run_id", "seq", "t")

EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "run_started": ("kind", "backend", "run_dir", "pid"),
    "stage": ("stage",),
    "epoch": ("epoch", "epochs", "train_loss", "val_loss", "lr", "seconds", "samples_per_s"),
    "progress": ("done", "total"),
    "metric": ("name", "value"),
    "artifact": ("kind", "path"),
    "log": ("level", "message"),
    "warning": ("message",),
    "error": ("kind", "message", "traceback"),
    "run_finished": ("status", "exit_code"),
}
"""Required fields per event type, beyond ``COMMON_FIELDS``. Extra fields are allowed (readers ignore them)."""

OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "run_started": ("dataset", "protocol"),
    "progress": ("unit", "stage"),
    "metric": ("unit", "convention", "stage"),
    "log": ("raw",),
    "run_finished": ("seconds",),
}

NULLABLE_FIELDS = {"backend", "train_loss", "val_loss", "lr", "samples_per_s", "traceback", "value", "exit_code"}
"""Fields that may be ``null`` (no validation set, no backend, a non-finite loss written as null, ...)."""

RAW_PREVIEW_CHARS = 500


def json_clean(value: Any) -> Any:
    """Make a value JSON-safe: numpy scalars -> Python, non-finite floats -> None, keys and paths -> str. Also the
    bundle manifest's (engine/bundle.py), whose history holds numbers or null as the event stream does."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # numpy scalar / 0-d array
        return json_clean(value.item())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _raw_log(line: str, why: str) -> dict:
    text = line.rstrip("\r\n")
    preview = text if len(text) <= RAW_PREVIEW_CHARS else text[:RAW_PREVIEW_CHARS] + f"... ({len(text)} chars)"
    return {"type": "log", "level": "warning", "message": f"{why}: {preview}", "raw": True}


def parse_line(line: str) -> dict:
    """One line of the stream -> an event dict. Never raises: garbage becomes a ``log`` event with ``raw: true``."""
    try:
        if isinstance(line, (bytes, bytearray)):
            line = bytes(line).decode("utf-8", errors="replace")
        elif not isinstance(line, str):
            return _raw_log(repr(line), "not a text line")
        if not line.strip():
            return {"type": "log", "level": "debug", "message": "", "raw": True}
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            return _raw_log(line, "unparsable event line")
        if not isinstance(event, dict):
            return _raw_log(line, "not an event object")
        kind = event.get("type")
        if not isinstance(kind, str) or kind not in EVENT_TYPES:
            return _raw_log(line, "unknown event type")
        return event
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        return {"type": "log", "level": "warning", "message": f"unreadable event line ({type(exc).__name__})",
                "raw": True}


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate_event(d: Any) -> str | None:
    """``None`` when ``d`` is a well-formed event of this protocol version, else a short reason."""
    if not isinstance(d, dict):
        return "not an object"
    for name in COMMON_FIELDS:
        if name not in d:
            return f"missing field {name!r}"
    if d["v"] != PROTOCOL_VERSION:
        return f"protocol version {d['v']!r}, expected {PROTOCOL_VERSION}"
    kind = d["type"]
    if kind not in EVENT_TYPES:
        return f"unknown type {kind!r}"
    if not isinstance(d["run_id"], str) or not d["run_id"]:
        return "run_id must be a non-empty string"
    if not isinstance(d["seq"], int) or isinstance(d["seq"], bool) or d["seq"] < 1:
        return "seq must be an integer >= 1"
    if not _is_num(d["t"]) or d["t"] < 0:
        return "t must be a number >= 0"
    for name in EVENT_TYPES[kind]:
        if name not in d:
            return f"{kind}: missing field {name!r}"
        if d[name] is None and name not in NULLABLE_FIELDS:
            return f"{kind}: field {name!r} is null"
    return _check_values(kind, d)


def _check_values(kind: str, d: dict) -> str | None:
    if kind == "stage" and d["stage"] not in STAGES:
        return f"stage: {d['stage']!r} is not one of {', '.join(STAGES)}"
    if kind == "run_finished" and d["status"] not in FINAL_STATUSES:
        return f"run_finished: status {d['status']!r} is not one of {', '.join(FINAL_STATUSES)}"
    if kind == "progress" and not (_is_num(d["done"]) and _is_num(d["total"]) and 0 <= d["done"]):
        return "progress: done and total must be numbers, done >= 0"
    if kind == "epoch" and not (isinstance(d["epoch"], int) and isinstance(d["epochs"], int)):
        return "epoch: epoch and epochs must be integers"
    if kind == "artifact":
        path = d["path"]
        if not isinstance(path, str) or not path or os.path.isabs(path) or ".." in path.replace("\\", "/").split("/"):
            return "artifact: path must be relative to the run directory"
    if kind == "log" and d["level"] not in LOG_LEVELS:
        return f"log: level {d['level']!r} is not one of {', '.join(LOG_LEVELS)}"
    return None


class EventWriter:
    """Writes events as JSON lines to ``sink`` (and mirrors them to ``mirror``, the run's events.jsonl).

    Adds ``v``, ``type``, ``run_id``, ``seq`` and ``t`` (seconds since the writer was made, on ``clock``). A sink
    whose reader went away (broken pipe) is dropped; the job keeps running and the mirror keeps everything.
    """

    def __init__(self, sink: TextIO | None, run_id: str, clock: Callable[[], float] = time.monotonic,
                 progress_hz: float = 20, mirror: TextIO | None = None):
        self.run_id = run_id
        self._sinks = [s for s in (sink, mirror) if s is not None]
        self._clock = clock
        self._t0 = clock()
        self._seq = 0
        self._min_gap = 1.0 / progress_hz if progress_hz and progress_hz > 0 else 0.0
        self._last_progress: tuple[float, Any, Any] | None = None  # (t, total, stage)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[dict], None]] = []

    @property
    def elapsed(self) -> float:
        return max(0.0, self._clock() - self._t0)

    def add_listener(self, fn: Callable[[dict], None]) -> None:
        """Call ``fn(event)`` after each emitted event (the human progress view uses this)."""
        self._listeners.append(fn)

    def emit(self, type: str, **fields: Any) -> dict:  # noqa: A002 - the protocol's field name
        """Write one event line (flushed) and return the event dict."""
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        with self._lock:
            self._seq += 1
            event = {"v": PROTOCOL_VERSION, "type": type, "run_id": self.run_id, "seq": self._seq,
                     "t": round(self.elapsed, 6)}
            event.update(json_clean(fields))
            line = json.dumps(event, ensure_ascii=True, allow_nan=False) + "\n"
            for sink in list(self._sinks):
                try:
                    sink.write(line)
                    sink.flush()
                except (BrokenPipeError, ValueError, OSError):
                    self._sinks.remove(sink)
        for fn in self._listeners:
            fn(event)
        return event

    def progress(self, done: float, total: float, **fields: Any) -> dict | None:
        """Emit ``progress`` at most ``progress_hz`` times a second; the final ``done >= total`` always goes out,
        and so does the first event after ``total`` or ``stage`` changes. Returns the event, or None if dropped."""
        now = self.elapsed
        key_total, key_stage = total, fields.get("stage")
        last = self._last_progress
        final = total is not None and done >= total
        fresh = last is None or last[1] != key_total or last[2] != key_stage
        if not (final or fresh or now - last[0] >= self._min_gap):
            return None
        self._last_progress = (now, key_total, key_stage)
        return self.emit("progress", done=done, total=total, **fields)

    def close(self) -> None:
        """Flush and close the sinks (never the process's own stdout/stderr)."""
        with self._lock:
            for sink in self._sinks:
                try:
                    sink.flush()
                    if sink not in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
                        sink.close()
                except (OSError, ValueError):
                    pass
            self._sinks = []


def open_sink(events: str | None, events_fd: int | None) -> TextIO | None:
    """The event channel named on the command line: ``--events PATH|-`` or ``--events-fd N`` (or none).

    Raises ``InputError`` for an unusable choice, so a job refuses before it creates its run directory.
    """
    from engine.errors import InputError

    if events is not None and events_fd is not None:
        raise InputError("--events", None, "either --events or --events-fd, not both")
    if events_fd is not None:
        if events_fd < 0:
            raise InputError("--events-fd", None, "a file descriptor number >= 0")
        if events_fd in (0,):
            raise InputError("--events-fd", None, "a writable file descriptor (not stdin)")
        try:
            os.fstat(events_fd)
            return os.fdopen(events_fd, "w", buffering=1, encoding="utf-8", closefd=events_fd > 2)
        except OSError:
            raise InputError("--events-fd", None, f"an open, writable file descriptor (fd {events_fd} is not open)")
    if events is None:
        return None
    if events == "-":
        return sys.stdout
    try:
        return open(events, "w", buffering=1, encoding="utf-8")
    except OSError as exc:
        raise InputError("--events", None, f"a writable file path ({events}: {exc.strerror or exc})")
