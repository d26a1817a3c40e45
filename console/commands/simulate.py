"""`pinnacle simulate OUT.npz|OUT.cxi [options]`: write a seeded simulated scan (+ `OUT.json` sidecar).

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


def run_simulate(out: str, params: dict, geometry: dict | None = None) -> str:
    """Validate, simulate, write; returns the one-line summary. Raises InputError on bad input."""
    import dataclasses

    from engine.config import SimulationConfig
    from engine.errors import ConfigError, InputError
    from engine.simulate import sidecar_path, write_simulation

    path = Path(out)
    if path.suffix.lower() not in (".npz", ".cxi"):
        raise InputError(out, None, "expected an output file name ending in .npz or .cxi")
    if not path.parent.is_dir():
        raise InputError(out, None, f"expected a path in an existing directory ({path.parent} does not exist)")
    if path.is_dir():
        raise InputError(out, None, "expected a file path, got a directory")
    if params.get("n_positions") == params.get("N"):
        raise InputError("--positions", None, f"expected a number of positions other than N = {params['N']} "
                         "(an (N, N, N) stack is ambiguous with the legacy (N, N, M) orientation)")
    from console.commands.common import scan_options
    from engine.simulate import default_geometry

    geometry = geometry or {}
    scan_options(**geometry)  # InputError naming a non-positive --energy-ev / --distance-m / --detector-pixel-m
    given = any(v is not None for v in geometry.values())
    try:
        cfg = SimulationConfig(**params)
        meta = write_simulation(path, cfg, default_geometry(**geometry) if given else None)
    except ConfigError as exc:
        option = OPTION_OF.get(exc.key or "", exc.key or "config")
        value = params.get(exc.key or "")
        raise InputError(option, None, f"expected {exc.expected}, got {value!r}") from None
    except OSError as exc:  # the directory exists but cannot be written (permissions, a read-only filesystem)
        raise InputError(out, None, f"expected a writable path ({exc.strerror or exc})") from None
    p = dataclasses.asdict(cfg)
    g = meta.get("geometry")
    pixel = f", object pixel {g['object_pixel_m'] * 1e9:.6g} nm" if g else ""
    return (f"wrote {path} ({p['n_positions']} patterns {p['N']}x{p['N']}, {p['object_kind']} object "
            f"{p['object_size']}x{p['object_size']}, {p['probe_kind']} probe r={p['probe_radius']:g}, "
            f"{p['scan_kind']} scan, nphotons {meta['nphotons_measured']:.4g} measured, seed {p['seed']}{pixel}) "
            f"+ {sidecar_path(path).name}")


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate(
        out: str = typer.Argument(..., metavar="OUT.npz|OUT.cxi",
                                  help="Output NPZ or CXI; a JSON sidecar OUT.json is written next to it."),
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
        energy_ev: float = typer.Option(None, "--energy-ev", metavar="EV",
                                        help="Photon energy stored with the scan (default for CXI: 12398.42 eV, λ = 1 Å)."),
        distance_m: float = typer.Option(None, "--distance-m", metavar="M",
                                         help="Detector distance (default for CXI: 0.48 m)."),
        detector_pixel_m: float = typer.Option(None, "--detector-pixel-m", metavar="M",
                                               help="Detector pixel (default for CXI: 75e-6 m; object pixel 10 nm at N = 64)."),
    ) -> None:
        """Simulate a ptychography scan (seeded, bit-reproducible) with ground truth."""
        params = dict(object_kind=object_kind, probe_kind=probe_kind, scan_kind=scan_kind, N=N,
                      n_positions=n_positions, object_size=object_size, nphotons=nphotons,
                      probe_radius=probe_radius, probe_defocus=probe_defocus, scan_step=scan_step,
                      jitter=jitter, seed=seed)
        typer.echo(run_simulate(out, params, dict(energy_ev=energy_ev, distance_m=distance_m,
                                                  detector_pixel_m=detector_pixel_m)))
