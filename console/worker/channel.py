"""Where the warm worker listens, who may talk to it, and the message framing (docs/worker.md).

The channel is a Unix socket in a directory only its owner can enter (mode 0700), never a network port. Both ends
check the other is the same user: the worker asks the kernel who connected (``SO_PEERCRED``) and refuses anyone
else; a client refuses a socket whose directory or file another user owns (someone else's process could listen
there and would receive the client's terminal). Messages are JSON objects, one per line; the request carries the
client's standard file descriptors as ``SCM_RIGHTS``, so the job writes straight to the client's terminal, pipe or
event channel.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import struct
from pathlib import Path

SOCKET_ENV = "PINNACLE_WORKER_SOCKET"
SOCKET_NAME = "worker.sock"
MAX_FDS = 8
MAX_LINE = 1 << 20


class ChannelError(Exception):
    """The worker's socket is unusable or unsafe (message says which and why)."""


def socket_path() -> Path:
    """``$PINNACLE_WORKER_SOCKET``, else ``$XDG_RUNTIME_DIR/pinnacle-<uid>/worker.sock`` (``/tmp`` without one)."""
    given = os.environ.get(SOCKET_ENV)
    if given:
        return Path(given)
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"pinnacle-{os.getuid()}" / SOCKET_NAME


def prepare_directory(path: Path) -> None:
    """Create the socket's directory private to this user (0700), or refuse one that is not."""
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    problem = unsafe(folder, os.getuid(), directory=True)
    if problem:
        raise ChannelError(problem)


def unsafe(path: Path, uid: int, directory: bool = False) -> str | None:
    """Why ``path`` must not be trusted by user ``uid`` (another owner; a directory others can enter), or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return f"{path} does not exist"
    if st.st_uid != uid:
        return f"{path} belongs to another user (uid {st.st_uid})"
    if directory and (not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o077):
        return f"{path} must be a directory only its owner can use (mode 0700), not {oct(st.st_mode & 0o777)}"
    if not directory and not stat.S_ISSOCK(st.st_mode):
        return f"{path} is not a socket"
    return None


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket, from the kernel."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def send(conn: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    """One JSON line; ``fds`` travel with it as SCM_RIGHTS."""
    data = (json.dumps(message) + "\n").encode()
    if fds:
        socket.send_fds(conn, [data], fds)
    else:
        conn.sendall(data)


class Reader:
    """Reads JSON lines (and, with the first, any file descriptors sent along) from a connected socket."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.buffer = b""
        self.fds: list[int] = []

    def next(self) -> dict | None:
        """The next message, or None at end of stream."""
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise ChannelError("message too long")
            data, fds, _flags, _addr = socket.recv_fds(self.conn, 65536, MAX_FDS)
            self.fds += fds
            if not data:
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)


def connect(path: Path, timeout: float = 2.0) -> socket.socket:
    """Connect to the worker at ``path`` after checking that this user owns it; ChannelError when there is none
    (or it is not safe), OSError when nothing listens there."""
    uid = os.getuid()
    problem = unsafe(path.parent, uid, directory=True) or unsafe(path, uid)
    if problem:
        raise ChannelError(problem)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        raise
    conn.settimeout(None)
    return conn


__all__ = ["ChannelError", "Reader", "connect", "peer_uid", "prepare_directory", "send", "socket_path", "unsafe"]
