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


def _check(name, level, subject, value, tol, passed=True, backend="", detail=""):
    return {"name": name, "level": level, "subject": subject, "backend": backend, "value": value, "tolerance": tol,
            "passed": passed, "detail": detail}


def make_parity_run(root: Path, run_id: str = "20260101-120000-beef-parity", fail=False) -> Path:
    """A parity run in the layout engine/parity_report.py writes (format 1)."""
    d = make_run(root, run_id, kind="parity", backend="both", minutes_ago=3, duration=140.0, recon=False)
    write_recon(d / "runs" / "20260101-120030-0001-infer" / "recon.npz", _recon(0))
    write_recon(d / "runs" / "20260101-120100-0002-infer" / "recon.npz", _recon(1) if fail else _recon(0) * np.exp(0.01j))
    checks = [_check(f"{op} ({b} vs numpy oracle)", 0, op, 3.1e-7 if op != "merge_group" else 1.3e-6, 1e-5, backend=b)
              for b in ("tensorflow", "torch") for op in ("fourier_shift", "merge_group", "forward_intensity")]
    checks += [_check("network output, gridsize 1", 1, "predicted object patches", 7.8e-8, 1e-4),
               _check("parameters after one Adam step, gridsize 1", 2, "parameters", 9.4e-7, 1e-4),
               _check("phase_ssim agreement", 3, "phase_ssim", 0.08 if fail else 0.004, 0.02, passed=not fail),
               _check("amplitude_ssim agreement", 3, "amplitude_ssim", 0.003, 0.02),
               _check("tensorflow bundle inferred by torch", "cross", "tensorflow bundle", 2.2e-7, 1e-4, backend="torch"),
               _check("torch bundle inferred by tensorflow", "cross", "torch bundle", 2.5e-7, 1e-4, backend="tensorflow")]
    report = {"format": 1, "checks": checks, "passed": not fail, "levels": [0, 1, 2, 3],
              "data": "fixtures/train.npz", "test": "fixtures/test.npz",
              "failures": ["level 3: phase_ssim agreement: 0.08 > 0.02"] if fail else [],
              "metrics": {"tensorflow": {"phase_ssim": 0.81, "amplitude_ssim": 0.62, "phase_psnr": 21.3,
                                         "amplitude_psnr": 19.8, "final_train_loss": 1.92e4},
                          "torch": {"phase_ssim": 0.73 if fail else 0.806, "amplitude_ssim": 0.617, "phase_psnr": 21.1,
                                    "amplitude_psnr": 19.9, "final_train_loss": 1.93e4}},
              "runtimes": {"tensorflow": {"train per epoch (s)": 3.5, "infer (patterns/s)": 48.0, "stitch (s)": 0.05},
                           "torch": {"train per epoch (s)": 2.6, "infer (patterns/s)": 61.0, "stitch (s)": 0.05}},
              "reconstructions": {"tensorflow": "runs/20260101-120030-0001-infer/recon.npz",
                                  "torch": "runs/20260101-120100-0002-infer/recon.npz"}}
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
