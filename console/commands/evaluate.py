"""`pinnacle evaluate RECON.npz --truth DATA.npz [--json]`: score a reconstruction against the true object.

Module level imports only typer/stdlib (the CLI stays fast); numpy and the engine load inside the command.
"""
from __future__ import annotations

import json
import math

import typer


def load_truth(path: str):
    """(object, positions (M, 2) as (x, y), N, probe or None) of a scan file; no objectGuess → InputError."""
    import numpy as np

    from engine.dataset import load_dataset
    from engine.errors import InputError

    ds = load_dataset(path)
    if ds.object is None:
        raise InputError(path, "objectGuess", "present: evaluation needs the true object")
    return np.asarray(ds.object), np.asarray(ds.positions, dtype=np.float64), int(ds.N), ds.probe


def _fmt(value) -> str:
    if value is None:
        return "not reached"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    return str(value)


ROWS = (
    ("MAE", "mae"), ("PSNR (peak 1) dB", "psnr"), ("PSNR (R=255, papers) dB", "psnr_255"), ("SSIM", "ssim"),
    ("FRC50 ring", "frc50_ring"), ("FRC50 resolution px", "frc50_px"),
    ("FRC 1/7 ring", "frc7_ring"), ("FRC 1/7 resolution px", "frc7_px"),
)


def print_table(result: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=(
        "Scanned region, pixels the probe lit (when the truth file has a probe); shift registered (1/20 px); amplitude LS-scaled; phase offset+ramp removed, "
        "phase MAE in rad (wrapped), phase PSNR/SSIM on (φ+π)/2π; PSNR peak 1; FRC on Hann-windowed square, "
        "px = side/ring."))
    table.add_column("metric")
    table.add_column("amplitude", justify="right")
    table.add_column("phase", justify="right")
    for label, key in ROWS:
        table.add_row(label, _fmt(result["amplitude"].get(key)), _fmt(result["phase"].get(key)))
    dy, dx = result["registration_shift_px"]
    table.add_row("shift (dy, dx) px", f"{dy:+.2f}, {dx:+.2f}", "")
    table.add_row("amplitude scale", _fmt(result["amplitude"]["scale"]), "")
    Console().print(table)


def run_evaluate(recon_path: str, truth_path: str) -> dict:
    from engine.errors import InputError
    from engine.metrics import evaluate
    from engine.recon import load_recon

    recon = load_recon(recon_path)
    truth, positions, N, probe = load_truth(truth_path)
    try:
        return evaluate(recon.object, recon.origin, truth, positions, N, probe)
    except ValueError as exc:
        raise InputError(recon_path, "object", f"a grid that covers the scanned region ({exc})") from exc


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        recon: str = typer.Argument(..., help="Reconstruction NPZ (recon.npz), or a dataset NPZ (objectGuess)."),
        truth: str = typer.Option(..., "--truth", help="Dataset NPZ holding the true object (objectGuess)."),
        as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON (inf written as \"inf\")."),
    ) -> None:
        """Score a reconstruction against the true object (MAE, PSNR, SSIM, FRC) after ambiguity removal."""
        result = run_evaluate(recon, truth)
        if as_json:
            from engine.jsonsafe import json_safe

            typer.echo(json.dumps(json_safe(result), indent=2))
        else:
            print_table(result, f"{recon} vs {truth}")
