"""`pinnacle console`: open the operator console (also what bare `pinnacle` does)."""
from __future__ import annotations

import os
import sys

import typer

from console.commands.common import DEFAULT_RUNS, RUNS_ENV, runs_option


def open_console(data: str | None = None, runs: str | None = None) -> None:
    """Run the Textual app; it needs a terminal (stdin and stdout), so without one this is bad usage (exit 2).
    ``runs``: the run store; None (bare `pinnacle`) reads PINNACLE_RUNS like every other command, else ./runs."""
    from engine.errors import InputError

    runs = runs or os.environ.get(RUNS_ENV) or DEFAULT_RUNS
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InputError("console", None, "an interactive terminal (stdin/stdout are not a TTY); for scripts and "
                         "batch jobs use the headless commands (pinnacle --help)")
    from console.app import run_app

    run_app(data=data, runs=runs)


def register(app: typer.Typer) -> None:
    @app.command("console")
    def console(
        data: str = typer.Option(None, "--data", help="Dataset (NPZ) to select at start; default: the bundled fixture."),
        runs: str = runs_option(),
    ) -> None:
        """Open the operator console (Textual)."""
        open_console(data=data, runs=runs)
