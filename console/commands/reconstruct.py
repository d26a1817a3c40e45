"""`pinnacle reconstruct DATA --method pinn|iterative|hybrid`: one command, three ways to get the object.

`pinn` is the network's inference (what `pinnacle infer` does, needs --bundle); `iterative` refines the object from
a flat start against the measured counts (no bundle: a classical baseline); `hybrid` is `pinn`, then refinement
from its output. The default is `hybrid` when a bundle is given, `iterative` otherwise. docs/refinement.md.
Module level imports only typer/stdlib and the backend registry; the engine and the framework load inside the command.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from console.commands.common import JOB_IN_WORKER, SCAN, JobStream, grouped, native_log
from engine.backends import DEFAULT_BACKEND  # the registry: stdlib only, no framework

if TYPE_CHECKING:
    from engine.formats.geometry import ScanOptions


def register(app: typer.Typer) -> None:
    @app.command("reconstruct")
    @grouped
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
        regularization: float = typer.Option(None, "--regularization", metavar="BETA",
                                             help="rPIE's β in (0, 1]: how much the step is damped where the probe "
                                                  "lights the object weakly. Default: 0.1, or 0.5 for a scan with "
                                                  "under 3e6 photons per pattern, where 0.1 fits the noise "
                                                  "(docs/refinement.md); the run records the value used."),
        phase_momentum: float = typer.Option(None, "--phase-momentum", metavar="GAIN",
                                             help="Gain of the low-frequency phase momentum in [0, 10] (0: off): "
                                                  "carries the smooth phase, which refinement converges on "
                                                  "slowest, further each epoch. Default: 2, or 0 for a scan with "
                                                  "under 3e6 photons per pattern, where it drifts with the noise "
                                                  "after its best epoch (docs/refinement.md)."),
        backend: str = typer.Option(DEFAULT_BACKEND, "--backend", "-b",
                                    help="tensorflow (default; alias tf) or torch (alias pytorch)."),
        batch_size: int = typer.Option(None, "--batch-size", help="Network inference batch (default: the bundle's)."),
        scan: ScanOptions = SCAN,
        job: JobStream = JOB_IN_WORKER,
    ) -> None:
        """Reconstruct a scan with the network, by iterative refinement, or both (hybrid)."""
        from engine.reconstruct_request import check_request
        from engine.reconstruction import reconstruct_job

        request, ds, b = check_request(data, method, bundle, backend, epochs, refine_probe, batch_size, scan,
                                       regularization, phase_momentum)
        code = reconstruct_job(request, ds, b, job.runs, job.events, job.events_fd, human=job.human,
                               native_log=native_log(ctx))
        raise typer.Exit(code)
