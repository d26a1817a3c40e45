"""The train and infer jobs, backend-neutral (docs/pipeline.md).

Everything numpy happens here — scales, groups, split, batching inputs, stitching, metrics, files — and the
backend (engine.backends.load_backend) only trains and predicts. All input is validated BEFORE the job starts,
so bad input exits 2 without creating a run directory. Scales: the photon scale (physical) comes from the
training data and travels in the bundle; the input scale (statistical) is recomputed from whatever data is being
inferred, because it only normalises the network input's brightness (docs/physics.md, Scaling).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine import augment, grouping
from engine.backend_api import PhysicsConstants, TrainingData
from engine.config import RunConfig, to_dict as config_to_dict
from engine.errors import InputError
from engine.scaling import Scales, compute_scales

#: Minimum gap between progress events from the training hooks (the event writer throttles again).
PROGRESS_EVERY_S = 0.2


# ------------------------------------------------------------------------------------------- preparation
@dataclass(frozen=True)
class Prepared:
    """A scan's scales and groups. Checking the input computes them; the job reuses them, so each is computed once
    per job (``check_training_input`` for the training scan, ``inference_input`` for a held-out one)."""
    scales: Scales
    groups: grouping.Groups


def prepare_training(ds, cfg: RunConfig, prepared: Prepared | None = None) -> tuple[TrainingData, PhysicsConstants]:
    """Scales, groups and the train/val split for ``ds`` (a validated engine.dataset.Dataset with a probe);
    ``prepared``: the scales and groups already computed (by ``check_training_input``)."""
    tc, mc = cfg.training, cfg.model
    scales = prepared.scales if prepared else compute_scales(ds.measured, ds.probe)
    groups = prepared.groups if prepared else training_groups(ds, cfg)
    train_idx, val_idx = grouping.split_train_val(len(groups), tc.val_fraction, tc.seed)
    orientations = augment.symmetric_orientations(ds.probe, ds.valid) if tc.augment else (0,)
    data = TrainingData(amplitude=np.asarray(ds.measured, np.float32), train=groups.take(train_idx),
                        val=groups.take(val_idx), input_scale=scales.input_scale, orientations=orientations)
    consts = PhysicsConstants(probe=np.asarray(ds.probe, np.complex64), photon_scale=scales.photon_scale,
                              input_scale=scales.input_scale, N=mc.N, C=mc.channels, valid=ds.valid)
    return data, consts


def training_groups(ds, cfg: RunConfig) -> grouping.Groups:
    """The groups training draws its split from (``n_groups`` of them, or one per pattern), deterministic per seed."""
    mc, tc = cfg.model, cfg.training
    return grouping.make_groups(ds.positions, mc.gridsize, mc.N, tc.n_groups, tc.seed, tc.neighbours)


def check_training_input(source: str, ds, cfg: RunConfig) -> Prepared:
    """Refuse (InputError) data that cannot train this config: pattern size, too few patterns or groups. Returns
    the scales and groups it computed to check, for the job to reuse."""
    mc = cfg.model
    if ds.N != mc.N:
        raise InputError(source, "diffraction", f"expected patterns of N = {mc.N} (the model's N), got {ds.N}")
    if ds.M < mc.channels:
        raise InputError(source, "diffraction", f"expected at least {mc.channels} patterns for gridsize "
                         f"{mc.gridsize}, got {ds.M}")
    if ds.probe is None:
        raise InputError(source, "probeGuess", "expected a probe (training needs probeGuess)")
    try:
        scales = compute_scales(ds.measured, ds.probe)
    except ValueError as exc:
        raise InputError(source, "diffraction", f"expected patterns and a probe with signal ({exc})") from exc
    groups = training_groups(ds, cfg)
    if len(groups) < 1:
        raise InputError(source, "xcoords", f"expected scan positions close enough to form gridsize-{mc.gridsize} "
                         f"groups (neighbours within {mc.N // 4} px); none formed")
    return Prepared(scales, groups)


def inference_groups(ds, cfg: RunConfig) -> grouping.Groups:
    """Every pattern seeds one group (gridsize 1: one group per pattern), deterministic for the bundle's seed."""
    mc, tc = cfg.model, cfg.training
    return grouping.make_groups(ds.positions, mc.gridsize, mc.N, None, tc.seed, tc.neighbours)


def inference_input(ds, cfg: RunConfig, probe) -> Prepared:
    """A scan to infer: its own scales (the input scale normalises it) and its inference groups."""
    return Prepared(compute_scales(ds.measured, probe), inference_groups(ds, cfg))


def stitch_grid(ds) -> tuple[tuple[int, int], tuple[int, int]]:
    """(shape (H, W), origin (x0, y0)) of the output grid: the true object's grid when the data has one,
    else the positions' bounding box grown by N (so every patch fits)."""
    if ds.object is not None:
        return tuple(ds.object.shape), (0, 0)
    pos, N = ds.positions, ds.N
    lo = np.floor(pos.min(axis=0)).astype(int) - N // 2
    hi = np.ceil(pos.max(axis=0)).astype(int) + N - N // 2
    return (int(hi[1] - lo[1]), int(hi[0] - lo[0])), (int(lo[0]), int(lo[1]))


@dataclass(frozen=True)
class InferenceResult:
    object: np.ndarray  # (H, W) complex64
    weight: np.ndarray  # (H, W) float32 summed stitch weight (0: not covered)
    origin: tuple[int, int]
    metrics: dict | None


# ------------------------------------------------------------------------------------------------ hooks
class JobHooks:
    """engine.backend_api.TrainHooks → job events: throttled ``progress``, one ``epoch`` per epoch, history."""

    def __init__(self, job, clock):
        self.job = job
        self.clock = clock
        self.history: list[dict] = []
        self.epochs = 0
        self.batches = 1
        self._last = -math.inf

    def on_train_start(self, epochs: int, batches_per_epoch: int) -> None:
        self.epochs, self.batches = int(epochs), max(1, int(batches_per_epoch))
        self.job.progress(0, self.epochs * self.batches, unit="batch", stage="training")

    def on_batch_end(self, epoch: int, batch: int, batches: int, loss: float, samples: int) -> None:
        self.batches = max(1, int(batches))
        done, total = epoch * self.batches + batch + 1, self.epochs * self.batches
        now = self.clock()
        if done >= total or now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self.job.progress(done, total, unit="batch", stage="training")

    def on_epoch_end(self, epoch: int, train_loss: float, val_loss: float | None, lr: float, seconds: float,
                     samples_per_s: float, weights) -> None:
        record = {"epoch": int(epoch), "train_loss": _finite(train_loss), "val_loss": _finite(val_loss),
                  "lr": float(lr), "seconds": float(seconds), "samples_per_s": float(samples_per_s)}
        self.history.append(record)
        self.job.epoch(epoch=int(epoch) + 1, epochs=self.epochs, train_loss=record["train_loss"],
                       val_loss=record["val_loss"], lr=record["lr"], seconds=record["seconds"],
                       samples_per_s=record["samples_per_s"], unit="group")

    def should_stop(self) -> bool:
        return bool(self.job.cancelled)


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


# ----------------------------------------------------------------------------------------------- resume
def resolve_resume(resume: str, runs_root: str | Path, backend: str, cfg: RunConfig) -> Path:
    """``--resume``: a run directory, a run id under the run store, or a checkpoint → what the backend restores
    (torch: a Lightning ``.ckpt`` file; tensorflow: a checkpoint directory), found by the backend's light
    ``checkpoints`` module (engine/<backend>/checkpoints.py, no framework import). Checked before the job starts."""
    import importlib
    import json

    from engine.backends import info
    from engine.config import to_dict

    p = Path(resume)
    if not p.exists():
        from engine.runstore import RunStore

        p = RunStore(runs_root).find(resume)  # InputError when there is no such run
    run_json = p / "run.json" if p.is_dir() else None
    if run_json is not None and run_json.is_file():
        try:
            record = json.loads(run_json.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(str(run_json), None, f"expected a readable run.json ({exc})") from exc
        if record.get("backend") not in (None, backend):
            raise InputError("--resume", resume, f"expected a run of the {backend} backend, got {record.get('backend')} "
                             f"(checkpoints hold framework state; resume with --backend {record.get('backend')})")
        old = (record.get("config") or {}).get("model")
        if old is not None and old != to_dict(cfg.model):
            raise InputError("--resume", resume, f"expected the same model as the run ({old}); pass the same "
                             "--gridsize/--filters-scale")
        p = p / "checkpoints"
    return importlib.import_module(info(backend).checkpoints_module).find_checkpoint(p, resume)


# -------------------------------------------------------------------------------------------------- jobs

def run_inference(job, bundle, ds, backend, batch_size: int, data_source: str, backend_name: str,
                  history: list[dict] | None = None, prepared: Prepared | None = None,
                  predict=None) -> InferenceResult:
    """Predict, stitch, evaluate and write recon.npz, metrics.json, previews and product.h5 into the job's run
    (engine/reconstruction.py, method ``pinn``); ``predict``: across ranks (engine/inference.py)."""
    from engine.reconstruction import bundle_provenance, pinn_reconstruction, save_reconstruction

    rec = pinn_reconstruction(job, bundle, ds, backend, batch_size, prepared, predict)
    hist = history if history is not None else bundle.history
    metrics = save_reconstruction(job, rec, ds, data_source=data_source, backend_name=backend_name, method="pinn",
                                  costs=[h.get("train_loss") for h in hist],
                                  provenance=bundle_provenance(bundle, len(hist)))
    return InferenceResult(object=rec.object, weight=rec.weight, origin=rec.origin, metrics=metrics)


def _add_curve(path: Path, curve: list[dict]) -> None:
    """metrics.json keeps the held-out quality over training (``curve``: one point per evaluation)."""
    import json

    from engine.jsonsafe import json_safe

    if path.is_file() and curve:
        metrics = json.loads(path.read_text())
        metrics["curve"] = json_safe(curve)
        path.write_text(json.dumps(metrics, indent=2) + "\n")


def require_trained(bundle, source) -> None:
    """A bundle whose history lists no finished epoch was never trained: refuse it rather than infer noise."""
    if not bundle.history:
        raise InputError(str(source), "history", "expected a trained bundle (its history lists no finished epoch; "
                         "a run cancelled before its first epoch has no usable model)")


def load_data(path: str | Path, require_probe: bool, N: int | None = None, options=None):
    """Any scan format (engine.dataset.load_dataset); ``options`` (engine.formats.geometry.ScanOptions) add or
    override geometry, crop the detector, or read the probe / positions from other files."""
    from engine.dataset import load_dataset

    ds = load_dataset(path, require_probe=require_probe, options=options)
    if N is not None and ds.N != N:
        hint = f" (pass --crop {N} for the central {N}x{N} of the detector)" if ds.format != "npz" and ds.N > N else ""
        raise InputError(str(path), "diffraction", f"expected patterns of N = {N} (the model's N), got {ds.N}{hint}")
    return ds


def dataset_info(ds) -> dict:
    """The ``dataset`` record of a run (run.json, run_started): source, size, fingerprint, format, geometry."""
    from engine.dataset import fingerprint

    return {"path": ds.source, "M": ds.M, "N": ds.N, "fingerprint": fingerprint(ds), "has_truth": ds.has_truth,
            "format": ds.format, "geometry": ds.geometry.to_dict(),
            "masked_pixels": 0 if ds.valid is None else int(ds.valid.size - ds.valid.sum())}


def train_job(data_path: str | Path, cfg: RunConfig, runs_root: str | Path, events: str | None = None,
              events_fd: int | None = None, resume: str | None = None, *, accelerator: str = "cpu",
              devices: int | str = 1, num_nodes: int = 1, test_path: str | Path | None = None, dataset=None,
              human: bool | None = None, native_log=None, options=None, eval_every: int | None = None,
              test_refine: int = 0) -> int:
    """Train ``cfg`` on ``data_path`` into a new run (bundle/, checkpoints/, optional test inference); exit code.

    ``test_refine`` > 0 (with ``test_path``): the held-out scan is also refined from the network's object for that
    many epochs (hybrid, as `reconstruct` does) and both results are written and reported side by side.

    ``devices`` × ``num_nodes`` replicas (engine/distributed.py): on one node this process is rank 0 and starts the
    others; under srun/torchrun every rank runs this, and all but rank 0 train silently (engine/replica.py).
    """
    import time

    from engine import distributed
    from engine.backends import load_backend
    from engine.bundle import load_bundle, write_bundle
    from engine.config import to_dict
    from engine.errors import Cancelled
    from engine.jobs import Job
    from engine.runstore import RunStore
    from engine.reconstruction import Network, heldout_evaluation
    from engine.weights import init_weights

    # ---- everything that can be bad input, before the run directory exists
    RunStore(runs_root).check_writable(create=False)
    ds = dataset if dataset is not None else load_data(data_path, require_probe=True, options=options)
    prepared = check_training_input(str(data_path), ds, cfg)
    test_options = options.without_product() if options is not None else None
    test_ds = load_data(test_path, require_probe=False, N=cfg.model.N, options=test_options) if test_path else None
    refine_cfg = held_out_refinement(test_path, test_ds, test_refine)
    resume_path = resolve_resume(resume, runs_root, cfg.backend, cfg) if resume else None
    backend = load_backend(cfg.backend)
    backend.check_devices(accelerator, devices, num_nodes)
    distributed.check_batch(cfg.training.batch_size, distributed.device_count(devices) * num_nodes)
    topology = distributed.plan(backend.replica_processes(accelerator, devices), num_nodes)
    if topology is not None and not topology.chief:
        from engine.replica import train_replica

        return train_replica(ds, cfg, backend, topology, resume_path, accelerator, devices)
    info = dataset_info(ds)

    config = {**to_dict(cfg), "test": str(test_path) if test_path else None}
    with Job.start(kind="train", store=RunStore(runs_root), config=config, backend=cfg.backend,
                   dataset=info, events=events, events_fd=events_fd, human=human, native_log=native_log) as job, \
            other_ranks(job, topology, {"kind": "train", "data_path": str(data_path), "cfg": config_to_dict(cfg),
                                        "options": asdict(options) if options is not None else None,
                                        "resume_path": None if resume_path is None else str(resume_path),
                                        "accelerator": accelerator, "devices": devices}):
        state: dict = {"bundle": False, "weights": None, "history": []}

        def save_bundle(weights: dict, history: list[dict]) -> None:
            write_bundle(job.run.bundle_dir, weights=weights, run_config=cfg, scales=scales, probe=ds.probe,
                         history=history, dataset_fingerprint=info["fingerprint"], backend=cfg.backend)
            state["bundle"] = True
            job.artifact("bundle", job.run.bundle_dir)

        def save_partial() -> None:  # second signal: the backend was interrupted mid-batch
            if not state["bundle"] and state["weights"] is not None:
                save_bundle(state["weights"](), state["history"])

        job.on_cancel(save_partial)
        job.stage("loading")
        scales = prepared.scales
        job.stage("grouping")
        data, consts = prepare_training(ds, cfg, prepared)
        held_out = None  # the held-out scan's scales and groups: once, for every evaluation and the last inference
        if test_ds is not None:
            held_out = inference_input(test_ds, cfg, ds.probe if test_ds.probe is None else test_ds.probe)
        job.log(f"{len(data.train)} training and {len(data.val)} validation groups of {cfg.model.channels}; "
                f"input scale {scales.input_scale:.4g}, photon scale {scales.photon_scale:.4g}")
        if cfg.training.augment:
            job.log(augment.describe(data.orientations))
        job.check_cancel()
        job.stage("training")
        hooks = JobHooks(job, time.monotonic)
        original_epoch_end = hooks.on_epoch_end

        curve: list[dict] = []
        every = eval_every or max(1, cfg.training.epochs // 5)

        def on_epoch_end(epoch, train_loss, val_loss, lr, seconds, samples_per_s, weights):
            state["weights"], state["history"] = weights, hooks.history
            original_epoch_end(epoch, train_loss, val_loss, lr, seconds, samples_per_s, weights)
            if test_ds is not None and ((epoch + 1) % every == 0 or epoch + 1 == cfg.training.epochs):
                net = Network(cfg, weights(), scales, ds.probe)
                heldout_evaluation(job, net, test_ds, backend, epoch + 1, curve, held_out)

        hooks.on_epoch_end = on_epoch_end
        result = backend.train(cfg, data, consts, init_weights(cfg.model, cfg.training.seed), hooks,
                               job.run.checkpoints_dir, resume_path, accelerator=accelerator, devices=devices,
                               replicas=topology)
        history = list(result.history) or hooks.history
        if not history:  # cancelled before the first epoch finished: nothing trained, nothing to save
            job.log("cancelled before the first epoch finished: no bundle written")
            job.check_cancel()
            raise Cancelled("training stopped before the first epoch finished")
        job.stage("saving")
        save_bundle(result.weights, history)
        if history:
            last = history[-1]
            job.metric("train_loss", _finite(last.get("train_loss")), key=last.get("val_loss") is None)
            if last.get("val_loss") is not None:
                job.metric("val_loss", _finite(last.get("val_loss")), key=True)
        if result.status == "cancelled":
            job.check_cancel()
            raise Cancelled("training stopped early")
        if test_ds is not None:
            network = run_inference(job, load_bundle(job.run.bundle_dir), test_ds, backend,
                                    cfg.inference.batch_size, str(test_path), cfg.backend, history=history,
                                    prepared=held_out)
            _add_curve(job.run.dir / "metrics.json", curve)
            if refine_cfg is not None:
                probe = test_ds.probe if test_ds.probe is not None else ds.probe
                refine_held_out(job, backend, test_ds, probe, network, cfg, refine_cfg, str(test_path))
    return int(job.exit_code)


def held_out_refinement(test_path, test_ds, epochs: int):
    """The RefineConfig of ``train --test-refine`` (None for 0), checked before the run exists: the held-out scan's
    dose picks β and the phase momentum, as `reconstruct` does."""
    from engine import refine as R
    from engine.errors import ConfigError, InputError
    from engine.reconstruct_request import check_refinable

    if not epochs:
        return None
    if test_ds is None:
        raise InputError("--test-refine", str(epochs), "a held-out scan to refine: give --test HELD_OUT.npz")
    try:
        cfg = R.RefineConfig(epochs=epochs)
    except ConfigError as exc:
        raise InputError("--test-refine", str(epochs), exc.expected) from None
    check_refinable(str(test_path), test_ds, cfg)
    return R.for_dose(cfg, test_ds.measured)


def refine_held_out(job, backend, test_ds, probe, network: InferenceResult, cfg: RunConfig, refine_cfg,
                    source: str) -> None:
    """Hybrid on the held-out scan from the network's object just written: recon_hybrid.npz, metrics_hybrid.json,
    ``hybrid_*`` metric events and one line that puts the two side by side."""
    import time

    from engine.errors import Cancelled
    from engine.reconstruction import Reconstruction, refine_network_object, save_reconstruction

    start = Reconstruction(network.object, network.weight, network.origin, np.asarray(probe, np.complex64), {})
    t0 = time.perf_counter()
    rec, history, status = refine_network_object(job, backend, test_ds, probe, start, cfg.model.gridsize, refine_cfg)
    seconds = time.perf_counter() - t0
    if status == "diverged":
        job.warning(f"held-out refinement diverged at epoch {len(history)}: no hybrid result written")
        return
    metrics = save_reconstruction(job, rec, test_ds, data_source=source, backend_name=cfg.backend, method="hybrid",
                                  costs=[h["train_loss"] for h in history], provenance={}, prefix="hybrid")
    if network.metrics is not None and metrics is not None:
        job.log(side_by_side(network.metrics, metrics, len(history), seconds))
    if status == "cancelled":
        job.check_cancel()
        raise Cancelled("held-out refinement stopped early")


def side_by_side(pinn: dict, hybrid: dict, epochs: int, seconds: float) -> str:
    """One line: the held-out scan's figures for the network alone and after ``epochs`` of refinement."""
    def figures(m: dict) -> str:
        frc = m["complex"].get("frc50_crossing")
        return (f"phase SSIM {m['phase']['ssim']:.4f}, amplitude SSIM {m['amplitude']['ssim']:.4f}, complex FRC50 "
                f"{'Nyquist' if frc is None else f'{frc:.1f}'}, complex NRMSE {m['complex']['nrmse']:.4f}")

    return (f"held-out scan — PINN: {figures(pinn)} | hybrid ({epochs} refinement epochs, {seconds:.1f} s): "
            f"{figures(hybrid)}")


def other_ranks(job, topology, spec: dict, what: str = "training on {} replicas", cancel_join_s: float | None = None):
    """The ranks this process starts (one node, several ranks: engine/launcher.py) running ``spec`` (engine/replica.py,
    JSON: a rank reads data, never code); nothing when it starts none."""
    import contextlib

    if topology is None or not topology.spawned:
        return contextlib.nullcontext()
    from engine.launcher import CANCEL_JOIN_S, LocalRanks

    job.log(what.format(topology.world) + ": this process is rank 0 and starts the others")
    return LocalRanks(topology, spec, warn=job.warning, abort=job.abort,
                      cancel_join_s=CANCEL_JOIN_S if cancel_join_s is None else cancel_join_s)
