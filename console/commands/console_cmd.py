"""`pinnacle console`: open the operator console (also what bare `pinnacle` does)."""
from __future__ import annotations

import typer


def open_console(data: str | None = None, runs: str = "runs") -> None:
    try:
        from console.app import run_app
    except ImportError:  # the console lands in its own issue
        typer.echo("The console is not available yet; see `pinnacle --help` for headless commands.", err=True)
        raise typer.Exit(2)
    run_app(data=data, runs=runs)


def register(app: typer.Typer) -> None:
    @app.command("console")
    def console(
        data: str = typer.Option(None, "--data", help="Dataset (NPZ) to select at start; default: the bundled fixture."),
        runs: str = typer.Option("runs", "--runs", help="Run store directory."),
    ) -> None:
        """Open the operator console (Textual)."""
        open_console(data=data, runs=runs)
