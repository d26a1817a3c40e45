"""`pinnacle runs` (list the run store) and `pinnacle runs show RUN` (one run's config, timings, metrics, artifacts).

Reads only run.json files; a run whose writer died is shown as ``interrupted`` (the run store decides that from
the writer lock, not from a pid). Module level imports only typer/stdlib.
"""
from __future__ import annotations

import json

import typer

from console.commands.common import runs_option
from engine.events import CANCELLED, FAILED, INTERRUPTED, OK, RUNNING


def key_metric(record: dict) -> tuple[str, object] | None:
    """(name, value) to show in a listing: the job's declared key metric, else the last epoch's loss."""
    metrics = record.get("metrics") or {}
    name = record.get("key_metric")
    if name and name in metrics:
        return name, metrics[name]
    last = record.get("last_epoch") or {}
    for name in ("val_loss", "train_loss"):
        if last.get(name) is not None:
            return name, last[name]
    if metrics:
        name = sorted(metrics)[0]
        return name, metrics[name]
    return None


def duration(record: dict) -> float | None:
    """Seconds the run took (or has taken until its last run.json update)."""
    if isinstance(record.get("duration"), (int, float)):
        return float(record["duration"])
    from datetime import datetime

    try:
        start = datetime.fromisoformat(str(record["created"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(record.get("finished") or record["updated"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def summary(record: dict) -> dict:
    """The listing row of one run (also the --json shape of `pinnacle runs`)."""
    dataset = record.get("dataset") or {}
    km = key_metric(record)
    return {
        "run_id": record.get("run_id"), "kind": record.get("kind"), "status": record.get("status"),
        "backend": record.get("backend"), "dataset": dataset.get("path") if isinstance(dataset, dict) else dataset,
        "created": record.get("created"), "duration": duration(record), "stage": record.get("stage"),
        "key_metric": {"name": km[0], "value": km[1]} if km else None, "dir": record.get("dir"),
        "error": record.get("error"),
    }


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _fmt_value(v: object) -> str:
    return f"{v:.5g}" if isinstance(v, float) else str(v)


STATUS_STYLE = {OK: "green", FAILED: "red", CANCELLED: "yellow", INTERRUPTED: "magenta", RUNNING: "cyan"}


def print_list(rows: list[dict], root: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    if not rows:
        console.print(f"no runs in {root}", markup=False)
        return
    table = Table(box=None, header_style="bold")
    width = max(len(str(r["run_id"])) for r in rows)
    table.add_column("run", no_wrap=True, min_width=width)
    for col in ("kind", "status", "backend", "dataset", "duration", "key metric / error"):
        table.add_column(col, no_wrap=col in ("status", "duration"))
    for r in rows:
        km = r["key_metric"]
        style = STATUS_STYLE.get(str(r["status"]), "")
        err = r.get("error") if r["status"] == FAILED else None
        last = (f"{err.get('kind')}: {err.get('message')}" if isinstance(err, dict) else
                f"{km['name']}={_fmt_value(km['value'])}" if km else "-")
        table.add_row(str(r["run_id"]), str(r["kind"] or "-"), f"[{style}]{r['status']}[/]" if style else str(r["status"]),
                      str(r["backend"] or "-"), str(r["dataset"] or "-"), _fmt_seconds(r["duration"]), last)
    console.print(table)


def print_show(record: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    head = Table.grid(padding=(0, 2))
    for key in ("run_id", "kind", "status", "backend", "stage", "created", "finished", "exit_code", "pid", "dir"):
        head.add_row(key, str(record.get(key) if record.get(key) is not None else "-"))
    head.add_row("duration", _fmt_seconds(duration(record)))
    err = record.get("error")
    if isinstance(err, dict):
        head.add_row("error", f"{err.get('kind')}: {err.get('message')}")
    head.add_row("dataset", json.dumps(record.get("dataset")))
    console.print(head)
    sections = (("config", record.get("config") or {}), ("timings (s)", record.get("timings") or {}),
                ("metrics", record.get("metrics") or {}))
    for title, data in sections:
        console.print(f"\n[bold]{title}[/]")
        if not data:
            console.print("  -")
        for k, v in data.items():
            console.print(f"  {k}: {_fmt_value(v) if not isinstance(v, (dict, list)) else json.dumps(v)}",
                          markup=False, highlight=False)
    console.print("\n[bold]artifacts[/]")
    for a in record.get("artifacts") or []:
        console.print(f"  {a.get('kind')}: {a.get('path')}", markup=False, highlight=False)
    if not record.get("artifacts"):
        console.print("  -")


def register(app: typer.Typer) -> None:
    runs_app = typer.Typer(name="runs", help="List and inspect runs in the run store.", add_completion=False,
                           no_args_is_help=False)

    @runs_app.callback(invoke_without_command=True)
    def runs_list(
        ctx: typer.Context,
        runs: str = runs_option(),
        as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
    ) -> None:
        """List runs (oldest first) with status, backend, dataset, duration and key metric."""
        if ctx.invoked_subcommand is not None:
            return
        from engine.runstore import RunStore

        store = RunStore(runs)
        store.check_readable()
        rows = [summary(r) for r in store.list()]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        else:
            print_list(rows, runs)

    @runs_app.command("show")
    def runs_show(
        run: str = typer.Argument(..., metavar="RUN", help="Run id, or a unique prefix or part of one."),
        runs: str = runs_option(),
        as_json: bool = typer.Option(False, "--json", help="Print run.json (status resolved) as JSON."),
    ) -> None:
        """Show one run: config, timings, metrics, artifacts."""
        from engine.runstore import RunStore

        record = RunStore(runs).get(run)
        if as_json:
            typer.echo(json.dumps(record, indent=2))
        else:
            print_show(record)

    app.add_typer(runs_app, name="runs")
