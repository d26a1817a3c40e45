"""The client side: hand a command line to the warm worker and stand in for the job until it ends.

``pinnacle infer``/``reconstruct`` with ``--worker auto`` (the default) call ``forward`` before anything heavy is
imported. With a worker listening, the job runs in a fork of it with this process's stdin/stdout/stderr (and
``--events-fd``), and this process waits, passes on SIGINT/SIGTERM, and exits with the job's code — to a shell,
a script or the console it looks like the command ran here. With none (no socket, or a stale one), ``forward``
returns None and the command runs here as usual.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from console.worker import channel
from engine.errors import EXIT_FAILURE

MODE_ENV = "PINNACLE_WORKER"
MODES = ("auto", "off")
COMMANDS = ("infer", "reconstruct")


def wanted(argv: list[str]) -> bool:
    """Whether this command line goes to a worker when one runs: an infer/reconstruct job, not ``--worker off``
    (flag, or PINNACLE_WORKER=off), not a help request."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS or any(a in ("--help", "-h") for a in argv):
        return False
    mode = os.environ.get(MODE_ENV, "auto")
    for i, arg in enumerate(argv):
        if arg == "--worker" and i + 1 < len(argv):
            mode = argv[i + 1]
        elif arg.startswith("--worker="):
            mode = arg.split("=", 1)[1]
    return mode == "auto"


def events_fd(argv: list[str]) -> int | None:
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--events-fd" and i + 1 < len(argv) else (
            arg.split("=", 1)[1] if arg.startswith("--events-fd=") else None)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                return None  # the command itself reports the bad value
    return None


def ping(path: Path | None = None, timeout: float = 1.0) -> dict | None:
    """The worker's answer (pid, backends), or None when none answers at ``path``."""
    try:
        conn = channel.connect(path or channel.socket_path(), timeout)
    except (OSError, channel.ChannelError):
        return None
    try:
        conn.settimeout(timeout)
        channel.send(conn, {"ping": True})
        return channel.Reader(conn).next()
    except (OSError, ValueError, channel.ChannelError):
        return None
    finally:
        conn.close()


def forward(argv: list[str], path: Path | None = None) -> int | None:
    """Run ``pinnacle ARGV`` in the worker and return its exit code; None when no worker is there."""
    path = path or channel.socket_path()
    if not os.path.lexists(path):
        return None
    try:
        conn = channel.connect(path)
    except channel.ChannelError as exc:
        print(f"pinnacle: not using the worker: {exc}", file=sys.stderr)
        return None
    except OSError:
        return None  # nobody listens there (a worker that died): run here
    targets = [fd for fd in (0, 1, 2, events_fd(argv)) if fd is not None and _is_open(fd)]
    request = {"argv": [*argv, "--worker", "off"], "cwd": os.getcwd(), "env": dict(os.environ), "fds": targets}
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    relay = _Relay(conn)  # from here a Ctrl-C is the job's cancel, even before the job has started
    try:
        try:
            channel.send(conn, request, targets)
        except OSError:  # it closed on us: a refusal says why; anything else, run here
            refusal = _refusal(conn)
            if refusal is None:
                return None
            print(f"pinnacle: error: the worker refused the job: {refusal}", file=sys.stderr)
            return EXIT_FAILURE
        relay.ready()
        return _stand_in(conn)
    finally:
        relay.restore()
        conn.close()


def _refusal(conn) -> str | None:
    try:
        conn.settimeout(1.0)
        message = channel.Reader(conn).next()
    except (OSError, ValueError, channel.ChannelError):
        return None
    return message.get("error") if isinstance(message, dict) else None


class _Relay:
    """Passes SIGINT/SIGTERM (SIGHUP as SIGTERM) to the job; signals that arrive before the request has gone
    wait for it, so that the worker reads the request first."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, conn):
        self.conn = conn
        self.pending: list[int] | None = []
        self.old = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}

    def _on_signal(self, signum, _frame) -> None:
        sig = int(signal.SIGTERM if signum == signal.SIGHUP else signum)
        if self.pending is not None:
            self.pending.append(sig)
        else:
            self._send(sig)

    def _send(self, sig: int) -> None:
        try:
            channel.send(self.conn, {"signal": sig})
        except OSError:
            pass

    def ready(self) -> None:
        pending, self.pending = self.pending or [], None
        for sig in pending:
            self._send(sig)

    def restore(self) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def _stand_in(conn) -> int:
    """Wait for the job's end; a worker that vanishes fails the job (and its job is stopped)."""
    reader = channel.Reader(conn)
    pid = None
    while True:
        try:
            message = reader.next()
        except (OSError, ValueError, channel.ChannelError):
            message = None
        if message is None:
            if pid is not None:
                _stop(pid)
            print("pinnacle: error: the reconstruction worker stopped during the job; the run ended failed "
                  "(`pinnacle runs`); run again, or with --worker off", file=sys.stderr)
            return EXIT_FAILURE
        if "pid" in message:
            pid = message["pid"]
        elif "exit" in message:
            return int(message["exit"])
        elif "signal" in message:
            name = signal.Signals(message["signal"]).name
            print(f"pinnacle: error: the job's process in the worker died ({name}); the run ended failed",
                  file=sys.stderr)
            return EXIT_FAILURE
        elif "error" in message:
            print(f"pinnacle: error: the worker refused the job: {message['error']}", file=sys.stderr)
            return EXIT_FAILURE


def _stop(pid: int) -> None:
    """The worker is gone but its job may not be: stop it (it is this user's process)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
