"""Canned inputs for the console tests: a tiny dataset, runs on disk in the run store's layout (run.json as
engine/runstore.py writes it, events.jsonl, recon/metrics files, bundles, held-out previews) and event streams."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from engine.config import SimulationConfig
from engine.simulate import simulate

NOW = 1_767_000_000.0  # the mock clock: every "ago" in a snapshot is relative to this
RUN_ID = "20260101-120500-cafe-train"


def clock() -> float:
    return NOW


def make_dataset(path: Path, seed: int = 0) -> Path:
    arrays = simulate(SimulationConfig(N=32, n_positions=36, object_size=80, probe_radius=6, scan_step=5,
                                       nphotons=1e6, seed=seed))
    np.savez(path, **arrays)
    return path


def truth(size: int = 48) -> np.ndarray:
    """A smooth test object (amplitude 0.6–1, phase ±1.2 rad)."""
    y, x = np.mgrid[:size, :size] / size
    amp = 0.6 + 0.4 * np.cos(2 * np.pi * 3 * x) ** 2
    phase = 1.2 * np.sin(2 * np.pi * 2 * y) * np.cos(2 * np.pi * x)
    return (amp * np.exp(1j * phase)).astype(np.complex64)


def _recon(seed: int, size: int = 48) -> np.ndarray:
    """The truth with seed-dependent noise, a phase offset and an uncovered border (stitching leaves it 0)."""
    rng = np.random.default_rng(seed)
    noise = (0.05 + 0.1 * seed) * rng.standard_normal((2, size, size))
    obj = truth(size) * np.exp(1j * (0.7 + 0.25 * seed + noise[0])) * (1 + noise[1])
    obj[:3], obj[-3:], obj[:, :3], obj[:, -3:] = 0, 0, 0, 0
    return obj.astype(np.complex64)


def _other_backend(obj: np.ndarray) -> np.ndarray:
    """The other backend's object: a global phase offset plus a 2e-3 rad step on a block. A difference made of
    round-off alone (an offset only) is drawn from the last bits of np.exp/np.angle, which differ between AVX2 and
    AVX-512 builds and so changed the snapshot; a piecewise-constant difference far above round-off does not."""
    step = np.zeros(obj.shape)
    step[12:30, 12:30] = 2e-3
    return (obj * np.exp(1j * (0.01 + step))).astype(np.complex64)


def write_recon(path: Path, obj: np.ndarray, **meta) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, object=obj, amplitude=np.abs(obj), phase=np.angle(obj), origin_x=np.int64(0), origin_y=np.int64(0),
             **{k: np.asarray(v) for k, v in meta.items()})


def _iso(minutes_ago: float, plus_s: float = 0.0) -> str:
    t = dt.datetime.fromtimestamp(NOW - 60 * minutes_ago + plus_s, dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def metrics_block(phase_ssim: float, amplitude_ssim: float = 0.62) -> dict:
    """metrics.json as engine/metrics.py evaluate() writes it (the parts the console reads)."""
    return {"amplitude": {"mae": 0.04, "psnr": 19.8, "ssim": amplitude_ssim, "frc50_px": 9.1},
            "phase": {"mae": 0.21, "psnr": 21.3, "ssim": phase_ssim, "frc50_px": 7.4},
            "registration_shift_px": [0.0, 0.0], "region": [4, 44, 4, 44]}


def make_run(root: Path, run_id: str, *, kind="train", status="ok", backend="tensorflow", minutes_ago=10.0,
             duration=62.0, metrics: dict | None = None, recon=True, error: dict | None = None, epochs: int = 8,
             events: list[dict] | None = None, bundle: bool = False, scan: str = "", config: dict | None = None,
             pid: int = 4242) -> Path:
    """A run directory as the run store writes it (docs/protocol.md §2)."""
    d = root / run_id
    d.mkdir(parents=True, exist_ok=True)
    flat = {}
    if metrics:
        flat = {f"{part}_{k}": v for part in ("phase", "amplitude") for k, v in (metrics.get(part) or {}).items()}
    rec = {"format": 1, "run_id": run_id, "kind": kind, "status": status, "backend": backend,
           "dataset": {"path": "fixtures/train.npz", "fingerprint": "ab12cd34ef56"},
           "config": config if config is not None else {"training": {"epochs": epochs}},
           "created": _iso(minutes_ago), "updated": _iso(minutes_ago, duration),
           "finished": _iso(minutes_ago, duration) if status != "running" else None,
           "stage": None if status != "running" else "training", "timings": {"training": duration * 0.9},
           "duration": duration if status != "running" else None,
           "last_epoch": {"epoch": epochs, "epochs": epochs, "train_loss": 0.31, "val_loss": 0.36, "lr": 1e-3},
           "metrics": {"train_loss": 0.31, "val_loss": 0.36, **flat},
           "key_metric": "phase_ssim" if flat else "val_loss", "artifacts": [], "pid": pid,
           "exit_code": {"ok": 0, "failed": 1, "cancelled": 130}.get(status), "error": error}
    (d / "run.json").write_text(json.dumps(rec))
    if metrics:
        (d / "metrics.json").write_text(json.dumps(metrics))
    if recon:
        write_recon(d / "recon.npz", _recon(0), data=scan, backend=backend)
        (d / "amplitude.png").write_bytes(b"")
        (d / "phase.png").write_bytes(b"")
    if bundle:
        (d / "bundle").mkdir(exist_ok=True)
        (d / "bundle" / "manifest.json").write_text(json.dumps({"backend": backend, "history": [{}] * epochs}))
    if events is not None:
        (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return d


def make_hybrid_run(root: Path, scan: Path, run_id: str = "20260101-115000-d00d-reconstruct") -> Path:
    """A hybrid reconstruct run: the PINN's object, the refined one, both scored; the scan holds the truth."""
    obj = truth()
    np.savez(scan, objectGuess=obj, diffraction=np.zeros((1, 32, 32), np.float32), xcoords=np.zeros(1), ycoords=np.zeros(1))
    d = make_run(root, run_id, kind="reconstruct", backend="torch", minutes_ago=40, duration=95.0,
                 metrics=metrics_block(0.88, 0.74), recon=False, config={"method": "hybrid", "bundle": "b", "epochs": 30})
    write_recon(d / "recon_pinn.npz", _recon(1), data=str(scan), method="pinn")
    write_recon(d / "recon.npz", _recon(0), data=str(scan), method="hybrid")
    (d / "metrics_pinn.json").write_text(json.dumps(metrics_block(0.58, 0.55)))
    return d


def _check(name, level, subject, value, tol, passed=True, backend="", detail=""):
    return {"name": name, "level": level, "subject": subject, "backend": backend, "value": value, "tolerance": tol,
            "passed": passed, "detail": detail}


def make_parity_run(root: Path, run_id: str = "20260101-120000-beef-parity", fail=False) -> Path:
    """A parity run in the layout engine/parity/report.py writes (format 1)."""
    d = make_run(root, run_id, kind="parity", backend="both", minutes_ago=3, duration=140.0, recon=False,
                 events=[ev("run_started", 1, 0.0, run_id=run_id, kind="parity", backend=None, run_dir="", pid=77),
                         ev("stage", 2, 0.1, run_id=run_id, stage="training"),
                         ev("log", 3, 30.0, run_id=run_id, level="info", message="training tensorflow 8/8: train loss 0.35"),
                         ev("run_finished", 4, 140.0, run_id=run_id, status="failed" if fail else "ok",
                            exit_code=3 if fail else 0)])
    for i, backend in enumerate(("tensorflow", "torch")):  # its two trainings, in its own run store
        sub = f"20260101-1200{10 + i}0-{i:04d}-train"
        make_run(d / "runs", sub, backend=backend, minutes_ago=3, recon=False, bundle=True,
                 events=training_stream(8, finish="ok", run_id=sub, backend=backend, loss_scale=1.0 + 0.1 * i))
    write_recon(d / "runs" / "20260101-120030-0001-infer" / "recon.npz", _recon(0))
    write_recon(d / "runs" / "20260101-120100-0002-infer" / "recon.npz", _recon(1) if fail else _other_backend(_recon(0)))
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


# ---- event streams ---------------------------------------------------------------------------------------------

def ev(type_, seq, t, run_id: str = RUN_ID, **kw) -> dict:
    return {"v": 1, "type": type_, "run_id": run_id, "seq": seq, "t": t, **kw}


def write_preview(run_dir: Path, epoch: int, quality: float) -> str:
    """previews/epoch_NNNN.npz as the contract describes: downsampled held-out amplitude and offset-free phase,
    getting closer to the truth as ``quality`` goes 0 → 1."""
    t = truth(40)
    rng = np.random.default_rng(epoch)
    obj = t * (1 + (1 - quality) * 0.6 * rng.standard_normal(t.shape))
    phase = np.angle(obj) * quality + (1 - quality) * 0.3 * rng.standard_normal(t.shape)
    rel = f"previews/epoch_{epoch:04d}.npz"
    (run_dir / "previews").mkdir(parents=True, exist_ok=True)
    np.savez(run_dir / rel, amplitude=np.abs(obj).astype(np.float32), phase=phase.astype(np.float32),
             epoch=np.int64(epoch), phase_ssim=np.float64(0.3 + 0.5 * quality))
    return rel


def training_stream(epochs_done: int, epochs: int = 8, finish: str | None = None, run_dir: str = "",
                    previews_every: int = 0, run_id: str = RUN_ID, batches: int = 16,
                    backend: str = "tensorflow", loss_scale: float = 1.0) -> list[dict]:
    """A training run as the engine streams it: stages, progress counted over all epochs (unit batch), epochs
    with losses and the engine's groups/s, a warning; with ``previews_every`` held-out metrics and preview
    artifacts (files written under ``run_dir``)."""
    e_ = lambda type_, seq, t, **kw: ev(type_, seq, t, run_id=run_id, **kw)  # noqa: E731
    out = [e_("run_started", 1, 0.0, kind="train", backend=backend, run_dir=run_dir, pid=4242),
           e_("stage", 2, 0.1, stage="loading"), e_("stage", 3, 0.8, stage="grouping"),
           e_("warning", 4, 0.9, message="12 groups dropped: fewer than 4 neighbours"),
           e_("stage", 5, 1.0, stage="training")]
    t, seq = 1.0, 6
    total = epochs * batches
    for e in range(1, epochs_done + 1):
        for i in (0, batches // 2, batches):
            out.append(e_("progress", seq, t + i / batches * 7.5, done=(e - 1) * batches + i, total=total,
                          unit="batch", stage="training"))
            seq += 1
        t += 7.5
        out.append(e_("epoch", seq, t, epoch=e, epochs=epochs, train_loss=loss_scale * (2.0 / e + 0.1),
                      val_loss=loss_scale * (2.2 / e + 0.15),
                      lr=1e-3, seconds=7.5, samples_per_s=38.4))
        seq += 1
        if previews_every and (e % previews_every == 0 or e == epochs):
            q = e / epochs
            for name, value in (("phase_ssim", 0.3 + 0.5 * q), ("amplitude_ssim", 0.25 + 0.4 * q),
                                ("frc50", None), ("nrmse", 0.9 - 0.5 * q)):
                out.append(e_("metric", seq, t, name=f"heldout_{name}", value=value, epoch=e, stage="training"))
                seq += 1
            rel = write_preview(Path(run_dir), e, q) if run_dir else f"previews/epoch_{e:04d}.npz"
            out.append(e_("artifact", seq, t, kind="preview", path=rel))
            seq += 1
    if finish is None and epochs_done < epochs:
        out += [e_("progress", seq, t + 3.0, done=epochs_done * batches + 6, total=total, unit="batch",
                   stage="training")]
    elif finish == "failed":
        out += [e_("error", seq, t, kind="FloatingPointError", message=f"loss is NaN at epoch {epochs_done + 1}",
                   traceback="Traceback (most recent call last):\n  File \"engine/tf/backend.py\", line 197, in train\n"
                             "    raise FloatingPointError(...)\nFloatingPointError: loss is NaN"),
                e_("run_finished", seq + 1, t, status="failed", exit_code=1)]
    elif finish == "cancelled":
        out += [e_("log", seq, t, level="info", message="cancel requested (SIGINT); stopping"),
                e_("run_finished", seq + 1, t + 0.5, status="cancelled", exit_code=130)]
    elif finish:
        out += [e_("stage", seq, t, stage="saving"), e_("stage", seq + 1, t + 1, stage="inference"),
                e_("progress", seq + 2, t + 1, done=0, total=256, unit="pattern", stage="inference"),
                e_("progress", seq + 3, t + 2, done=256, total=256, unit="pattern", stage="inference"),
                e_("stage", seq + 4, t + 2, stage="stitching"), e_("stage", seq + 5, t + 2.5, stage="evaluating"),
                e_("metric", seq + 6, t + 3, name="phase_ssim", value=0.81),
                e_("artifact", seq + 7, t + 3, kind="recon", path="recon.npz"),
                e_("run_finished", seq + 8, t + 3.5, status=finish, exit_code=0)]
    return out


def hybrid_stream(refine_done: int, refine_epochs: int = 30, run_id: str = "20260101-121000-0abc-reconstruct",
                  patterns: int = 256) -> list[dict]:
    """A hybrid reconstruct run (the contract of `pinnacle reconstruct`): PINN inference, then refinement epochs
    with their own loss (Poisson deviance per pixel) and patterns/s."""
    e_ = lambda type_, seq, t, **kw: ev(type_, seq, t, run_id=run_id, **kw)  # noqa: E731
    out = [e_("run_started", 1, 0.0, kind="reconstruct", backend="torch", run_dir="", pid=5151),
           e_("stage", 2, 0.1, stage="loading"), e_("stage", 3, 0.4, stage="grouping"),
           e_("stage", 4, 0.5, stage="inference"), e_("stage", 5, 2.0, stage="stitching"),
           e_("artifact", 6, 2.2, kind="recon_pinn", path="recon_pinn.npz"), e_("stage", 7, 2.3, stage="refining")]
    t, seq = 2.3, 8
    for e in range(1, refine_done + 1):
        out.append(e_("progress", seq, t, done=0, total=patterns, unit="pattern", stage="refining"))
        out.append(e_("progress", seq + 1, t + 0.6, done=patterns, total=patterns, unit="pattern", stage="refining"))
        t += 0.6
        out.append(e_("epoch", seq + 2, t, epoch=e, epochs=refine_epochs, train_loss=0.9 * 0.93 ** e + 0.12,
                      val_loss=None, lr=0.5, seconds=0.6, samples_per_s=426.7, method="hybrid"))
        seq += 3
    out.append(e_("progress", seq, t, done=0, total=patterns, unit="pattern", stage="refining"))
    out.append(e_("progress", seq + 1, t + 0.3, done=patterns // 2, total=patterns, unit="pattern", stage="refining"))
    return out
