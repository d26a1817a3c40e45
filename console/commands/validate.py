"""`pinnacle validate DATA.npz [--json]`: check a scan against the data contract and summarise it.

Exit 0 when valid; a bad file raises InputError, which the CLI turns into one line on stderr and exit 2.
Warnings (e.g. the legacy (N, N, M) orientation) go to stderr as one `pinnacle: warning:` line each.
"""
from __future__ import annotations

import typer


def _rows(summary: dict) -> list[tuple[str, str]]:
    ext = summary["position_extent"]
    step = summary["scan_step"]
    obj = summary["object_shape"]
    return [
        ("file", summary["path"]),
        ("patterns (M)", str(summary["M"])),
        ("pattern size (N)", f"{summary['N']} x {summary['N']}"),
        ("object size (H x W)", f"{obj[0]} x {obj[1]}" if obj else "none"),
        ("nphotons (mean counts/pattern)", f"{summary['nphotons']:.4g}"),
        ("probe (probeGuess)", "yes" if summary["has_probe"] else "no"),
        ("ground truth (objectGuess)", "yes" if summary["has_truth"] else "no"),
        ("position extent x (px)", f"{ext['x'][0]:.2f} .. {ext['x'][1]:.2f}"),
        ("position extent y (px)", f"{ext['y'][0]:.2f} .. {ext['y'][1]:.2f}"),
        ("scan step (median NN, px)", f"{step:.3f}" if step is not None else "n/a (one position)"),
        ("fingerprint (sha256)", summary["fingerprint"]),
    ]


def validate_file(path: str, as_json: bool) -> None:
    """Load (raising InputError on bad input), then print the summary as a rich table or one JSON object."""
    import json
    import sys
    import warnings

    from engine.dataset import load_dataset, summarize

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(path)
    for w in caught:
        print(f"pinnacle: warning: {w.message}".replace("\n", " "), file=sys.stderr)
    summary = summarize(ds)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="valid dataset", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in _rows(summary):
        table.add_row(name, value)
    Console().print(table)


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        data: str = typer.Argument(..., metavar="DATA.npz", help="Scan to check (PtychoPINN NPZ contract)."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    ) -> None:
        """Check a dataset against the data contract; exit 0 if valid, 2 with one line on stderr if not."""
        validate_file(data, as_json)
