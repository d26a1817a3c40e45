"""Follow runs the console did not start: tail a run's ``events.jsonl`` and deliver its events in batches.

Why tailing the file: every job mirrors its whole event stream to ``events.jsonl`` in its run directory
(docs/protocol.md §1), so a run started by a script or a colleague can be followed with the same reducer as a
child of the console, and a finished run replays its whole history the same way. Liveness is the run store's
writer lock (a live writer holds it; the kernel drops it when the writer dies, however it dies). Cancel is what
Ctrl-C does to a headless job: SIGINT to the writer's pid from ``run.json`` — sent only while that writer still holds
the run's lock, so a stale pid is never signalled.
"""
from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.events import parse_line
from engine.runstore import EVENTS_JSONL

from console.readers import read_events, read_run, writer_alive

POLL_S = 0.2
"""How often a followed run's events.jsonl is read (the writer flushes every line)."""


@dataclass
class Follower:
    """Tails one run directory until its stream ends (run_finished), or its writer is gone (interrupted)."""

    key: str
    run_dir: Path
    on_batch: Callable[[str, list[dict]], None]
    interval: float = POLL_S
    offset: int = 0
    finished: bool = False
    cancel_requested: bool = False
    _task: asyncio.Task | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def read_once(self) -> list[dict]:
        """The events written since the last read."""
        lines, self.offset = read_events(self.run_dir / EVENTS_JSONL, self.offset)
        events = [parse_line(ln) for ln in lines]
        if any(e.get("type") == "run_finished" for e in events):
            self.finished = True
        return events

    async def _loop(self) -> None:
        try:
            while not self.finished:
                alive = writer_alive(self.run_dir)  # before reading: a writer that ends now leaves a complete file
                events = self.read_once()
                if not self.finished and not alive:
                    events += self.read_once()
                    if not self.finished:  # the writer is gone and never wrote run_finished
                        events.append({"type": "exited", "returncode": None})
                        self.finished = True
                if events:
                    self.on_batch(self.key, events)
                if not self.finished:
                    await asyncio.sleep(self.interval)
        finally:
            self._done.set()

    def cancel(self) -> bool:
        """SIGINT to the run's writer (as Ctrl-C in its terminal); True when a live writer was signalled."""
        record = read_run(self.run_dir)
        if record is None or record.pid is None or not writer_alive(self.run_dir):
            return False
        try:
            os.kill(record.pid, signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            return False
        self.cancel_requested = True
        return True

    async def wait(self) -> None:
        await self._done.wait()

    def stop(self) -> None:
        """Stop reading (the run itself goes on: it is not ours)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._done.set()

    @property
    def following(self) -> bool:
        return self._task is not None and not self._done.is_set()


def replay(run_dir: str | Path) -> list[dict]:
    """Every event of a run's events.jsonl (a finished run's whole history), plus an ``exited`` marker for a run
    whose writer died without run_finished."""
    follower = Follower("", Path(run_dir), lambda *_: None)
    events = follower.read_once()
    if not follower.finished and not writer_alive(run_dir):
        events.append({"type": "exited", "returncode": None})
    return events


@dataclass
class StoreWatcher:
    """Finds runs in the run store that are live and not followed yet (started by a script or a colleague).

    Reads only run.json files of directories not yet known to be finished, so a big store costs one directory
    listing per poll.
    """

    root: Path
    settled: set[str] = field(default_factory=set)

    def live_runs(self) -> list[Path]:
        try:
            dirs = [p for p in Path(self.root).iterdir() if p.is_dir() and p.name not in self.settled]
        except OSError:
            return []
        live = []
        for d in sorted(dirs):
            rec = read_run(d)
            if rec is None:
                continue
            if rec.live:
                live.append(d)
            else:
                self.settled.add(d.name)
        return live
