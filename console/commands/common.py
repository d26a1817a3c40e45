"""Typer option helpers shared by every headless job command (selftest, train, infer, parity, runs).

Why helpers: the run store and event-channel options must be spelled and documented the same everywhere, and the
console passes them to every child. Call them as defaults: ``runs: str = runs_option()``.
"""
from __future__ import annotations

import typer

RUNS_ENV = "PINNACLE_RUNS"
DEFAULT_RUNS = "runs"


def runs_option() -> typer.models.OptionInfo:
    """``--runs DIR``: the run store (default ./runs; the PINNACLE_RUNS environment variable overrides)."""
    return typer.Option(DEFAULT_RUNS, "--runs", envvar=RUNS_ENV, metavar="DIR",
                        help="Run store directory (env PINNACLE_RUNS; default ./runs).")


def events_option() -> typer.models.OptionInfo:
    """``--events PATH|-``: write the event stream (JSON lines) to a file or to stdout."""
    return typer.Option(None, "--events", metavar="PATH|-",
                        help="Write the event stream (one JSON object per line) to PATH, or '-' for stdout.")


def events_fd_option() -> typer.models.OptionInfo:
    """``--events-fd N``: write the event stream to an inherited file descriptor (what the console uses)."""
    return typer.Option(None, "--events-fd", metavar="N",
                        help="Write the event stream to inherited file descriptor N.")


def progress_option() -> typer.models.OptionInfo:
    """``--progress/--no-progress``: rich progress bars on stderr when it is a terminal, and plain progress lines on
    stdout when that is a file or a pipe (a batch job's log) — unless stdout carries the event stream."""
    return typer.Option(True, "--progress/--no-progress",
                        help="Progress bars on stderr when it is a terminal; plain lines (stage, epoch and loss, "
                             "run id and directory, metrics) on stdout when it is a file or pipe and the event "
                             "stream is not followed (--events -, --events-fd).")


def native_log(ctx: typer.Context):
    """The process's engine.native_log.NativeLog (set by the entry point; None in-process and in tests)."""
    return ctx.obj if ctx is not None and ctx.obj is not None and hasattr(ctx.obj, "save_to") else None
