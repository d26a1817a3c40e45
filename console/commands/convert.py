"""`pinnacle convert IN OUT`: a scan between NPZ, CXI and Ptychodus HDF5 (docs/data.md "Converting").

IN is read by content (any format ``pinnacle validate`` reads, with the same geometry options); OUT's format comes
from its name: ``.npz``, ``.cxi``, or a directory / ``diffraction.h5`` for Ptychodus' ``diffraction.h5`` +
``product.h5``. What both formats hold goes across unchanged (tested bit for bit); what OUT cannot hold is named
on stdout. CXI and Ptychodus store positions in metres, so a scan without geometry needs ``--energy-ev``,
``--distance-m`` and ``--detector-pixel-m``. Bad input exits 2 before anything is written.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from console.commands.common import SCAN, grouped, load_scan

if TYPE_CHECKING:
    from engine.formats.geometry import ScanOptions

#: Dataset arrays that only NPZ holds (CXI and Ptychodus files have no place for them).
NPZ_ONLY = ("Y", "scan_index", "xcoords_start", "ycoords_start")
NAMES = {"npz": "NPZ", "cxi": "CXI", "ptychodus": "Ptychodus HDF5"}


def run_convert(src: str, out: str, options=None) -> list[str]:
    """Read ``src``, write ``out``; returns the lines to print. InputError (nothing written) on bad input."""
    from engine.errors import InputError
    from engine.formats import output_kind, save_scan

    kind = output_kind(out)
    target = Path(out)
    if not target.parent.is_dir():
        raise InputError(out, None, f"expected a path in an existing directory ({target.parent} does not exist)")
    if target.exists() and Path(src).exists() and target.resolve() == Path(src).resolve():
        raise InputError(out, None, "expected an output other than the input")
    ds = load_scan(src, options)
    written = save_scan(out, ds)
    g = ds.geometry
    lines = [f"wrote {', '.join(map(str, written))} ({NAMES[kind]}: {ds.M} patterns {ds.N}x{ds.N}, object pixel "
             f"{g.describe()}" + (f", {int(ds.valid.size - ds.valid.sum())} masked pixels" if ds.valid is not None
                                  else "") + ")"]
    lost = [k for k in NPZ_ONLY if kind != "npz" and getattr(ds, k) is not None]
    if lost:
        lines.append(f"not carried by {NAMES[kind]}: {', '.join(lost)}")
    lines += [f"note: {n}" for n in g.notes]
    return lines


def register(app: typer.Typer) -> None:
    @app.command("convert")
    @grouped
    def convert(
        src: str = typer.Argument(..., metavar="IN", help="Scan to read: NPZ, CXI or Ptychodus diffraction.h5 (or its folder)."),
        out: str = typer.Argument(..., metavar="OUT",
                                  help="Output: .npz, .cxi, or a folder / diffraction.h5 (Ptychodus diffraction.h5 + product.h5)."),
        scan: ScanOptions = SCAN,
    ) -> None:
        """Convert a scan between NPZ, CXI and Ptychodus HDF5 (lossless for what both formats hold)."""
        for line in run_convert(src, out, scan):
            typer.echo(line)
