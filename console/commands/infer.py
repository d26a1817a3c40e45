"""`pinnacle infer BUNDLE DATA.npz`: reconstruct a scan with a trained model bundle (either backend's).

Module level imports only typer/stdlib and the backend registry (engine/backends.py, stdlib only). Outputs go into
a new run: recon.npz, amplitude.png, phase.png, product.h5, product.cxi, and metrics.json when the data holds the
true object (docs/pipeline.md). ``--devices N [--num-nodes M]`` spreads the prediction over N × M processes
(engine/inference.py, docs/scaling.md).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from console.commands.common import JOB_IN_WORKER, SCAN, JobStream, grouped, native_log, parse_devices
from engine.backends import DEFAULT_BACKEND  # the registry: stdlib only, no framework

if TYPE_CHECKING:
    from engine.formats.geometry import ScanOptions


def register(app: typer.Typer) -> None:
    @app.command("infer")
    @grouped
    def infer(
        ctx: typer.Context,
        bundle: str = typer.Argument(..., metavar="BUNDLE", help="Model bundle directory or .zip."),
        data: str = typer.Argument(..., metavar="DATA", help="Scan to reconstruct: NPZ, CXI or Ptychodus "
                                   "diffraction.h5 (probe optional: the bundle's is used)."),
        backend: str = typer.Option(DEFAULT_BACKEND, "--backend", "-b",
                                    help="tensorflow (default; alias tf) or torch (alias pytorch); any backend "
                                         "loads any bundle."),
        batch_size: int = typer.Option(None, "--batch-size", help="Patterns per batch (default: the bundle's, 64)."),
        truth: str = typer.Option(None, "--truth", metavar="TRUTH.npz",
                                  help="Score against this file's objectGuess when DATA has none."),
        job: JobStream = JOB_IN_WORKER,
        scan: ScanOptions = SCAN,
        accelerator: str = typer.Option(None, "--accelerator",
                                        help="cpu, gpu or auto. Default: the framework's own placement for one "
                                             "process, cpu for several."),
        devices: str = typer.Option("1", "--devices",
                                    help="Processes per node, one per device (process i of a node takes its GPU "
                                         "i; choose them with CUDA_VISIBLE_DEVICES). The scan's groups are split "
                                         "into one contiguous shard per process; "
                                         "rank 0 gathers the patches and writes the one run (docs/scaling.md). On "
                                         "CPU each process gets its share of the cores."),
        num_nodes: int = typer.Option(1, "--num-nodes", help="Nodes, each with --devices processes; above 1 the "
                                      "ranks are started by srun or torchrun (docs/scaling.md)."),
    ) -> None:
        """Reconstruct a scan with a model bundle: stitched object, previews, Ptychodus product (product.h5, .cxi)."""
        from engine.inference import infer_job

        code = infer_job(bundle, data, backend, job.runs, job.events, job.events_fd, batch_size, truth,
                         human=job.human, native_log=native_log(ctx), options=scan, accelerator=accelerator,
                         devices=parse_devices(devices), num_nodes=num_nodes)
        raise typer.Exit(code)
