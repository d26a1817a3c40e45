"""Canned inputs for the console tests: a tiny dataset, finished runs on disk, and event streams."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.config import SimulationConfig
from engine.simulate import simulate

NOW = 1_767_000_000.0  # the mock clock: every "ago" in a snapshot is relative to this


def clock() -> float:
    return NOW


def make_dataset(path: Path, seed: int = 0) -> Path:
    arrays = simulate(SimulationConfig(N=32, n_positions=36, object_size=80, probe_radius=6, scan_step=5,
                                       nphotons=1e6, seed=seed))
    np.savez(path, **arrays)
    return path


def _recon(seed: int, size: int = 48) -> np.ndarray:
    y, x = np.mgrid[:size, :size] / size
    amp = 0.6 + 0.4 * np.cos(2 * np.pi * (3 + seed) * x) ** 2
    phase = 1.2 * np.sin(2 * np.pi * 2 * y) * np.cos(2 * np.pi * x + 0.1 * seed)
    return (amp * np.exp(1j * phase)).astype(np.complex64)


def write_recon(path: Path, obj: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, object=obj, amplitude=np.abs(obj), phase=np.angle(obj), origin_x=0.0, origin_y=0.0)


def make_run(root: Path, run_id: str, *, kind="train", status="ok", backend="tensorflow", minutes_ago=10.0,
             duration=62.0, metrics: dict | None = None, recon=True) -> Path:
    d = root / run_id
    d.mkdir(parents=True, exist_ok=True)
    import datetime as dt

    start = dt.datetime.fromtimestamp(NOW - 60 * minutes_ago, dt.timezone.utc)
    rec = {"format": 1, "run_id": run_id, "kind": kind, "status": status, "backend": backend,
           "dataset": {"path": "fixtures/train.npz"}, "config": {}, "created": start.isoformat(),
           "finished": (start + dt.timedelta(seconds=duration)).isoformat(), "metrics": metrics or {}}
    (d / "run.json").write_text(json.dumps(rec))
    if metrics:
        (d / "metrics.json").write_text(json.dumps(metrics))
    if recon:
        write_recon(d / "recon.npz", _recon(0))
        (d / "amplitude.png").write_bytes(b"")
        (d / "phase.png").write_bytes(b"")
    return d


def make_parity_run(root: Path, run_id: str = "20260101-120000-beef-parity", fail=False) -> Path:
    d = make_run(root, run_id, kind="parity", backend="both", minutes_ago=3, duration=140.0, recon=False)
    write_recon(d / "tensorflow" / "recon.npz", _recon(0))
    write_recon(d / "torch" / "recon.npz", _recon(1) if fail else _recon(0) * np.exp(0.01j))
    checks = [
        {"name": "forward model", "level": 0, "value": 3.1e-7, "tolerance": 1e-5, "passed": True},
        {"name": "network output", "level": 1, "value": 2.2e-5, "tolerance": 1e-4, "passed": True},
        {"name": "one Adam step", "level": 2, "value": 4.0e-5, "tolerance": 1e-4, "passed": True},
        {"name": "phase SSIM", "level": 3, "value": 0.08 if fail else 0.004, "tolerance": 0.02, "passed": not fail},
    ]
    report = {"checks": checks, "passed": not fail,
              "metrics": {"tensorflow": {"phase_ssim": 0.81, "amplitude_mae": 0.042, "frc50": 17.0},
                          "torch": {"phase_ssim": 0.73 if fail else 0.806, "amplitude_mae": 0.044, "frc50": 16.0}},
              "runtimes": {"tensorflow": {"training": 61.2, "inference": 2.1, "stitching": 0.05},
                           "torch": {"training": 58.7, "inference": 2.4, "stitching": 0.05}}}
    (d / "parity.json").write_text(json.dumps(report))
    return d


def ev(type_, seq, t, **kw) -> dict:
    return {"v": 1, "type": type_, "run_id": "20260101-120500-cafe-train", "seq": seq, "t": t, **kw}


def training_stream(epochs_done: int, epochs: int = 8, finish: str | None = None, run_dir: str = "") -> list[dict]:
    """A training run: stages, epochs with losses, a warning, progress inside the current epoch."""
    out = [ev("run_started", 1, 0.0, kind="train", backend="tensorflow", run_dir=run_dir, pid=1),
           ev("stage", 2, 0.1, stage="loading"), ev("stage", 3, 0.8, stage="grouping"),
           ev("warning", 4, 0.9, message="12 groups dropped: fewer than 4 neighbours"),
           ev("stage", 5, 1.0, stage="training")]
    t, seq = 1.0, 6
    for e in range(1, epochs_done + 1):
        for i in (0, 32, 64):
            out.append(ev("progress", seq, t + i / 64 * 7.5, done=i, total=64))
            seq += 1
        t += 7.5
        out.append(ev("epoch", seq, t, epoch=e, epochs=epochs, train_loss=2.0 / e + 0.1, val_loss=2.2 / e + 0.15,
                      lr=1e-3, seconds=7.5, samples_per_s=8.5))
        seq += 1
    if finish is None and epochs_done < epochs:
        out += [ev("progress", seq, t, done=0, total=64), ev("progress", seq + 1, t + 3.0, done=24, total=64)]
    elif finish == "failed":
        out += [ev("error", seq, t, kind="FloatingPointError", message="loss is NaN at epoch 4",
                   traceback="Traceback (most recent call last):\n  ...\nFloatingPointError: loss is NaN"),
                ev("run_finished", seq + 1, t, status="failed", exit_code=1)]
    elif finish:
        out += [ev("stage", seq, t, stage="inference"), ev("stage", seq + 1, t + 2, stage="stitching"),
                ev("metric", seq + 2, t + 3, name="phase_ssim", value=0.81),
                ev("artifact", seq + 3, t + 3, kind="recon", path="recon.npz"),
                ev("run_finished", seq + 4, t + 3.5, status=finish, exit_code=0 if finish == "ok" else 130)]
    return out
