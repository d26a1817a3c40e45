"""`pinnacle validate DATA [--json]`: check a scan (NPZ, CXI, Ptychodus HDF5) against the data contract, summarise it.

Exit 0 when valid; a bad file raises InputError, which the CLI turns into one line on stderr and exit 2.
Warnings (e.g. the legacy (N, N, M) orientation) go to stderr as one `pinnacle: warning:` line each.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from console.commands.common import SCAN, grouped, load_scan

if TYPE_CHECKING:
    from engine.formats.geometry import ScanOptions


def _geometry_rows(summary: dict) -> list[tuple[str, str]]:
    g = summary["geometry"]
    if g["object_pixel_m"] is None:
        rows = [("object pixel", "unknown (the file states no energy, distance or pixel size)")]
    else:
        rows = [("object pixel", f"{g['object_pixel_m'] * 1e9:.6g} nm ({g['source']}"
                 + (f"; given: {', '.join(g['overridden'])}" if g["overridden"] else "") + ")")]
    for label, key, scale, unit in (("photon energy", "energy_ev", 1, "eV"), ("detector distance", "distance_m", 1, "m"),
                                    ("detector pixel", "detector_pixel_m", 1e6, "µm")):
        if g[key] is not None:
            rows.append((label, f"{g[key] * scale:.6g} {unit}"))
    if summary["masked_pixels"]:
        rows.append(("masked pixels", f"{summary['masked_pixels']} (left out of the likelihood)"))
    rows += [("note", n) for n in g["notes"]]
    return rows


def _rows(summary: dict) -> list[tuple[str, str]]:
    ext = summary["position_extent"]
    step = summary["scan_step"]
    obj = summary["object_shape"]
    return [
        ("file", summary["path"]),
        ("format", summary["format"]),
        ("patterns (M)", str(summary["M"])),
        ("pattern size (N)", f"{summary['N']} x {summary['N']}"),
        ("object size (H x W)", f"{obj[0]} x {obj[1]}" if obj else "none"),
        ("nphotons (mean counts/pattern)", f"{summary['nphotons']:.4g}"),
        ("probe (probeGuess)", "yes" if summary["has_probe"] else "no"),
        ("ground truth (objectGuess)", "yes" if summary["has_truth"] else "no"),
        ("position extent x (px)", f"{ext['x'][0]:.2f} .. {ext['x'][1]:.2f}"),
        ("position extent y (px)", f"{ext['y'][0]:.2f} .. {ext['y'][1]:.2f}"),
        ("scan step (median NN, px)", f"{step:.3f}" if step is not None else "n/a (one position)"),
        *_geometry_rows(summary),
        ("fingerprint (sha256)", summary["fingerprint"]),
    ]


def validate_file(path: str, as_json: bool, options=None) -> None:
    """Load (raising InputError on bad input), then print the summary as a rich table or one JSON object."""
    import json

    from engine.dataset import summarize

    summary = summarize(load_scan(path, options))
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
    @grouped
    def validate(
        data: str = typer.Argument(..., metavar="DATA",
                                   help="Scan to check: NPZ, CXI, or Ptychodus diffraction.h5 (or its folder)."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
        scan: ScanOptions = SCAN,
    ) -> None:
        """Check a dataset against the data contract; exit 0 if valid, 2 with one line on stderr if not."""
        validate_file(data, as_json, scan)
