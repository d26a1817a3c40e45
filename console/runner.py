"""Run engine jobs as child processes and deliver their event stream in batches.

Why this shape: the console never imports tensorflow or torch, so every job is ``python -m console ...`` in a child
process, in its own process group (cancel reaches the whole group, no orphans). Events arrive on a dedicated pipe
(``--events-fd N``) so library noise on stdout/stderr cannot corrupt them; that noise is still shown, as ``output``
lines. Lines are drained in chunks and delivered as ONE batch per interval, so 10,000 events/s cost the UI about
20 messages/s.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

from engine.events import parse_line

BATCH_INTERVAL_S = 0.05
GRACE_S = 5.0  # SIGINT -> SIGTERM -> SIGKILL, each after this long


def console_command(args: Sequence[str]) -> list[str]:
    """The command line of a headless job: the same CLI, run by the same interpreter."""
    return [sys.executable, "-m", "console", *args]


@dataclass(frozen=True)
class JobSpec:
    key: str
    argv: tuple[str, ...]  # full command, without --events-fd (the runner adds it)
    label: str = ""
    kind: str = "train"
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()


@dataclass
class Job:
    """One child process and its readers. Owned by a ``Runner``; not shared across event loops."""

    spec: JobSpec
    on_batch: Callable[[str, list[dict]], None]
    interval: float = BATCH_INTERVAL_S
    grace: float = GRACE_S
    proc: asyncio.subprocess.Process | None = None
    returncode: int | None = None
    cancel_requested: bool = False
    _buffer: list[dict] = field(default_factory=list)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        read_fd, write_fd = os.pipe()
        env = {**os.environ, **dict(self.spec.env), "PYTHONUNBUFFERED": "1"}
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.spec.argv, "--events-fd", str(write_fd),
                pass_fds=(write_fd,), start_new_session=True, cwd=self.spec.cwd, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            self._buffer += [{"type": "error", "kind": "launch", "message": str(exc)}, {"type": "exited", "returncode": 127}]
            self._flush()
            self.returncode = 127
            self._done.set()
            return
        os.close(write_fd)  # the child holds the only write end: EOF when it (and its group) is gone
        loop = asyncio.get_running_loop()
        events = asyncio.StreamReader(limit=2**24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(events), os.fdopen(read_fd, "rb", 0))
        self._tasks = [
            asyncio.create_task(self._pump(events, parse_line)),
            asyncio.create_task(self._pump(self.proc.stdout, lambda s: {"type": "output", "message": s})),
        ]
        self._tasks.append(asyncio.create_task(self._flusher()))
        self._tasks.append(asyncio.create_task(self._reap()))

    async def _pump(self, stream: asyncio.StreamReader, to_event: Callable[[str], dict]) -> None:
        """Read big chunks and split lines ourselves: far cheaper than one readline per event."""
        rest = b""
        while chunk := await stream.read(1 << 16):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            self._buffer.extend(to_event(ln.decode("utf-8", "replace")) for ln in lines if ln.strip())
        if rest.strip():
            self._buffer.append(to_event(rest.decode("utf-8", "replace")))

    async def _flusher(self) -> None:
        while not self._done.is_set():
            self._flush()
            try:
                await asyncio.wait_for(self._done.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    def _flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self.on_batch(self.spec.key, batch)

    async def _reap(self) -> None:
        assert self.proc is not None
        await asyncio.gather(*self._tasks[:2])  # both pipes at EOF
        code = await self.proc.wait()
        self.kill_group(signal.SIGKILL)  # anything the child left behind in its group
        self.returncode = code
        self._buffer.append({"type": "exited", "returncode": 130 if self.cancel_requested and code < 0 else code})
        self._flush()
        self._done.set()

    def kill_group(self, sig: int) -> bool:
        try:
            os.killpg(self.proc.pid, sig)  # the child leads its own session/group
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def cancel(self) -> None:
        """SIGINT to the whole group; escalate to SIGTERM then SIGKILL if it does not stop."""
        if self.proc is None or self._done.is_set() or self.cancel_requested:
            return
        self.cancel_requested = True
        self.kill_group(signal.SIGINT)
        self._tasks.append(asyncio.create_task(self._escalate()))

    async def _escalate(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                await asyncio.wait_for(asyncio.shield(self._done.wait()), self.grace)
                return
            except asyncio.TimeoutError:
                self.kill_group(sig)

    async def wait(self) -> int:
        await self._done.wait()
        return self.returncode if self.returncode is not None else 1

    @property
    def running(self) -> bool:
        return self.proc is not None and not self._done.is_set()


@dataclass
class Runner:
    """All jobs of one console session."""

    on_batch: Callable[[str, list[dict]], None]
    interval: float = BATCH_INTERVAL_S
    grace: float = GRACE_S
    jobs: dict[str, Job] = field(default_factory=dict)

    async def start(self, spec: JobSpec) -> Job:
        job = Job(spec, self.on_batch, self.interval, self.grace)
        self.jobs[spec.key] = job
        await job.start()
        return job

    def cancel(self, key: str) -> None:
        if key in self.jobs:
            self.jobs[key].cancel()

    @property
    def running(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.running]

    async def shutdown(self) -> None:
        """Cancel every running child and await them all: quitting leaves no orphans."""
        jobs = self.running
        for job in jobs:
            job.cancel()
        await asyncio.gather(*(job.wait() for job in jobs))
