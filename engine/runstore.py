"""The run store (docs/protocol.md §2): one directory per run, an always readable ``run.json``, a writer lock.

Why this shape: a run killed at any moment must leave a readable record, so ``run.json`` is only ever replaced
whole (temp file + ``os.replace``). Whether a "running" run is really alive is decided by the kernel, not by a
stale pid: the writer holds ``fcntl.flock`` on ``run.lock`` for its whole life, the kernel drops it when the
process dies, and a lister that can take the lock reports the run as ``interrupted``. The same lock refuses a
second writer.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from engine.atomic import write_text
from engine.errors import InputError
from engine.events import FINAL_STATUSES, INTERRUPTED, RUNNING

RUN_JSON = "run.json"
EVENTS_JSONL = "events.jsonl"
LOCK_FILE = "run.lock"
RUN_STATUSES = (RUNNING, *FINAL_STATUSES, INTERRUPTED)
RUN_FORMAT = 1
_ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}-[a-z0-9_]+$")


class RunLocked(InputError):
    """Another live process is writing this run (exit 2: the user asked for something that cannot be done now)."""


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _iso(ts: _dt.datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id(kind: str, now: _dt.datetime | None = None) -> str:
    """``YYYYmmdd-HHMMSS-xxxx-kind`` in UTC: sorts by time, safe as a file name on every OS.

    The 4 hex digits are 3 of sub-second time (1/4096 s) and 1 random, so ids also sort within a second.
    """
    now = now or _utc_now()
    frac = min(4095, int(now.microsecond / 1_000_000 * 4096))
    safe_kind = re.sub(r"[^a-z0-9_]+", "_", str(kind).lower()).strip("_") or "run"
    return f"{now:%Y%m%d-%H%M%S}-{frac:03x}{secrets.randbelow(16):x}-{safe_kind}"


def _write_json_atomic(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False, default=str) + "\n")


def _take_lock(run_dir: Path) -> Any:
    """Open and exclusively lock ``run.lock``; the open file is the lock (closing it releases it)."""
    fh = open(run_dir / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise RunLocked(str(run_dir), None, "a run no other process is writing (it is locked by a live job)")
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def lock_is_held(run_dir: Path) -> bool:
    """True when a live process holds the run's writer lock."""
    try:
        fh = open(run_dir / LOCK_FILE, "r", encoding="utf-8")
    except OSError:
        return False
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        fh.close()  # also drops the shared lock if we got it
    return False


class Run:
    """A run this process writes: owns the lock and the in-memory copy of ``run.json``."""

    def __init__(self, run_dir: Path, record: dict, lock: Any):
        self.dir = Path(run_dir)
        self.record = record
        self._lock = lock

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def checkpoints_dir(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def bundle_dir(self) -> Path:
        return self.dir / "bundle"

    @property
    def events_path(self) -> Path:
        return self.dir / EVENTS_JSONL

    def update(self, **fields: Any) -> dict:
        """Replace top-level fields and rewrite ``run.json`` atomically."""
        self.record.update(fields)
        self.record["updated"] = _iso(_utc_now())
        _write_json_atomic(self.dir / RUN_JSON, self.record)
        return self.record

    def finish(self, status: str, **fields: Any) -> dict:
        """Write the final record (status ok | failed | cancelled). The lock stays held until ``close``."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"final status must be one of {FINAL_STATUSES}, not {status!r}")
        return self.update(status=status, finished=_iso(_utc_now()), **fields)

    def close(self) -> None:
        """Release the writer lock. A finished run leaves no lock file and no empty bundle/ or checkpoints/."""
        finished = self.record.get("status") in FINAL_STATUSES
        if finished:
            for sub in (self.bundle_dir, self.checkpoints_dir):
                try:
                    sub.rmdir()  # only when empty
                except OSError:
                    pass
        if self._lock is not None:
            if finished:
                try:
                    (self.dir / LOCK_FILE).unlink()  # while still holding it: no other writer can be in between
                except OSError:
                    pass
            self._lock.close()
            self._lock = None


def _read_record(run_dir: Path) -> dict | None:
    try:
        with open(run_dir / RUN_JSON, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _resolve(record: dict, run_dir: Path) -> dict:
    """The record as a reader should see it: a "running" run whose writer is gone is ``interrupted``."""
    out = dict(record)
    out["dir"] = str(run_dir)
    if out.get("status") == RUNNING and not lock_is_held(run_dir):
        out["status"] = INTERRUPTED
    return out


class RunStore:
    """A directory of runs. Reading never needs the lock; writing (``create``/``attach``) takes it."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def create(self, kind: str, *, config: dict, backend: str | None = None, dataset: dict | None = None) -> Run:
        """Make a new run directory, lock it and write its first ``run.json`` (status running)."""
        self.check_writable()
        for _ in range(100):
            run_id = new_run_id(kind)
            run_dir = self.root / run_id
            try:
                run_dir.mkdir()
                break
            except FileExistsError:
                time.sleep(0.001)
        else:  # pragma: no cover - 100 collisions in a row means the clock or RNG is broken
            raise RuntimeError("could not allocate a unique run id")
        lock = _take_lock(run_dir)
        (run_dir / "checkpoints").mkdir()
        (run_dir / "bundle").mkdir()
        now = _iso(_utc_now())
        record = {
            "format": RUN_FORMAT, "run_id": run_id, "kind": kind, "status": RUNNING, "backend": backend,
            "dataset": dataset, "config": config, "created": now, "updated": now, "finished": None,
            "stage": None, "timings": {}, "metrics": {}, "key_metric": None, "artifacts": [],
            "pid": os.getpid(), "exit_code": None,
        }
        run = Run(run_dir, record, lock)
        run.update()
        return run

    def attach(self, run_id_or_prefix: str) -> Run:
        """Open an existing run for writing (e.g. to continue it). Refused with ``RunLocked`` while it is live."""
        run_dir = self.find(run_id_or_prefix)
        lock = _take_lock(run_dir)
        record = _read_record(run_dir)
        if record is None:
            lock.close()
            raise InputError(str(run_dir / RUN_JSON), None, "a readable run.json")
        run = Run(run_dir, record, lock)
        run.update(status=RUNNING, pid=os.getpid(), exit_code=None, finished=None)
        return run

    def check_writable(self, create: bool = True) -> None:
        """InputError (exit 2) when runs cannot be written here: a file at the path, an ancestor that is a file,
        no permission. With ``create`` the directory is made; without, nothing is touched (jobs call that first,
        so a bad --runs fails at once and leaves nothing behind)."""
        if self.root.exists() and not self.root.is_dir():
            raise InputError("--runs", str(self.root), "a directory for the run store (a file is at this path)")
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise InputError("--runs", str(self.root), f"a directory path ({existing} is a file)")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise InputError("--runs", str(self.root), f"a writable place for the run store (no permission in "
                             f"{existing})")
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError("--runs", str(self.root), f"a directory Pinnacle can create ({exc.strerror or exc})")

    def check_readable(self) -> None:
        """InputError (exit 2) unless the store's directory exists: listing a mistyped --runs says so."""
        if not self.root.is_dir():
            what = "a file" if self.root.exists() else "nothing"
            raise InputError("--runs", str(self.root), f"an existing run store directory ({what} is at this path)")

    def _run_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and (p / RUN_JSON).is_file())

    def list(self) -> list[dict]:
        """Every readable run, oldest first, with ``status`` resolved (dead writer -> interrupted)."""
        out = []
        for run_dir in self._run_dirs():
            record = _read_record(run_dir)
            if record is not None:
                out.append(_resolve(record, run_dir))
        return out

    def find(self, run_id_or_prefix: str) -> Path:
        """The directory of a run given its id, or a unique prefix or part of one; InputError otherwise."""
        key = str(run_id_or_prefix).strip()
        if not key or "/" in key or "\\" in key or key in (".", ".."):
            raise InputError("RUN", key or None, "a run id, or a unique prefix or part of one (see `pinnacle runs`)")
        exact = self.root / key
        if (exact / RUN_JSON).is_file():
            return exact
        if not self.root.is_dir():
            raise InputError("RUN", key, f"a run id in an existing run store (nothing is at {self.root})")
        dirs = self._run_dirs()
        matches = [p for p in dirs if p.name.startswith(key)] or [p for p in dirs if key in p.name]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise InputError("RUN", key, f"a run id, or a unique prefix or part of one, in {self.root} (no match)")
        names = ", ".join(p.name for p in matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise InputError("RUN", key, f"a unique prefix or part of a run id (matches {len(matches)} runs: {names})")

    def get(self, run_id_or_prefix: str) -> dict:
        """One run's record by id or unique prefix, status resolved."""
        run_dir = self.find(run_id_or_prefix)
        record = _read_record(run_dir)
        if record is None:
            raise InputError(str(run_dir / RUN_JSON), None, "a readable run.json")
        return _resolve(record, run_dir)


def is_run_id(text: str) -> bool:
    """True for strings shaped like ``new_run_id`` output."""
    return bool(_ID_RE.match(text))
