"""Reconstruct a scan three ways — `pinn`, `iterative`, `hybrid` — into one run (docs/refinement.md).

`pinn` is the network's inference, stitched (what `pinnacle infer` does); `iterative` refines the object from a flat
start with the forward model and Poisson likelihood the network trains with (engine/refine.py); `hybrid` is `pinn`,
then refinement from its output — the scan's own redundancy on top of the network's prior. Everything numpy lives
here; the backend module predicts and refines. Bad input is refused before the run directory exists.

Outputs in the run: recon.npz (the final object, with ``method``), metrics.json when the scan has ground truth,
amplitude.png/phase.png, product.h5 (the loss history in ``costs``); for `hybrid` also recon_pinn.npz and
metrics_pinn.json, the network's object before refinement.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import Cancelled
from engine.jsonsafe import json_safe

if TYPE_CHECKING:
    from engine.reconstruct_request import ReconstructRequest

#: Longest side of the held-out previews written during training (the console draws them; full size is recon.npz).
PREVIEW_MAX_SIDE = 128
#: Minimum gap between progress events from the refinement hooks (the event writer throttles again).
PROGRESS_EVERY_S = 0.2
#: Metrics reported as events for every reconstruction (docs/metrics.md); the first is the run's key metric.
EVENT_METRICS = (("phase", "ssim"), ("amplitude", "ssim"), ("complex", "nrmse"), ("complex", "frc50_crossing"),
                 ("phase", "psnr"), ("amplitude", "psnr"), ("phase", "mae"), ("amplitude", "mae"),
                 ("phase", "frc50_px"), ("amplitude", "frc50_px"))


@dataclass(frozen=True)
class Reconstruction:
    """An object on the reconstruction grid and what made it."""

    object: np.ndarray  # (H, W) complex64
    weight: np.ndarray  # (H, W) float32: > 0 where the scan reached
    origin: tuple[int, int]  # (x, y) of pixel (0, 0) in the dataset's object frame
    probe: np.ndarray  # (N, N) complex64, as measured/guessed (not in count units)
    meta: dict = field(default_factory=dict)  # written into the recon NPZ


# --------------------------------------------------------------------------------------------------- pinn
@dataclass(frozen=True)
class Network:
    """What the network's reconstruction needs of a model: a bundle, or the weights of a training in progress."""

    run_config: object  # engine.config.RunConfig
    weights: dict
    scales: object  # engine.scaling.Scales
    probe: np.ndarray
    manifest_sha256: str | None = None

    @classmethod
    def of(cls, bundle) -> "Network":
        return cls(bundle.run_config, bundle.weights, bundle.scales, bundle.probe, bundle.manifest_sha256)


def pinn_inputs(net: Network, ds, prepared=None, stage=lambda name: None) -> tuple:
    """(physics constants, groups, network input x) of ``ds`` for ``net`` — the same on every rank of a distributed
    inference (engine/shards.py); ``prepared``: ds's scales and groups, computed once per job."""
    from engine.backend_api import PhysicsConstants
    from engine.pipeline import inference_groups
    from engine.scaling import compute_scales

    cfg = net.run_config
    probe = ds.probe if ds.probe is not None else net.probe
    input_scale = (prepared.scales if prepared else compute_scales(ds.measured, probe)).input_scale  # from the data
    consts = PhysicsConstants(probe=np.asarray(probe, np.complex64), photon_scale=net.scales.photon_scale,
                              input_scale=input_scale, N=cfg.model.N, C=cfg.model.channels, valid=ds.valid)
    stage("grouping")
    groups = prepared.groups if prepared else inference_groups(ds, cfg)
    x = (np.asarray(ds.measured, np.float32)[groups.indices] * np.float32(input_scale)).astype(np.float32)
    return consts, groups, x


def pinn_object(net: Network, ds, backend, batch_size: int, progress=None, stage=lambda name: None,
                prepared=None, predict=None) -> Reconstruction:
    """The network's patches for every pattern of ``ds``, stitched on the reconstruction grid (no events, except
    through ``stage`` and ``progress(done, total)``); ``predict``: instead of ``backend.predict`` (same signature:
    engine.shards.ShardGather.sharded spreads it across ranks)."""
    from engine import physics
    from engine.pipeline import stitch_grid

    cfg = net.run_config
    N = cfg.model.N
    consts, groups, x = pinn_inputs(net, ds, prepared, stage)
    probe, input_scale = consts.probe, consts.input_scale
    stage("inference")
    patches = (predict or backend.predict)(cfg.model, net.weights, consts, x, groups.offsets, batch_size,
                                           progress=progress)
    stage("stitching")
    weight = physics.stitch_weight(probe, N // 2, cfg.inference.stitch_weight)
    shape, origin = stitch_grid(ds)
    members = groups.indices.reshape(-1)
    obj, wsum = physics.stitch(patches.reshape(-1, N, N), ds.positions[members], weight, shape, origin)
    meta = {"bundle_manifest_sha256": net.manifest_sha256, "input_scale": input_scale,
            "photon_scale": net.scales.photon_scale}
    return Reconstruction(obj, wsum, origin, np.asarray(probe, np.complex64), meta)


def pinn_reconstruction(job, bundle, ds, backend, batch_size: int, prepared=None, predict=None) -> Reconstruction:
    """``pinn_object`` of a bundle inside a job: stages, progress in patterns, cancellable between batches."""
    cfg = bundle.run_config
    total = ds.M

    def progress(done: int, _total: int | None = None) -> None:
        job.progress(done, total, unit="pattern", stage="inference")
        job.check_cancel()

    job.log(f"inference on {ds.M} patterns (groups of {cfg.model.channels}), input scale from the data, photon "
            f"scale {bundle.scales.photon_scale:.4g} from the bundle")
    rec = pinn_object(Network.of(bundle), ds, backend, batch_size, progress, job.stage, prepared, predict)
    job.check_cancel()
    return rec


def heldout_evaluation(job, net: Network, ds, backend, epoch: int, curve: list, prepared=None) -> None:
    """During training (``train --test``): the held-out scan's reconstruction with the current weights, scored —
    metric events ``heldout_*`` with ``epoch``, a small preview (``previews/epoch_NNNN.npz``, artifact ``preview``)
    and one more point of ``curve`` (metrics.json keeps it)."""
    from engine import display
    from engine.metrics import evaluate

    rec = pinn_object(net, ds, backend, net.run_config.inference.batch_size, prepared=prepared)
    point = {"epoch": int(epoch)}
    if ds.object is not None:
        try:
            m = evaluate(rec.object, rec.origin, ds.object, ds.positions, ds.N, ds.probe)
            point.update(phase_ssim=m["phase"]["ssim"], amplitude_ssim=m["amplitude"]["ssim"],
                         frc50=m["complex"]["frc50_crossing"], nrmse=m["complex"]["nrmse"])
        except ValueError as exc:
            job.warning(f"held-out metrics skipped: {exc}")
    for key in ("phase_ssim", "amplitude_ssim", "frc50", "nrmse"):
        if key in point:
            job.metric(f"heldout_{key}", json_safe(point[key]), epoch=int(epoch), stage="training")
    covered = rec.weight > 0
    step = max(1, int(np.ceil(max(rec.object.shape) / PREVIEW_MAX_SIDE)))
    amp = np.where(covered, np.abs(rec.object), 0.0)[::step, ::step].astype(np.float32)
    phase = np.nan_to_num(display.remove_phase_offset(rec.object, covered))[::step, ::step].astype(np.float32)
    folder = job.run.dir / "previews"
    folder.mkdir(exist_ok=True)
    path = folder / f"epoch_{int(epoch):04d}.npz"
    np.savez(path, amplitude=amp, phase=phase, epoch=np.int64(epoch),
             **{k: np.float64(v) for k, v in point.items() if k != "epoch" and v is not None})
    job.artifact("preview", path)
    curve.append(point)


# ------------------------------------------------------------------------------------------------ refining
class RefineJobHooks:
    """engine.backend_api.RefineHooks → events: throttled ``progress`` (patterns), one ``epoch`` per epoch."""

    def __init__(self, job, method: str, step: float, clock=time.monotonic):
        self.job, self.method, self.step, self.clock = job, method, float(step), clock
        self.epochs = self.patterns = 1
        self._last = -math.inf
        self.history: list[dict] = []

    def on_start(self, epochs: int, patterns: int) -> None:
        self.epochs, self.patterns = int(epochs), max(1, int(patterns))
        self.job.progress(0, self.epochs * self.patterns, unit="pattern", stage="refining")

    def on_batch_end(self, epoch: int, done: int, loss: float) -> None:
        now = self.clock()
        total, at = self.epochs * self.patterns, epoch * self.patterns + done
        if at >= total or now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self.job.progress(at, total, unit="pattern", stage="refining")

    def on_epoch_end(self, epoch: int, loss: float, seconds: float, patterns_per_s: float, state=None) -> None:
        value = float(loss) if math.isfinite(float(loss)) else None
        self.history.append({"epoch": int(epoch), "loss": value, "seconds": float(seconds)})
        self.job.epoch(epoch=int(epoch) + 1, epochs=self.epochs, train_loss=value, val_loss=None, lr=self.step,
                       seconds=float(seconds), samples_per_s=float(patterns_per_s), unit="pattern",
                       method=self.method)

    def should_stop(self) -> bool:
        return bool(self.job.cancelled)


def refine_reconstruction(job, backend, ds, probe: np.ndarray, start: Reconstruction | None, cfg,
                          method: str) -> tuple[Reconstruction, list[dict], str]:
    """Refine ``start`` (None: a flat object on the scan's grid) against ``ds``'s counts; (result, history, status)."""
    from engine import refine as R
    from engine.pipeline import stitch_grid
    from engine.scaling import compute_scales

    job.stage("refining")
    probe = np.asarray(probe, np.complex64)
    scales = compute_scales(ds.measured, probe)  # the data's own photon scale: its dose, not the training scan's
    counts = np.asarray(ds.measured, np.float32) ** 2
    if start is None:
        shape, origin = stitch_grid(ds)
        first = R.start_object(shape, cfg.margin)
    else:
        shape, origin = start.object.shape, start.origin
        first = R.start_object(shape, cfg.margin, start.object, start.weight)
    problem = R.make_problem(counts, ds.positions, probe * np.float32(scales.photon_scale), shape, origin, cfg.margin,
                             valid=ds.valid)
    job.log(f"refining ({method}): {ds.M} patterns, {cfg.epochs} epochs of batches of {cfg.batch_size}, object "
            f"{shape[1]}x{shape[0]} (+{cfg.margin} px margin), photon scale {scales.photon_scale:.4g} from the data, "
            f"rPIE β {cfg.regularization:g}, momentum {cfg.momentum:g}, low-frequency phase momentum "
            + (f"×{cfg.low_frequency_gain:g}" if cfg.low_frequency_gain > 0 else "off")
            + (", probe refined too" if cfg.refine_probe else ""))
    hooks = RefineJobHooks(job, method, cfg.step)
    result = backend.refine(problem, R.RefineState(first, problem_probe(probe, scales.photon_scale)), cfg, hooks)
    obj = R.crop_object(result.state.object, cfg.margin).astype(np.complex64)
    refined_probe = (result.state.probe / np.float32(scales.photon_scale)).astype(np.complex64)
    weight = np.asarray(R.crop_object(problem.illumination, cfg.margin), np.float32)
    meta = {"photon_scale": scales.photon_scale, "refine_epochs": len(result.history)}
    history = [{"epoch": h["epoch"], "train_loss": h["loss"]} for h in result.history]
    return Reconstruction(obj, weight, origin, refined_probe, meta), history, result.status


def refine_network_object(job, backend, ds, probe: np.ndarray, start: Reconstruction, gridsize: int,
                          cfg) -> tuple[Reconstruction, list[dict], str]:
    """Hybrid: refine the network's object ``start`` — all of it, or what engine.refine.hybrid_start keeps of it (the
    log says why) — against ``ds``; (result, history, status), the start's provenance kept in the result's meta.
    One path for `reconstruct --method hybrid` and `train --test ... --test-refine`."""
    from engine.refine import hybrid_start

    first, why = hybrid_start(start.object, probe, gridsize)
    if why is not None:
        job.log(f"hybrid: {why}")
        start = replace(start, object=first, meta={**start.meta, "hybrid_start": "amplitude"})
    rec, history, status = refine_reconstruction(job, backend, ds, probe, start, cfg, "hybrid")
    return replace(rec, meta={**rec.meta, **start.meta, "photon_scale": rec.meta["photon_scale"]}), history, status


def problem_probe(probe: np.ndarray, photon_scale: float) -> np.ndarray:
    """The probe in count units, as the refinement's forward model uses it."""
    return (np.asarray(probe, np.complex64) * np.float32(photon_scale)).astype(np.complex64)


# --------------------------------------------------------------------------------------------------- saving
def evaluate_reconstruction(job, rec: Reconstruction, ds, prefix: str = "") -> dict | None:
    """Metrics against the scan's ground truth (None without one): metrics{prefix}.json, metric events."""
    if ds.object is None:
        return None
    from engine.metrics import evaluate

    job.stage("evaluating")
    try:
        metrics = evaluate(rec.object, rec.origin, ds.object, ds.positions, ds.N, ds.probe)
    except ValueError as exc:
        job.warning(f"metrics skipped: {exc}")
        return None
    name = f"metrics{'_' + prefix if prefix else ''}.json"
    (job.run.dir / name).write_text(json.dumps(json_safe(metrics), indent=2) + "\n")
    job.artifact(f"metrics{'_' + prefix if prefix else ''}", job.run.dir / name)
    for i, (part, key) in enumerate(EVENT_METRICS):
        label = {"frc50_crossing": "frc50"}.get(key, key)
        job.metric(f"{prefix + '_' if prefix else ''}{part}_{label}", json_safe(metrics[part].get(key)),
                   key=(i == 0 and not prefix), stage="evaluating")
    return metrics


def save_reconstruction(job, rec: Reconstruction, ds, *, data_source: str, backend_name: str, method: str,
                        costs: list, provenance: dict, prefix: str = "") -> dict | None:
    """recon{_prefix}.npz, its metrics and — for the final object (no prefix) — previews and product.h5."""
    from engine.recon import write_recon

    run_dir = job.run.dir
    name = f"recon{'_' + prefix if prefix else ''}"
    write_recon(run_dir / f"{name}.npz", rec.object, rec.origin, ds.positions, backend=backend_name, method=method,
                data=str(data_source), **{k: v for k, v in rec.meta.items() if v is not None})
    job.artifact(name, run_dir / f"{name}.npz")
    metrics = evaluate_reconstruction(job, rec, ds, prefix)
    if prefix:
        return metrics
    from engine.preview import write_previews
    from engine.product import write_product, write_product_cxi

    job.stage("saving")
    title = f"{job.run.run_id} · {method} · {backend_name}"
    if provenance.get("bundle_trained_by"):
        title += f" · bundle by {provenance['bundle_trained_by']}, {provenance.get('bundle_epochs', '?')} epochs"
    for kind, path in write_previews(run_dir, rec.object, rec.weight > 0, metrics, title=title).items():
        job.artifact(f"preview_{kind}", path)
    product = dict(obj=rec.object, origin=rec.origin, probe=rec.probe, positions=ds.positions, geometry=ds.geometry,
                   name=job.run.run_id, photon_count=ds.nphotons,
                   costs=np.array([c if c is not None else np.nan for c in costs], np.float32),
                   provenance={"run_id": job.run.run_id, "backend": backend_name, "method": method,
                               "data": str(data_source), **provenance})
    write_product(run_dir / "product.h5", **product)
    job.artifact("product", run_dir / "product.h5")
    write_product_cxi(run_dir / "product.cxi", **product)
    job.artifact("product_cxi", run_dir / "product.cxi")
    if not ds.geometry.known:
        job.log("the data state no geometry (energy, distance, pixel size): product.h5 and product.cxi use a "
                "default pixel size of 1e-8 m and say so (pinnacle/pixel_size_source); pass --energy-ev, "
                "--distance-m, --detector-pixel-m for metres")
    return metrics


def bundle_provenance(bundle, epochs: int | None = None) -> dict:
    """What a reconstruction records of the bundle that made it (product.h5, titles)."""
    return {"bundle_manifest_sha256": bundle.manifest_sha256, "bundle_trained_by": bundle.backend,
            "bundle_epochs": len(bundle.history) if epochs is None else epochs}


# ------------------------------------------------------------------------------------------------------ job
def reconstruct_job(request: "ReconstructRequest", ds, bundle, runs_root: str | Path, events: str | None = None,
                    events_fd: int | None = None, human: bool | None = None, native_log=None) -> int:
    """Run the reconstruction of ``request`` into a new run; the exit code."""
    from dataclasses import asdict

    from engine.backends import load_backend
    from engine.jobs import Job
    from engine.pipeline import dataset_info
    from engine.runstore import RunStore

    RunStore(runs_root).check_writable(create=False)
    backend = load_backend(request.backend)
    method, cfg = request.method, request.refine
    config = {"method": method, "data": request.data, "bundle": request.bundle, "backend": request.backend,
              "epochs": cfg.epochs if method != "pinn" else None, "refine": asdict(cfg) if method != "pinn" else None,
              "bundle_manifest_sha256": bundle.manifest_sha256 if bundle is not None else None}
    with Job.start(kind="reconstruct", store=RunStore(runs_root), config=config, backend=request.backend,
                   dataset=dataset_info(ds), events=events, events_fd=events_fd, human=human,
                   native_log=native_log) as job:
        job.stage("loading")
        job.log(f"reconstructing {request.data} with method {method} ({request.backend})")
        provenance = bundle_provenance(bundle) if bundle is not None else {}
        start, costs = None, []
        if bundle is not None:
            batch = request.batch_size or bundle.run_config.inference.batch_size
            start = pinn_reconstruction(job, bundle, ds, backend, batch)
            costs = [h.get("train_loss") for h in bundle.history]
            if method == "pinn":
                save_reconstruction(job, start, ds, data_source=request.data, backend_name=request.backend,
                                    method=method, costs=costs, provenance=provenance)
                return int(job.exit_code or 0)
            save_reconstruction(job, start, ds, data_source=request.data, backend_name=request.backend,
                                method="pinn", costs=costs, provenance=provenance, prefix="pinn")
        probe = ds.probe if ds.probe is not None else bundle.probe
        if start is not None:
            rec, history, status = refine_network_object(job, backend, ds, probe, start,
                                                         bundle.run_config.model.gridsize, cfg)
        else:
            rec, history, status = refine_reconstruction(job, backend, ds, probe, None, cfg, method)
        costs = [h["train_loss"] for h in history]
        if status == "diverged":
            raise RuntimeError(f"refinement diverged at epoch {len(history)} (the loss is no longer finite); try "
                               "fewer epochs or --method hybrid")
        if status == "cancelled":
            job.log(f"cancelled during refinement after {len(history)} epochs: saving the object as it is")
        save_reconstruction(job, rec, ds, data_source=request.data, backend_name=request.backend, method=method,
                            costs=costs, provenance=provenance)
        if status == "cancelled":
            job.check_cancel()
            raise Cancelled("refinement stopped early")
    return int(job.exit_code)
