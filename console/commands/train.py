"""`pinnacle train DATA.npz`: train the PINN on a scan and save a model bundle into a new run.

Module level imports only typer/stdlib and the backend registry (engine/backends.py, stdlib only); the engine and
the selected framework load inside the command, so `pinnacle --help` never imports TensorFlow or PyTorch.

CLI defaults are sized for the demo: the bundled fixture (N = 64, ~250 patterns) trains in about a minute on
2 CPU cores with the default TensorFlow backend. The paper network is ``--filters-scale 2``; the CLI default is 1
(the "CI size", ~4× cheaper per step), one group per pattern (no duplicated patterns that could leak between the
training and validation groups) and 20 epochs (held-out phase SSIM ≈ 0.56 on the fixture; 10 epochs
gave 0.48, an untrained network 0.38; learning rates above 1e-3 stall this network). Pass ``--filters-scale 2 --epochs 50`` for paper-size runs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from console.commands.common import (SCAN, STREAM, JobStream, grouped, native_log, parse_devices,
                                     progress_option)
from engine.backends import DEFAULT_BACKEND  # the registry: stdlib only, no framework

if TYPE_CHECKING:
    from engine.formats.geometry import ScanOptions

#: CLI defaults (see the module docstring: about one minute on the fixture with 2 cores).
DEFAULT_EPOCHS = 20
#: Batch 4, not 16: on the fixture's 20 epochs it gives held-out phase SSIM 0.84 vs 0.80, amplitude SSIM 0.43 vs 0.29
#: and complex FRC50 ~16 vs ~1.5 px in about the same time (docs/performance.md "Batch size").
DEFAULT_BATCH_SIZE = 4
DEFAULT_FILTERS_SCALE = 1
DEFAULT_N_GROUPS = 0  # one group per pattern


def build_config(ds, backend: str, epochs: int, gridsize: int, n_groups: int | None, batch_size: int,
                 filters_scale: int, learning_rate: float, loss: str, seed: int, val_fraction: float,
                 augment: bool = True, lr_schedule: str = "constant"):
    """One immutable RunConfig from the options; N comes from the data. ConfigError names the bad option."""
    from engine.config import ModelConfig, RunConfig, TrainingConfig
    from engine.errors import ConfigError, InputError
    from engine.grouping import default_neighbours

    options = {"N": None, "n_filters_scale": "--filters-scale", "gridsize": "--gridsize", "epochs": "--epochs",
               "batch_size": "--batch-size", "learning_rate": "--learning-rate", "loss": "--loss",
               "n_groups": "--n-groups", "val_fraction": "--val-fraction", "seed": "--seed",
               "lr_schedule": "--lr-schedule"}
    try:
        model = ModelConfig(N=ds.N, n_filters_scale=filters_scale, gridsize=gridsize)
        training = TrainingConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, loss=loss,
                                  n_groups=n_groups, val_fraction=val_fraction, seed=seed,
                                  neighbours=default_neighbours(gridsize), augment=augment,
                                  lr_schedule=lr_schedule)
        return RunConfig(model=model, training=training, backend=backend)
    except ConfigError as exc:
        if exc.key == "N":
            raise InputError(ds.source, "diffraction", f"expected patterns of N = 32, 64, 128 or 256, got {ds.N}")
        raise InputError(options.get(exc.key) or str(exc.key), None, exc.expected) from exc


def register(app: typer.Typer) -> None:
    @app.command("train")
    @grouped
    def train(
        ctx: typer.Context,
        data: str = typer.Argument(..., metavar="DATA", help="Training scan (NPZ, CXI, Ptychodus diffraction.h5) "
                                   "with a probe."),
        backend: str = typer.Option(DEFAULT_BACKEND, "--backend", "-b",
                                    help="tensorflow (default; alias tf) or torch (alias pytorch)."),
        epochs: int = typer.Option(DEFAULT_EPOCHS, "--epochs",
                                   help=f"Epochs (default {DEFAULT_EPOCHS}: about a minute on the fixture with 2 cores, tensorflow)."),
        gridsize: int = typer.Option(1, "--gridsize", help="g: groups of g² neighbouring patterns (1, 2 or 3)."),
        n_groups: int = typer.Option(DEFAULT_N_GROUPS, "--n-groups",
                                     help="Groups to train on; 0 (default) = one group per pattern, each "
                                          "pattern seeding one group."),
        batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size",
                                       help=f"Groups per batch (default {DEFAULT_BATCH_SIZE}: on 2 cores an epoch "
                                            "takes about as long as at 16 and makes 4× the steps). The global "
                                            "batch, split evenly across the replicas of --devices x --num-nodes "
                                            "(it must divide)."),
        filters_scale: int = typer.Option(DEFAULT_FILTERS_SCALE, "--filters-scale",
                                          help="Network width f (filters 32·f, 64·f, ...). Default 1, the CI "
                                               "size, so the demo trains in about a minute; the paper uses 2."),
        learning_rate: float = typer.Option(1e-3, "--learning-rate", help="Adam learning rate. Never "
                                            "scaled for a larger --batch-size or more replicas: set it yourself."),
        lr_schedule: str = typer.Option("constant", "--lr-schedule",
                                        help="constant (default) or cosine: from --learning-rate down to 1 % of it "
                                             "at the last epoch. cosine is worth it on long runs (the ten-minute "
                                             "setting for a 1,024-pattern scan: --epochs 60 --lr-schedule cosine)."),
        loss: str = typer.Option("poisson", "--loss", help="poisson (counts NLL) or mae (amplitude)."),
        seed: int = typer.Option(0, "--seed", help="Seed for weights, groups, split and batch order."),
        val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of groups held out for val loss."),
        augment: bool = typer.Option(True, "--augment/--no-augment",
                                     help="Where the probe is unchanged by a flip or transpose (simulated probes "
                                          "usually are; real optics are not), show each pattern in a random such "
                                          "orientation per epoch: the pattern of the flipped object, so more "
                                          "objects to learn from at no cost (docs/pipeline.md)."),
        job: JobStream = STREAM,
        resume: str = typer.Option(None, "--resume", metavar="RUN_OR_CKPT",
                                   help="Continue a run (directory, run id, or checkpoint) of the same backend; "
                                        "--epochs counts the total."),
        accelerator: str = typer.Option("cpu", "--accelerator",
                                        help="cpu, gpu or auto (a GPU needs the CUDA builds: README, GPU install)."),
        devices: str = typer.Option("1", "--devices", help="Replicas per node: a count, or GPU indices such as 0,1. "
                                    "On CPU each is a process (2 = two processes on this machine); data-parallel, "
                                    "one run written by rank 0 (docs/scaling.md)."),
        num_nodes: int = typer.Option(1, "--num-nodes", help="Nodes, each with --devices replicas; above 1 the "
                                      "ranks are started by srun or torchrun (docs/scaling.md)."),
        test: str = typer.Option(None, "--test", metavar="HELD_OUT.npz",
                                 help="After training, reconstruct this scan with the new bundle (and score it "
                                      "when it has objectGuess)."),
        eval_every: int = typer.Option(0, "--eval-every", metavar="K",
                                       help="With --test: reconstruct and score the held-out scan every K epochs "
                                            "(metric events, previews/, the curve in metrics.json); 0 = epochs/5."),
        test_refine: int = typer.Option(0, "--test-refine", metavar="EPOCHS",
                                        help="With --test: also refine the held-out scan from the network's object "
                                             "for EPOCHS epochs (hybrid, as `pinnacle reconstruct` does; 60 is its "
                                             "default) and report the network alone and hybrid side by side "
                                             "(recon_hybrid.npz, metrics_hybrid.json); 0 (default) = the network "
                                             "only."),
        progress: bool = progress_option(),
        scan: ScanOptions = SCAN,
    ) -> None:
        """Train the physics-informed network and write a model bundle (run dir: bundle/, checkpoints/)."""
        from engine.backends import canonical_name
        from engine.pipeline import load_data, train_job

        name = canonical_name(backend)
        ds = load_data(data, require_probe=True, options=scan)
        cfg = build_config(ds, name, epochs, gridsize, n_groups or None, batch_size, filters_scale,
                           learning_rate, loss, seed, val_fraction, augment, lr_schedule)
        dev = parse_devices(devices)
        if eval_every < 0:
            from engine.errors import InputError

            raise InputError("--eval-every", str(eval_every), "a number of epochs >= 1 (or 0 for epochs/5)")
        code = train_job(data, cfg, job.runs, job.events, job.events_fd, resume, accelerator=accelerator,
                         devices=dev, num_nodes=num_nodes, test_path=test, dataset=ds,
                         human=None if progress else False, native_log=native_log(ctx), options=scan,
                         eval_every=eval_every or None, test_refine=test_refine)
        raise typer.Exit(code)
