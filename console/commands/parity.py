"""`pinnacle parity DATA.npz [--test HELD_OUT.npz]`: prove that the two backends agree (docs/parity.md).

The command parses its options and runs engine.parity.job.parity_job (levels 0–2 in one probe child per backend,
level 3 as ``pinnacle train``/``infer`` children, then parity.json, parity.md and images in the run directory); it
prints the verdict table on stdout. Exit 0 when every check passes, 3 when any is out of tolerance, 2 for bad input
(before any run dir).
Module level imports only typer/stdlib; this process never imports TensorFlow or PyTorch.
"""
from __future__ import annotations

import typer

from console.commands.common import JOB, JobStream, grouped, native_log

#: Default epochs: the CLI's training length, where round-off no longer decides the result (docs/parity.md "Level 3");
#: the whole fixture parity (probes, two trainings, four inferences) in about 3 minutes on 2 cores.
DEFAULT_EPOCHS = 20


def parse_levels(text: str) -> tuple[int, ...]:
    from engine.errors import InputError
    from engine.parity.checks import LEVELS

    try:
        levels = tuple(sorted({int(x) for x in text.replace(" ", "").split(",") if x}))
    except ValueError:
        levels = ()
    if not levels or any(x not in LEVELS for x in levels):
        raise InputError("--levels", text, "expected a comma-separated subset of 0,1,2,3 (3 includes cross-loading)")
    return levels


def table_rows(checks: list[dict]) -> list[dict]:
    """The checks as the verdict table shows them: passing checks of one ``group`` (e.g. the gradient of every
    parameter tensor) folded into one row naming the count and the worst; every failing check on its own row."""
    rows: list[dict] = []
    folded: dict[str, list[dict]] = {}
    for c in checks:
        group = c.get("group") or ""
        if group and c["passed"]:
            if group not in folded:
                folded[group] = []
                rows.append({"fold": group})
            folded[group].append(c)
        else:
            rows.append(c)
    out = []
    for r in rows:
        if "fold" not in r:
            out.append(r)
            continue
        members = folded[r["fold"]]
        worst = max(members, key=lambda c: (c["value"] or 0) / (c["tolerance"] or 1))
        out.append({**worst, "name": f"{r['fold']}: {len(members)} pass, worst {worst['subject']}", "backend": ""})
    return out


def verdict_table(report: dict):
    from rich.markup import escape
    from rich.table import Table

    from engine.backends import BACKENDS, LABELS
    from engine.parity.report import level_key

    first, second = (LABELS[b] for b in BACKENDS[:2])  # the pair a parity run compares, in its order
    table = Table(title=f"Pinnacle parity: {first} vs {second}", title_justify="left")
    for col, kw in (("level", {}), ("check", {}), ("value", {"justify": "right"}),
                    ("tolerance", {"justify": "right"}), ("result", {})):
        table.add_column(col, **kw)
    for c in table_rows(report["checks"]):
        v = c["value"]
        value = f"{v:.3g}" if isinstance(v, (int, float)) else str(v if v is not None else "missing")
        result = "[green]pass[/]" if c["passed"] else "[bold red]FAIL[/]"
        name = c["name"] + (f" [{c['backend']}]" if c["backend"] and c["backend"] not in c["name"] else "")
        table.add_row(level_key(c["level"]), escape(name), value, f"{c['tolerance']:.3g}", result)
    return table


def print_verdict(report: dict, run_dir, as_json: bool, to_stderr: bool) -> None:
    """parity.json on stdout (``--json``), or the verdict table, the failures and one line naming the report."""
    import json
    import sys

    from engine.parity.report import json_safe

    if as_json:
        print(json.dumps(json_safe(report), indent=2))
        return
    from rich.console import Console
    from rich.markup import escape

    out = Console(file=sys.stderr if to_stderr else sys.stdout, width=max(120, Console().width),
                  soft_wrap=False)  # stdout belongs to the event stream with --events -
    out.print(verdict_table(report))
    for line in report["failures"]:
        out.print(f"[bold red]FAIL[/] {escape(line)}", highlight=False)
    n, bad = len(report["checks"]), len(report["failures"])
    verdict = (f"[bold green]PASS[/]: the backends agree on all {n} checks" if report["passed"] else
               f"[bold red]FAIL[/]: {bad} of {n} checks out of tolerance (exit 3)")
    out.print(f"{verdict}. Report: {run_dir / 'parity.md'}", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("parity")
    @grouped
    def parity(
        ctx: typer.Context,
        data: str = typer.Argument(..., metavar="DATA.npz", help="Training scan (needs probeGuess)."),
        test: str = typer.Option(None, "--test", metavar="HELD_OUT.npz",
                                 help="Held-out scan with objectGuess for level 3 (default: DATA itself)."),
        epochs: int = typer.Option(DEFAULT_EPOCHS, "--epochs",
                                   help="Level-3 training epochs per backend (default 5: ~3 min on the fixture)."),
        gridsize: int = typer.Option(1, "--gridsize", help="g: groups of g² neighbouring patterns (1, 2 or 3)."),
        seed: int = typer.Option(0, "--seed", help="Seed for the initial weights, groups and batch order."),
        filters_scale: int = typer.Option(1, "--filters-scale", help="Network width f (1: CI size; 2: paper)."),
        levels: str = typer.Option("0,1,2,3", "--levels",
                                   help="Levels to run, e.g. 0,1,2 for a quick check (3 includes cross-loading)."),
        as_json: bool = typer.Option(False, "--json", help="Print parity.json to stdout instead of the table."),
        job: JobStream = JOB,
    ) -> None:
        """Run the parity levels 0–3 and cross-loading on both backends; exit 3 when anything is out of tolerance."""
        from engine.errors import InputError
        from engine.parity.job import parity_job

        lv = parse_levels(levels)
        if as_json and job.events == "-":
            raise InputError("--json", None, "expected the event stream elsewhere than stdout (--events PATH)")

        def show(report: dict, run_dir) -> None:
            print_verdict(report, run_dir, as_json, to_stderr=job.events == "-")

        code = parity_job(data, test, epochs=epochs, gridsize=gridsize, seed=seed, filters_scale=filters_scale,
                          levels=lv, runs_root=job.runs, events=job.events, events_fd=job.events_fd,
                          human=job.human, native_log=native_log(ctx), show=show)
        raise typer.Exit(code)
