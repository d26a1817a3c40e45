"""The local launcher: rank 0 (the ``pinnacle train`` or ``infer`` process) starts ranks 1..N-1 on this node and
answers for them.

Why our own (engine/distributed.py says why not Lightning's): one launcher for both backends; each child runs
``python -m engine.replica SPEC`` with torchrun-style variables. The children:

- start in their own session, so a terminal's Ctrl-C reaches the launcher alone — rank 0 decides to stop and every
  rank stops after the same step (the decision travels with each step's collectives);
- ignore SIGINT, and exit when the launcher disappears (engine/replica.py watches its parent);
- write their stderr to a scratch log; when rank 0's training fails and a child has died, the run's error names
  that rank, its exit code and its last lines, instead of rank 0's "connection closed by peer".

A dead child normally fails rank 0's next collective at once (gloo: closed socket; TensorFlow: the coordination
service's heartbeat, ~10 s). Where it cannot — TensorFlow waits without end for a worker that never registered —
a watchdog thread ends the run itself ``RANK_DEATH_GRACE_S`` after the death (``abort``: engine.jobs.Job.abort),
since a thread blocked in a framework's native call cannot be interrupted from Python.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from engine.distributed import Topology
from engine.errors import Cancelled

#: Seconds the launcher waits for the other ranks to finish after rank 0 has (they end on the same step).
JOIN_S = 60.0
#: ... after rank 0 was cancelled (the others stop after the same step, then exit).
CANCEL_JOIN_S = 15.0
#: Seconds rank 0 may go on after another rank died before the watchdog ends the run (rank 0 usually fails first).
RANK_DEATH_GRACE_S = 30.0


class RankFailed(RuntimeError):
    """Another rank of this training died; the message is its exit code and the end of its stderr."""


class LocalRanks:
    """Context manager: ranks 1..world-1 of ``topology`` as child processes running ``spec`` (engine.replica)."""

    def __init__(self, topology: Topology, spec: dict, warn=None, abort=None, grace_s: float = RANK_DEATH_GRACE_S,
                 cancel_join_s: float = CANCEL_JOIN_S):
        """``warn(message)``: how a child failing after rank 0 finished well is reported (the run stands);
        ``abort(exc)``: ends the run from the watchdog thread (does not return); ``cancel_join_s``: how long the
        children may take to stop by themselves after rank 0 was cancelled (0: an inference's ranks have nothing
        to save, they are stopped at once)."""
        self.topology, self.spec, self.warn, self.abort, self.grace_s = topology, spec, warn, abort, grace_s
        self.cancel_join_s = cancel_join_s
        self.procs: dict[int, subprocess.Popen] = {}
        self.scratch: Path | None = None
        self.done = threading.Event()

    def __enter__(self) -> "LocalRanks":
        self.scratch = Path(tempfile.mkdtemp(prefix="pinnacle-ranks-"))
        spec_path = self.scratch / "spec.json"
        spec_path.write_text(json.dumps(self.spec))
        root = str(Path(__file__).resolve().parent.parent)
        for rank in range(1, self.topology.world):
            # TMPDIR: the child's scratch (TensorFlow's non-chief checkpoints) goes where we remove it, killed or not
            env = {**os.environ, **self.topology.worker_env(rank), "PINNACLE_LAUNCHER_PID": str(os.getpid()),
                   "TMPDIR": str(self.scratch),
                   "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
            with open(self.scratch / f"rank-{rank}.log", "wb") as log:
                self.procs[rank] = subprocess.Popen([sys.executable, "-m", "engine.replica", str(spec_path)],
                                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                    env=env, start_new_session=True)
        if self.abort is not None:
            threading.Thread(target=self._watch, name="rank-watchdog", daemon=True).start()
        return self

    def _watch(self) -> None:
        """After a child's death, give rank 0 ``grace_s`` to fail by itself; then end the run from here."""
        while not self.done.wait(0.5):
            if self.failed():
                if self.done.wait(self.grace_s):
                    return
                lines = self.failed()
                self._stop()
                self.abort(RankFailed("; ".join(lines) + f" (rank 0 still waited for it {self.grace_s:g} s later)"))
                return

    def failed(self) -> list[str]:
        """One line per child that has exited non-zero: rank, exit code or signal, the end of its log."""
        lines = []
        for rank, proc in sorted(self.procs.items()):
            code = proc.poll()
            if code not in (None, 0):
                how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                lines.append(f"rank {rank} failed ({how}){self._tail(rank)}")
        return lines

    def _tail(self, rank: int, lines: int = 3) -> str:
        try:
            text = (self.scratch / f"rank-{rank}.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        text = [t for t in text if t.strip()][-lines:]
        return (": " + " | ".join(t.strip() for t in text)) if text else ""

    def __exit__(self, exc_type, exc, tb) -> None:
        self.done.set()
        ok = exc is None
        stopped = isinstance(exc, (Cancelled, KeyboardInterrupt))
        try:
            deadline = time.monotonic() + (JOIN_S if ok else self.cancel_join_s if stopped else 0.5)
            if not ok and not stopped:
                time.sleep(0.5)  # a child that caused rank 0's failure is dying too: let it say why
            for proc in self.procs.values():
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            lines = self.failed()
            self._stop()
            if exc is not None and lines and not stopped:
                raise RankFailed("; ".join(lines)) from exc
            if lines and self.warn is not None:
                self.warn("; ".join(lines))
        finally:
            if self.scratch is not None:
                shutil.rmtree(self.scratch, ignore_errors=True)

    def _stop(self) -> None:
        """SIGTERM the children still running, then SIGKILL what is left after a few seconds."""
        alive = [p for p in self.procs.values() if p.poll() is None]
        for p in alive:
            p.terminate()
        deadline = time.monotonic() + 5.0
        for p in alive:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
