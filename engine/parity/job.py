"""The parity job (docs/parity.md): gather what each backend computes, in child processes, and compare.

Levels 0–2 run one probe child per backend (engine.parity.probe: ops, network, one Adam step); level 3 trains,
infers and refines in ``pinnacle`` children (engine.parity.level3). ``parity_job`` is the job of kind "parity",
beside engine.pipeline's ``train_job`` and engine.inference's ``infer_job``: it checks its input before a run
directory exists, runs the levels, writes parity.json, parity.md and images (engine.parity.report), and hands the
report to the caller to show.
This module never imports TensorFlow or PyTorch: only the children do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.backends import BACKENDS
from engine.errors import EXIT_PARITY
from engine.parity import refine as parity_refine
from engine.parity.checks import (Check, given_gradients, level0_checks, level1_checks, level2_checks,
                                  reduction_length)

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

    from engine.parity.probe import ORACLE_MODULE, call_op

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
    from engine.parity.probe import Case
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
    return Case(cfg, weights, consts, batch, given_gradients(weights, opts.seed))


def run_probes(job, ds, opts: ParityOptions, work: Path) -> list[Check]:
    """Levels 0, 1, 2 (those in ``opts.levels``): one probe child per installed backend, compared here. Level 0
    needs one backend (each is checked against the numpy oracle); levels 1 and 2 need both (the command checks)."""
    from engine.backends import LABELS, installed_backends
    from engine.parity.probe import ops_inputs, read_ops_outputs, read_refine_outputs, run_in_child, write_inputs

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
            checks += level0_checks(b, ops_out[b], want)
    first, second = BACKENDS
    for name, case in cases.items():
        if 1 in wanted:
            checks += level1_checks(name, outs[first][name], outs[second][name])
        if 2 in wanted:
            checks += level2_checks(name, case.weights, case.cfg.training.learning_rate,
                                    reduction_length(case.batch), outs[first][name], outs[second][name],
                                    case.given)
    if step is not None:
        checks += parity_refine.step_checks(step, refine_out)
    return checks




def check_input(ds, test_ds, opts: ParityOptions) -> None:
    """Everything that can be bad input, before the run directory exists."""
    from engine.backends import info, installed_backends
    from engine.config import ModelConfig, RunConfig, TrainingConfig
    from engine.errors import BackendUnavailable, ConfigError, InputError
    from engine.grouping import default_neighbours
    from engine.pipeline import check_training_input

    present = installed_backends()  # asked without importing a framework
    for name in BACKENDS:
        if name not in present and (set(opts.levels) - {0} or not present):
            b = info(name)
            why = "" if not present else "levels 1-3 compare both backends (--levels 0 checks one alone); "
            raise BackendUnavailable("--backend", name, f"{why}{b.label} is not installed; install it with: "
                                     f"{b.install}")
    options = {"n_filters_scale": "--filters-scale", "gridsize": "--gridsize", "epochs": "--epochs", "seed": "--seed"}
    try:
        model = ModelConfig(N=ds.N, n_filters_scale=opts.filters_scale, gridsize=opts.gridsize)
        training = TrainingConfig(epochs=opts.epochs, seed=opts.seed, neighbours=default_neighbours(opts.gridsize))
        cfg = RunConfig(model=model, training=training)
    except ConfigError as exc:
        raise InputError(options.get(exc.key) or str(exc.key), None, exc.expected) from exc
    check_training_input(ds.source, ds, cfg)
    if 3 in opts.levels:
        if test_ds.N != ds.N:
            raise InputError(opts.test, "diffraction",
                             f"expected patterns of N = {ds.N} (the training data's), got {test_ds.N}")
        if test_ds.object is None:
            raise InputError(opts.test, "objectGuess",
                             "expected the true object: level 3 compares reconstruction metrics")


class OutOfTolerance(Exception):
    """Ends the parity job with exit code 3: engine.jobs records a deliberate exit (the reason, no traceback)."""

    exit_code = EXIT_PARITY


def parity_job(data: str, test: str | None, *, epochs: int, gridsize: int, seed: int, filters_scale: int,
               levels: tuple[int, ...], runs_root: str | Path, events: str | None = None,
               events_fd: int | None = None, human: bool | None = None, native_log=None,
               show: Callable[[dict, Path], None] | None = None) -> int:
    """Run the parity ``levels`` into a new run (parity.json, parity.md, images); exit code (3: out of tolerance).

    ``test``: the held-out scan for level 3 (None: ``data`` itself). ``show(report, run_dir)`` presents the verdict
    before the job ends (the CLI prints its table); the job itself only writes files and events.
    """
    from engine.jobs import Job
    from engine.parity import report as parity_report
    from engine.parity.level3 import run_level3
    from engine.pipeline import dataset_info, load_data
    from engine.runstore import RunStore

    ds = load_data(data, require_probe=True)
    test_ds = load_data(test, require_probe=False) if test else ds
    opts = ParityOptions(data=str(data), test=str(test or data), epochs=epochs, gridsize=gridsize, seed=seed,
                         filters_scale=filters_scale, levels=levels)
    check_input(ds, test_ds, opts)
    config = {"data": opts.data, "test": opts.test, "epochs": epochs, "gridsize": gridsize, "seed": seed,
              "filters_scale": filters_scale, "levels": list(levels)}
    try:
        with Job.start(kind="parity", store=RunStore(runs_root), config=config, backend="both",
                       dataset=dataset_info(ds), events=events, events_fd=events_fd, human=human,
                       native_log=native_log) as job:
            job.stage("loading")
            job.log(f"parity levels {', '.join(map(str, levels))} on {data}" + (f", held out {test}" if test else ""))
            checks, level3, images = [], None, {}
            if set(levels) & {0, 1, 2}:
                job.stage("evaluating")
                checks += run_probes(job, ds, opts, job.dir / "probes")
            if 3 in levels:
                level3 = run_level3(job, opts, job.dir, test_ds.M)
                checks += level3["checks"]
            job.stage("saving")
            if level3 is not None:
                images = parity_report.write_images(job.dir, level3["objects"])
                for kind, name in images.items():
                    job.artifact(f"parity_{kind}", job.dir / name)
            report = parity_report.build(opts, checks, level3, images)
            parity_report.write_json(job.dir / "parity.json", report)
            (job.dir / "parity.md").write_text(parity_report.markdown(report, job.run_id), encoding="utf-8")
            job.artifact("parity", job.dir / "parity.json")
            job.artifact("parity_report", job.dir / "parity.md")
            job.metric("parity_passed", report["passed"], key=True)
            job.metric("parity_failures", len(report["failures"]))
            for line in report["failures"]:
                job.log(f"out of tolerance: {line}", level="error")
            if show is not None:
                show(report, job.dir)
            if not report["passed"]:
                job.fail_reason(f"{len(report['failures'])} of {len(checks)} parity checks out of tolerance; first: "
                                f"{report['failures'][0]}")
                raise OutOfTolerance()
    except OutOfTolerance:
        pass
    return int(job.exit_code)
