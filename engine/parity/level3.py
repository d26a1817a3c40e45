"""Parity level 3 (docs/parity.md): each backend trains, infers and refines in its own ``pinnacle`` child.

The trainings run one after the other (two cores: running them at once would only make both slower and their
timings meaningless), from the same seed — hence the same initial weights (engine.weights.init_weights), groups and
batch order — then the held-out scan is reconstructed with ``pinnacle infer`` four times: each bundle in its own
backend and in the other one (cross-loading). The children's runs live under ``<parity run>/runs/``; their event
streams are read live and forwarded to the parity job as log lines and progress, so the console follows one job.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.backends import BACKENDS
from engine.parity.checks import LEVEL3_BATCH_SIZE, cross_checks, level3_checks
from engine.parity.refine import end_to_end_checks


@dataclass
class ChildResult:
    code: int
    run_dir: Path | None
    epochs: list[dict]
    other_cores: float | None = None  # engine/contention.py: what other processes used while it ran


def run_child(job, label: str, args: list[str], log_path: Path) -> ChildResult:
    """``pinnacle ARGS --events-fd N`` in a child; its events are forwarded live (stages and epochs as log lines,
    progress as progress). A cancel of the parity job is passed on (SIGINT) and awaited."""
    from engine.contention import Meter
    from engine.events import parse_line

    r, w = os.pipe()
    meter = Meter.start()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            proc = subprocess.Popen([sys.executable, "-m", "console.cli", *args, "--events-fd", str(w),
                                     "--no-progress"], stdout=log, stderr=subprocess.STDOUT, pass_fds=(w,), env=env)
        finally:
            os.close(w)
    result = ChildResult(1, None, [])
    interrupted = False
    with os.fdopen(r, "r", encoding="utf-8", errors="replace") as stream:
        for line in stream:
            ev = parse_line(line)
            kind = ev.get("type")
            if kind == "run_started" and ev.get("run_dir"):
                result.run_dir = Path(ev["run_dir"])
            elif kind == "stage":
                job.log(f"{label}: {ev.get('stage')}")
            elif kind == "epoch":
                result.epochs.append(ev)
                loss = ev.get("train_loss")
                job.log(f"{label} {ev.get('epoch')}/{ev.get('epochs')}"
                        + (f": train loss {loss:.6g}" if isinstance(loss, (int, float)) else ""))
            elif kind == "progress":
                job.progress(ev.get("done", 0), ev.get("total", 0), unit=ev.get("unit", ""), stage=ev.get("stage"))
            elif kind in ("warning", "error"):
                job.log(f"{label}: {kind}: {ev.get('message')}", level="warning" if kind == "warning" else "error")
            if job.cancelled and not interrupted:
                interrupted = True
                proc.send_signal(signal.SIGINT)
    result.code = proc.wait()
    result.other_cores = meter.stop()
    job.check_cancel()
    if result.code != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
        raise RuntimeError(f"{label} failed (exit {result.code}); log {log_path}:\n{tail}")
    return result


def _read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def _metrics(infer_dir: Path, train_dir: Path) -> dict[str, float | None]:
    m = _read_json(infer_dir / "metrics.json")
    out = {}
    for part in ("phase", "amplitude"):
        for key in ("ssim", "psnr", "mae", "frc50_px"):
            v = m[part].get(key)
            out[f"{part}_{key}"] = float(v) if isinstance(v, (int, float)) else None
    nrmse = (m.get("complex") or {}).get("nrmse")
    out["complex_nrmse"] = float(nrmse) if isinstance(nrmse, (int, float)) else None
    trained = _read_json(train_dir / "run.json").get("metrics") or {}
    out["final_train_loss"] = trained.get("train_loss")
    out["final_val_loss"] = trained.get("val_loss")
    return out


def _runtimes(train: ChildResult, infer_dir: Path, n_patterns: int, refine: ChildResult | None = None
              ) -> dict[str, float | None]:
    t = _read_json(train.run_dir / "run.json").get("timings") or {}
    ti = _read_json(infer_dir / "run.json").get("timings") or {}
    secs = _epoch_seconds(train.epochs)
    infer_s = ti.get("inference")
    return {
        "load (s)": t.get("loading"),
        "group (s)": t.get("grouping"),
        "first epoch (s)": secs[0] if secs else None,
        "train per epoch (s)": _steady_epoch(train.epochs),
        "train total (s)": t.get("training"),
        "infer (patterns/s)": n_patterns / infer_s if infer_s else None,
        "stitch (s)": ti.get("stitching"),
        **({"refine per epoch (s)": _steady_epoch(refine.epochs)} if refine is not None else {}),
    }


def _contention(children: list[ChildResult]) -> dict:
    """Other processes' use of the machine during the timed children (engine/contention.py), for the report."""
    from engine import contention

    seen = [c.other_cores for c in children if c.other_cores is not None]
    worst = max(seen) if seen else None
    n = contention.cores()
    return {"cores": n, "other_cores_max": None if worst is None else round(worst, 3),
            "load_average": [round(x, 2) for x in os.getloadavg()], "reliable": contention.reliable(worst, n)}


def _epoch_seconds(epochs: list[dict]) -> list[float]:
    return [e["seconds"] for e in epochs if isinstance(e.get("seconds"), (int, float))]


def _steady_epoch(epochs: list[dict]) -> float | None:
    """Mean seconds of an epoch after the first (which also builds or traces the step)."""
    secs = _epoch_seconds(epochs)
    steady = secs[1:] or secs
    return float(np.mean(steady)) if steady else None


def run_level3(job, opts: ParityOptions, root: Path, n_test: int) -> dict:
    """Train both, infer four times, compare; returns checks, metrics, runtimes, reconstructions and run ids."""
    from engine.recon import load_recon

    runs = root / "runs"
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    common = ["--epochs", str(opts.epochs), "--gridsize", str(opts.gridsize), "--seed", str(opts.seed),
              "--batch-size", str(LEVEL3_BATCH_SIZE),
              "--filters-scale", str(opts.filters_scale), "--runs", str(runs)]
    job.stage("training")
    trained = {}
    for b in BACKENDS:
        trained[b] = run_child(job, f"training {b}", ["train", opts.data, "--backend", b, *common],
                               logs / f"train-{b}.log")
    job.stage("inference")
    inferred: dict[tuple[str, str], Path] = {}
    inference_children: list[ChildResult] = []
    for a in BACKENDS:
        for b in (a, *[x for x in BACKENDS if x != a]):
            res = run_child(job, f"inferring {a} bundle with {b}",
                            ["infer", str(trained[a].run_dir / "bundle"), opts.test, "--backend", b, "--runs", str(runs)],
                            logs / f"infer-{a}-in-{b}.log")
            inferred[(a, b)] = res.run_dir
            inference_children.append(res)
    job.stage("refining")
    refined: dict[str, ChildResult] = {}
    for b in BACKENDS:  # end to end: iterative refinement of the held-out scan in each backend
        refined[b] = run_child(job, f"refining {Path(opts.test).name} with {b}",
                               ["reconstruct", opts.test, "--method", "iterative", "--backend", b, "--runs", str(runs)],
                               logs / f"refine-{b}.log")
    job.stage("evaluating")
    objects = {k: load_recon(d / "recon.npz").object for k, d in inferred.items()}
    metrics = {b: _metrics(inferred[(b, b)], trained[b].run_dir) for b in BACKENDS}
    runtimes = {b: _runtimes(trained[b], inferred[(b, b)], n_test, refined[b]) for b in BACKENDS}
    refined_objects = {b: load_recon(r.run_dir / "recon.npz").object for b, r in refined.items()}
    refined_metrics = {b: _read_json(r.run_dir / "metrics.json") for b, r in refined.items()}
    for b in BACKENDS:
        for part in ("phase", "amplitude"):
            metrics[b][f"refined_{part}_ssim"] = refined_metrics[b][part].get("ssim")
        metrics[b]["refined_complex_nrmse"] = refined_metrics[b]["complex"].get("nrmse")
    checks = level3_checks(metrics) + cross_checks(objects)
    checks += end_to_end_checks(refined_objects, {b: {"phase_ssim": metrics[b]["refined_phase_ssim"]}
                                                  for b in BACKENDS})
    rel = lambda p: p.resolve().relative_to(root.resolve()).as_posix()  # noqa: E731
    return {
        "checks": checks, "metrics": metrics, "runtimes": runtimes,
        "contention": _contention([*trained.values(), *inference_children, *refined.values()]),
        "objects": {b: objects[(b, b)] for b in BACKENDS},
        "reconstructions": {b: rel(inferred[(b, b)] / "recon.npz") for b in BACKENDS},
        "runs": {**{f"train {b}": rel(trained[b].run_dir) for b in BACKENDS},
                 **{f"infer {a} bundle with {b}": rel(d) for (a, b), d in inferred.items()},
                 **{f"refine with {b}": rel(r.run_dir) for b, r in refined.items()}},
    }
