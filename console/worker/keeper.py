"""The console's warm worker: started on demand, restarted when it has died, stopped when the console closes.

The console itself never imports a framework; it starts ``pinnacle serve`` as a child (its own session, its log in
the run store's ``.worker.log``) the first time it launches an inference or a reconstruction. The job that asked
runs as a plain process while the worker warms up (``--worker auto`` finds no socket yet); later jobs run in the
worker. A worker someone started elsewhere is used and left alone.
"""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from console.worker import channel, client

#: The job kinds that run in the worker (console/worker/client.py COMMANDS).
KINDS = client.COMMANDS


@dataclass
class WorkerKeeper:
    """``command`` starts a worker listening at ``path``; ``log`` is where its output goes."""

    command: Sequence[str]
    path: Path = field(default_factory=channel.socket_path)
    log: Path | None = None
    proc: subprocess.Popen | None = None
    starts: int = 0
    ping: Callable[[Path], dict | None] = client.ping

    def ensure(self) -> str:
        """Make sure a worker runs or is warming up; returns what was done: "running" (one answers), "warming"
        (ours is starting), "started" or "restarted" (ours had died)."""
        if self.ping(self.path) is not None:
            return "running"
        if self.proc is not None and self.proc.poll() is None:
            return "warming"
        outcome = "restarted" if self.proc is not None else "started"
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab") if self.log is not None else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen([*self.command, "--socket", str(self.path)], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        self.starts += 1
        return outcome

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker this console started (its running jobs are stopped with it)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
