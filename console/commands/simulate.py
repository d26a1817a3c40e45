"""`pinnacle simulate OUT.npz [options]`: write a seeded simulated scan (NPZ + `OUT.npz.json` sidecar).

Bad option values raise InputError naming the option (exit 2, one line); nothing is written unless the whole
simulation succeeded, and both files are written atomically (temp file + rename).
"""
from __future__ import annotations

from pathlib import Path

import typer

#: SimulationConfig field -> the option that sets it (so config errors name what the user typed).
OPTION_OF = {
    "object_kind": "--object", "probe_kind": "--probe", "scan_kind": "--scan", "N": "--N",
    "n_positions": "--positions", "object_size": "--size", "nphotons": "--nphotons",
    "probe_radius": "--probe-radius", "probe_defocus": "--defocus", "scan_step": "--step",
    "jitter": "--jitter", "seed": "--seed",
}


def run_simulate(out: str, params: dict) -> str:
    """Validate, simulate, write; returns the one-line summary. Raises InputError on bad input."""
    import dataclasses

    from engine.config import SimulationConfig
    from engine.errors import ConfigError, InputError
    from engine.simulate import sidecar_path, write_simulation

    path = Path(out)
    if path.suffix.lower() != ".npz":
        raise InputError(out, None, "expected an output file name ending in .npz")
    if not path.parent.is_dir():
        raise InputError(out, None, f"expected a path in an existing directory ({path.parent} does not exist)")
    if path.is_dir():
        raise InputError(out, None, "expected a file path, got a directory")
    if params.get("n_positions") == params.get("N"):
        raise InputError("--positions", None, f"expected a number of positions other than N = {params['N']} "
                         "(an (N, N, N) stack is ambiguous with the legacy (N, N, M) orientation)")
    try:
        cfg = SimulationConfig(**params)
        meta = write_simulation(path, cfg)
    except ConfigError as exc:
        option = OPTION_OF.get(exc.key or "", exc.key or "config")
        value = params.get(exc.key or "")
        raise InputError(option, None, f"expected {exc.expected}, got {value!r}") from None
    except OSError as exc:  # the directory exists but cannot be written (permissions, a read-only filesystem)
        raise InputError(out, None, f"expected a writable path ({exc.strerror or exc})") from None
    p = dataclasses.asdict(cfg)
    return (f"wrote {path} ({p['n_positions']} patterns {p['N']}x{p['N']}, {p['object_kind']} object "
            f"{p['object_size']}x{p['object_size']}, {p['probe_kind']} probe r={p['probe_radius']:g}, "
            f"{p['scan_kind']} scan, nphotons {meta['nphotons_measured']:.4g} measured, seed {p['seed']}) "
            f"+ {sidecar_path(path).name}")


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate(
        out: str = typer.Argument(..., metavar="OUT.npz",
                                  help="Output NPZ; a JSON sidecar OUT.npz.json is written next to it."),
        object_kind: str = typer.Option("lines", "--object", help="Object: lines, grf or dead_leaves."),
        probe_kind: str = typer.Option("disk", "--probe", help="Probe: disk (soft aperture) or gaussian."),
        scan_kind: str = typer.Option("raster", "--scan", help="Scan path: raster (jittered), random or fermat."),
        n_positions: int = typer.Option(256, "--positions", help="Number of scan positions M."),
        object_size: int = typer.Option(160, "--size", help="Object side H = W in pixels."),
        N: int = typer.Option(64, "--N", help="Pattern size N (even)."),
        nphotons: float = typer.Option(1e9, "--nphotons", help="Mean total expected counts per pattern."),
        probe_radius: float = typer.Option(10.0, "--probe-radius",
                                           help="Disk radius (Gaussian: sigma = radius/2), px."),
        probe_defocus: float = typer.Option(0.0, "--defocus", help="Quadratic probe phase at the radius, radians."),
        scan_step: float = typer.Option(6.0, "--step", help="Raster / Fermat spacing, px."),
        jitter: float = typer.Option(0.5, "--jitter", help="Raster jitter, uniform +/- px."),
        seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same bytes)."),
    ) -> None:
        """Simulate a ptychography scan (seeded, bit-reproducible) with ground truth."""
        params = dict(object_kind=object_kind, probe_kind=probe_kind, scan_kind=scan_kind, N=N,
                      n_positions=n_positions, object_size=object_size, nphotons=nphotons,
                      probe_radius=probe_radius, probe_defocus=probe_defocus, scan_step=scan_step,
                      jitter=jitter, seed=seed)
        typer.echo(run_simulate(out, params))
