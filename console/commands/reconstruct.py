"""`pinnacle reconstruct DATA --method pinn|iterative|hybrid`: one command, three ways to get the object.

`pinn` is the network's inference (what `pinnacle infer` does, needs --bundle); `iterative` refines the object from
a flat start against the measured counts (no bundle: a classical baseline); `hybrid` is `pinn`, then refinement
from its output. The default is `hybrid` when a bundle is given, `iterative` otherwise. docs/refinement.md.
Module level imports only typer/stdlib and the backend registry; the engine and the framework load inside the command.
"""
from __future__ import annotations

import typer

from console.commands.common import (check_worker, crop_option, detector_pixel_option, distance_option,
                                     energy_option, events_fd_option, events_option, native_log, probe_from_option,
                                     product_option, progress_option, runs_option, scan_options, worker_option)
from engine.backends import DEFAULT_BACKEND  # the registry: stdlib only, no framework


def register(app: typer.Typer) -> None:
    @app.command("reconstruct")
    def reconstruct(
        ctx: typer.Context,
        data: str = typer.Argument(..., metavar="DATA", help="Scan to reconstruct (iterative needs its probeGuess)."),
        method: str = typer.Option(None, "--method", "-m",
                                   help="pinn, iterative or hybrid (default: hybrid with --bundle, else iterative)."),
        bundle: str = typer.Option(None, "--bundle", metavar="BUNDLE",
                                   help="Model bundle (directory or .zip) for pinn and hybrid."),
        epochs: int = typer.Option(None, "--epochs",
                                   help="Refinement epochs (default 60: within the quality targets on a 256-pattern "
                                        "scan in well under 30 s on 2 cores)."),
        refine_probe: bool = typer.Option(False, "--refine-probe",
                                          help="Refine the probe too (after 2 object-only epochs)."),
        backend: str = typer.Option(DEFAULT_BACKEND, "--backend", "-b",
                                    help="tensorflow (default; alias tf) or torch (alias pytorch)."),
        batch_size: int = typer.Option(None, "--batch-size", help="Network inference batch (default: the bundle's)."),
        energy_ev: float = energy_option(),
        distance_m: float = distance_option(),
        detector_pixel_m: float = detector_pixel_option(),
        crop: int = crop_option(),
        probe_from: str = probe_from_option(),
        product: str = product_option(),
        runs: str = runs_option(),
        events: str = events_option(),
        events_fd: int = events_fd_option(),
        progress: bool = progress_option(),
        worker: str = worker_option(),
    ) -> None:
        """Reconstruct a scan with the network, by iterative refinement, or both (hybrid)."""
        from engine.reconstruction import check_request, reconstruct_job

        check_worker(worker)
        options = scan_options(energy_ev, distance_m, detector_pixel_m, crop, probe_from, product)
        request, ds, b = check_request(data, method, bundle, backend, epochs, refine_probe, batch_size, options)
        code = reconstruct_job(request, ds, b, runs, events, events_fd, human=None if progress else False,
                               native_log=native_log(ctx))
        raise typer.Exit(code)
