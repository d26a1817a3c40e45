"""The warm worker: a process that has already imported the frameworks, and runs each job in a fork of itself.

Why a fork per job rather than jobs in the worker's own threads: a forked child is, to the job, exactly the process
``pinnacle infer`` would have been — its own signals, exit code, stdout/stderr (the client's, passed over the socket)
and run directory lock — so runs, events and cancellation are the same code path as a cold command, and a job that
crashes takes nothing else down. What the fork saves is the part that is not the answer: starting Python and
importing TensorFlow/PyTorch, numpy, scipy, scikit-image and h5py (about 8 s of a 9 s cold ``infer`` here).
The parent never runs a framework operation: their thread pools are created after the fork, in the child, where
they are safe (a pool started before ``fork`` does not survive into the child).

Lifetime rules (docs/worker.md): a job lives only while its client is connected (a client that vanishes has its
job stopped, SIGTERM then SIGKILL); the client's SIGINT/SIGTERM reach the job as the same signal; when the worker
stops, its jobs are stopped and their clients told.
"""
from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Callable

from console.worker import channel

#: The commands a worker runs; anything else is refused (it is a reconstruction worker, not a shell).
COMMANDS = ("infer", "reconstruct")
#: Signals a client may forward to its job.
FORWARDED = (signal.SIGINT, signal.SIGTERM)
#: Seconds between SIGTERM and SIGKILL for a job whose client went away, or when the worker stops.
GRACE_S = 5.0
#: Seconds a connection may take to send its request.
REQUEST_TIMEOUT_S = 5.0
#: What every inference or reconstruction imports (besides the frameworks): imported once, in the parent.
WARM_MODULES = ("numpy", "scipy.fft", "scipy.optimize", "scipy.ndimage", "skimage.registration", "h5py",
                "engine.pipeline", "engine.reconstruction", "engine.reconstruct_request", "engine.metrics",
                "engine.product", "engine.preview", "engine.refine", "engine.display", "console.cli",
                "matplotlib.figure", "matplotlib.backends.backend_agg")  # the previews (imported lazily elsewhere)


def warm(backends: list[str]) -> list[str]:
    """Import the shared modules and each backend's framework (engine.backends: an actionable error for one that
    is not installed). Returns the backends' canonical names."""
    from engine.backends import canonical_name, load_backend

    for name in WARM_MODULES:
        importlib.import_module(name)
    for b in backends:
        load_backend(b)
    return [canonical_name(b) for b in backends]


def run_command(argv: list[str]) -> int:
    """The job, in the forked child: what ``pinnacle ARGV`` does in a fresh process (console.cli.entry)."""
    from console.cli import diverts_native_log, main
    from engine.native_log import NativeLog

    native = NativeLog.divert() if diverts_native_log(argv) else None
    code = main(argv, native_log=native)
    if native is not None:
        native.close(code)
    return code


class Worker:
    """Listens on ``path``; one forked child per accepted request; ``stop`` ends it (from a signal handler too)."""

    def __init__(self, path: Path, backends: list[str], runner: Callable[[list[str]], int] = run_command,
                 log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
                 uid: int | None = None):
        self.path = path
        self.uid = os.getuid() if uid is None else uid  # the one user served (another only in tests)
        self.backends = backends
        self.runner = runner
        self.log = log
        self.stopping = threading.Event()
        self.children: dict[int, socket.socket] = {}
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None

    # ---------------------------------------------------------------------------------------------- lifecycle
    def bind(self) -> None:
        """Take the socket path: refuse when a live worker answers there, replace a stale socket."""
        channel.prepare_directory(self.path)
        if self.path.exists() or self.path.is_symlink():
            try:
                channel.connect(self.path, timeout=1.0).close()
            except channel.ChannelError as exc:
                raise channel.ChannelError(f"cannot use {self.path}: {exc}") from None
            except OSError:
                self.path.unlink()  # nobody listens: a worker that died left it
            else:
                raise channel.ChannelError(f"a worker is already running at {self.path}")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket file itself: owner read/write only
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old)
        listener.listen(16)
        listener.settimeout(0.2)
        self.listener = listener

    def serve(self) -> None:
        """Accept requests until ``stop``; then stop the running jobs and remove the socket."""
        assert self.listener is not None, "bind() first"
        try:
            while not self.stopping.is_set():
                try:
                    conn, _ = self.listener.accept()
                except (socket.timeout, InterruptedError):
                    continue
                except OSError:
                    if self.stopping.is_set():
                        break
                    raise
                self._handle(conn)
        finally:
            self._shutdown()

    def stop(self, *_args) -> None:
        self.stopping.set()

    def _shutdown(self) -> None:
        if self.listener is not None:
            self.listener.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        with self.lock:
            pids = list(self.children)
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        for pid in pids:
            _wait_or_kill(pid, GRACE_S)

    # ------------------------------------------------------------------------------------------------- requests
    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(REQUEST_TIMEOUT_S)
        reader = channel.Reader(conn)
        try:
            uid = channel.peer_uid(conn)
            if uid != self.uid:
                self.log(f"worker: refused a connection from uid {uid}")
                channel.send(conn, {"error": "refused: this worker serves only its own user"})
                return _close(conn, reader)
            request = reader.next()
        except (OSError, ValueError, channel.ChannelError) as exc:
            self.log(f"worker: bad request ({exc})")
            return _close(conn, reader)
        if request is None:
            return _close(conn, reader)
        if request.get("ping"):
            channel.send(conn, {"pong": True, "pid": os.getpid(), "backends": self.backends})
            return _close(conn, reader)
        problem = _check(request, reader.fds)
        if problem:
            channel.send(conn, {"error": problem})
            return _close(conn, reader)
        conn.settimeout(None)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            self._child(request, reader.fds, conn)
        for fd in reader.fds:
            os.close(fd)
        with self.lock:
            self.children[pid] = conn
        self.log(f"worker: job {pid}: pinnacle {' '.join(request['argv'])}")
        channel.send(conn, {"pid": pid})
        threading.Thread(target=self._attend, args=(pid, conn, reader), daemon=True).start()
        threading.Thread(target=self._reap, args=(pid, conn), daemon=True).start()

    def _child(self, request: dict, fds: list[int], conn: socket.socket) -> None:
        code = 1
        try:
            os.setsid()  # a Ctrl-C on the worker's own terminal is not the job's cancel
            signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh Python process
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            if self.listener is not None:
                self.listener.close()
            conn.close()
            _install_fds(fds, request["fds"])
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            _reopen_std_streams()
            code = self.runner(list(request["argv"]))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - the child must never fall back into the parent's loop
            import traceback

            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001
                    pass
            os._exit(code)

    def _attend(self, pid: int, conn: socket.socket, reader: channel.Reader) -> None:
        """Forward the client's signals; a client that goes away has its job stopped."""
        while True:
            try:
                message = reader.next()
            except (OSError, ValueError, channel.ChannelError):
                message = None
            with self.lock:
                running = pid in self.children
            if not running:
                return
            if message is None:
                self.log(f"worker: job {pid}: its client went away; stopping it")
                _signal(pid, signal.SIGTERM)
                return
            sig = message.get("signal")
            if sig in [int(s) for s in FORWARDED]:
                _signal(pid, sig)

    def _reap(self, pid: int, conn: socket.socket) -> None:
        """Wait for the job; tell the client how it ended; close the connection."""
        _, status = os.waitpid(pid, 0)
        with self.lock:
            self.children.pop(pid, None)
        if os.WIFSIGNALED(status):
            message = {"signal": os.WTERMSIG(status)}
        else:
            message = {"exit": os.WEXITSTATUS(status)}
        self.log(f"worker: job {pid} ended: {message}")
        try:
            channel.send(conn, message)
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()


def _check(request: dict, fds: list[int]) -> str | None:
    argv, targets = request.get("argv"), request.get("fds")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return "expected argv: a list of strings"
    if argv[0] not in COMMANDS:
        return f"this worker runs {', '.join(COMMANDS)}, not {argv[0]!r}"
    if not isinstance(targets, list) or len(targets) != len(fds) or not all(isinstance(t, int) for t in targets):
        return "expected one target number per file descriptor sent"
    if not isinstance(request.get("cwd"), str) or not isinstance(request.get("env"), dict):
        return "expected cwd and env"
    return None


def _install_fds(received: list[int], targets: list[int]) -> None:
    """Put each received descriptor at the number it had in the client (0, 1, 2, the event channel's)."""
    import fcntl

    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in received]  # out of the way of every target number
    for fd in received:
        os.close(fd)
    for fd, target in zip(high, targets):
        os.dup2(fd, target, inheritable=target <= 2)
        os.close(fd)


def _reopen_std_streams() -> None:
    """Python's stdout/stderr objects for the client's descriptors (line-buffered, as a terminal expects)."""
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)


def _close(conn: socket.socket, reader: channel.Reader) -> None:
    for fd in reader.fds:
        os.close(fd)
    conn.close()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_or_kill(pid: int, grace: float) -> None:
    """Let the reaper thread see ``pid`` end; SIGKILL it after ``grace`` seconds."""
    import time

    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    _signal(pid, signal.SIGKILL)
