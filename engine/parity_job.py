"""The parity run (docs/parity.md): gather what each backend computes, in child processes, and compare (engine.parity).

Levels 0–2 run one probe child per backend (engine.parity_probe: ops, network, one Adam step). Level 3 trains
each backend with ``pinnacle train`` in its own child, one after the other (two cores: running them at once
would only make both slower and their timings meaningless), from the same seed — hence the same initial weights
(engine.weights.init_weights), groups and batch order — then reconstructs the held-out scan with ``pinnacle
infer`` four times: each bundle in its own backend and in the other one (cross-loading). The children's runs live
under ``<parity run>/runs/``; their event streams are read live and forwarded to the parity job as log lines and
progress, so the console follows one job.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import parity, parity_refine
from engine.parity import BACKENDS, Check

#: Groups in the level-1/2 batch: enough to exercise batching, small enough to keep the probe children quick —
#: and at most PROBE_PIXELS pattern pixels in all, the reduction length that sets the level-2 gradient tolerance.
PROBE_BATCH = 4
PROBE_PIXELS = 4 * 64 * 64
#: Seed of the fixed level-0 op inputs (independent of --seed: the ops are checked on the same inputs every run).
OPS_SEED = 0


@dataclass(frozen=True)
class ParityOptions:
    data: str
    test: str
    epochs: int
    gridsize: int
    seed: int
    filters_scale: int
    levels: tuple[int, ...]


def _upcast(a: np.ndarray) -> np.ndarray:
    """The oracle runs in double precision on the exact same (single-precision) inputs."""
    return a.astype({np.dtype(np.complex64): np.complex128, np.dtype(np.float32): np.float64}.get(a.dtype, a.dtype))


def oracle_outputs(ops_in: dict[str, dict[str, np.ndarray]]) -> dict[str, tuple[np.ndarray, ...]]:
    import importlib

    from engine.parity_probe import ORACLE_MODULE, call_op

    return {op: call_op(importlib.import_module(ORACLE_MODULE.get(op, "engine.physics")), op,
                        {k: _upcast(v) for k, v in args.items()}) for op, args in ops_in.items()}


def probe_batch(N: int) -> int:
    """Groups in the level-1/2 batch for patterns of N²."""
    return max(1, min(PROBE_BATCH, PROBE_PIXELS // (N * N)))


def probe_case(ds, opts: ParityOptions):
    """Level-1/2 case from the data: canonical initial weights, the first groups, the training learning rate."""
    from engine import grouping
    from engine.backend_api import PhysicsConstants, gather_batch
    from engine.config import ModelConfig, RunConfig, TrainingConfig
    from engine.parity_probe import Case
    from engine.scaling import compute_scales
    from engine.weights import init_weights

    model = ModelConfig(N=ds.N, n_filters_scale=opts.filters_scale, gridsize=opts.gridsize)
    training = TrainingConfig(seed=opts.seed, neighbours=grouping.default_neighbours(opts.gridsize))
    cfg = RunConfig(model=model, training=training)
    scales = compute_scales(ds.measured, ds.probe)
    groups = grouping.make_groups(ds.positions, opts.gridsize, ds.N, None, opts.seed, training.neighbours)
    batch = gather_batch(np.asarray(ds.measured, np.float32),
                         groups.take(np.arange(min(probe_batch(ds.N), len(groups)))), scales.input_scale)
    consts = PhysicsConstants(np.asarray(ds.probe, np.complex64), scales.photon_scale, scales.input_scale, ds.N,
                              model.channels, valid=ds.valid)
    weights = init_weights(model, opts.seed)
    return Case(cfg, weights, consts, batch, parity.given_gradients(weights, opts.seed))


def run_probes(job, ds, opts: ParityOptions, work: Path) -> list[Check]:
    """Levels 0, 1, 2 (those in ``opts.levels``): one probe child per installed backend, compared here. Level 0
    needs one backend (each is checked against the numpy oracle); levels 1 and 2 need both (the command checks)."""
    from engine.backends import LABELS, installed_backends
    from engine.parity_probe import ops_inputs, read_ops_outputs, read_refine_outputs, run_in_child, write_inputs

    backends = installed_backends()
    for b in BACKENDS:
        if b not in backends:
            job.warning(f"{LABELS[b]} is not installed: level 0 checks the other backend alone")
    wanted = set(opts.levels)
    ops_in = ops_inputs(OPS_SEED) if 0 in wanted else None
    case_name = f"gridsize {opts.gridsize}, {probe_batch(ds.N)} groups of {Path(opts.data).name}"
    cases = {case_name: probe_case(ds, opts)} if wanted & {1, 2} else {}
    step = parity_refine.step_case(ds, opts.seed) if 2 in wanted else None
    work.mkdir(parents=True, exist_ok=True)
    write_inputs(work / "probe_in.npz", cases, ops_in, refine=step)
    outs, ops_out, refine_out = {}, {}, {}
    for b in backends:
        job.log(f"probing {b}: levels {', '.join(str(x) for x in sorted(wanted & {0, 1, 2}))}")
        outs[b] = run_in_child(b, work / "probe_in.npz", work / f"probe_{b}.npz")
        ops_out[b] = read_ops_outputs(work / f"probe_{b}.npz")
        refine_out[b] = read_refine_outputs(work / f"probe_{b}.npz")
        job.check_cancel()
    checks: list[Check] = []
    if ops_in:
        want = oracle_outputs(ops_in)
        for b in backends:
            checks += parity.level0_checks(b, ops_out[b], want)
    first, second = BACKENDS
    for name, case in cases.items():
        if 1 in wanted:
            checks += parity.level1_checks(name, outs[first][name], outs[second][name])
        if 2 in wanted:
            checks += parity.level2_checks(name, case.weights, case.cfg.training.learning_rate,
                                           parity.reduction_length(case.batch), outs[first][name],
                                           outs[second][name], case.given)
    if step is not None:
        checks += parity_refine.step_checks(step, refine_out)
    return checks


# ------------------------------------------------------------------------------------------------ children
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
    trained = _read_json(train_dir / "run.json").get("metrics") or {}
    out["final_train_loss"] = trained.get("train_loss")
    out["final_val_loss"] = trained.get("val_loss")
    return out


def _runtimes(train: ChildResult, infer_dir: Path, n_patterns: int, refine: ChildResult | None = None
              ) -> dict[str, float | None]:
    t = _read_json(train.run_dir / "run.json").get("timings") or {}
    ti = _read_json(infer_dir / "run.json").get("timings") or {}
    secs = [e.get("seconds") for e in train.epochs if isinstance(e.get("seconds"), (int, float))]
    steady = secs[1:] or secs  # the first epoch also builds/traces the graph
    infer_s = ti.get("inference")
    return {
        "load (s)": t.get("loading"),
        "group (s)": t.get("grouping"),
        "first epoch (s)": secs[0] if secs else None,
        "train per epoch (s)": float(np.mean(steady)) if steady else None,
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


def _steady_epoch(epochs: list[dict]) -> float | None:
    """Mean seconds of an epoch after the first (which also builds or traces the step)."""
    secs = [e.get("seconds") for e in epochs if isinstance(e.get("seconds"), (int, float))]
    steady = secs[1:] or secs
    return float(np.mean(steady)) if steady else None


def run_level3(job, opts: ParityOptions, root: Path, n_test: int) -> dict:
    """Train both, infer four times, compare; returns checks, metrics, runtimes, reconstructions and run ids."""
    from engine.recon import load_recon

    runs = root / "runs"
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    common = ["--epochs", str(opts.epochs), "--gridsize", str(opts.gridsize), "--seed", str(opts.seed),
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
    checks = parity.level3_checks(metrics) + parity.cross_checks(objects)
    checks += parity_refine.end_to_end_checks(refined_objects, {b: {"phase_ssim": metrics[b]["refined_phase_ssim"]}
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
