"""Native libraries' log lines (TensorFlow's absl/oneDNN notices) kept out of what people read.

TensorFlow writes C++ log lines straight to file descriptor 2 — at import ("oneDNN custom operations are on",
twice) and at first use ("oneDNN supports DT_INT32 only on platforms with AVX-512", an E-level line on a healthy
run) — below Python, where ``TF_CPP_MIN_LOG_LEVEL`` does not reach the ones printed before absl is initialised.
The command-line entry point therefore points fd 2 at a temporary file and gives Python's ``sys.stderr`` a
duplicate of the real stderr, so Pinnacle's own messages (one-line errors, progress bars, tracebacks) still reach
the terminal. A job copies what was captured into its run directory (``framework.log``) when it ends; a process
that exits with a failure before any run took the lines prints them, so a crash is never silent.

``PINNACLE_NATIVE_STDERR=1`` leaves fd 2 alone (to watch a framework's own messages while debugging).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

KEEP_ENV = "PINNACLE_NATIVE_STDERR"
LOG_NAME = "framework.log"


class NativeLog:
    """fd 2 diverted to a temporary file for the life of the process (one per process, made by ``divert``)."""

    def __init__(self, path: Path, real_stderr_fd: int):
        self.path = path
        self._real = real_stderr_fd
        self.saved_to: Path | None = None

    @classmethod
    def divert(cls) -> "NativeLog | None":
        """Point fd 2 at a temporary file; ``sys.stderr`` keeps writing to the real stderr. None when disabled
        (``PINNACLE_NATIVE_STDERR``) or when fd 2 cannot be duplicated."""
        if os.environ.get(KEEP_ENV):
            return None
        try:
            sys.stderr.flush()
            real = os.dup(2)
            fd, name = tempfile.mkstemp(prefix="pinnacle-native-", suffix=".log")
        except OSError:
            return None
        os.dup2(fd, 2)
        os.close(fd)
        encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
        sys.stderr = os.fdopen(os.dup(real), "w", buffering=1, encoding=encoding, errors="backslashreplace")
        return cls(Path(name), real)

    def captured(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def save_to(self, run_dir: Path) -> Path | None:
        """Copy what native libraries wrote so far into ``run_dir/framework.log`` (nothing when they wrote
        nothing); later lines keep going to the temporary file."""
        if not self.captured().strip():
            return None
        target = Path(run_dir) / LOG_NAME
        try:
            shutil.copyfile(self.path, target)
        except OSError:
            return None
        self.saved_to = target
        return target

    def close(self, exit_code: int) -> None:
        """At process exit: a failure (exit 1) that no run recorded gets the native lines on the real stderr."""
        text = self.captured()
        if exit_code == 1 and self.saved_to is None and text.strip():
            try:
                os.write(self._real, text.encode("utf-8", errors="replace"))
            except OSError:
                pass
        try:
            self.path.unlink()
        except OSError:
            pass
