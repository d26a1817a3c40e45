"""The infer job (``pinnacle infer``): a bundle reconstructs a scan into a new run, on one device or across several.

Across ``--devices N [--num-nodes M]`` ranks (docs/scaling.md, "Distributed inference"): the groups to predict are
cut into contiguous shards, one per rank (engine.distributed.span); each rank predicts its shard with the backend's
``predict`` on its own device (or its share of the CPU cores), and rank 0 gathers the patches in the original order
(engine/shards.py), then stitches, evaluates and writes the run exactly as one process does — one run, one voice.
Ranks are started as for training: by this process on one node (engine/launcher.py), by srun or torchrun on several
(every rank runs ``pinnacle infer``; all but rank 0 predict silently, engine/replica.py).
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import asdict, replace
from pathlib import Path

from engine.errors import InputError


def plan_ranks(backend, accelerator: str, devices, num_nodes: int, groups: int):
    """The ranks of this inference (engine.distributed.Topology), None for one process; InputError (exit 2) for a
    device request this machine cannot honour or more ranks than groups to share out. One process per device for
    both backends (no gradients to mirror: TensorFlow's one-process-per-node rule of training does not apply)."""
    from engine import distributed

    if isinstance(devices, str):
        raise InputError("--devices", devices, "a count for infer (process i of a node takes its GPU i; choose the "
                         "GPUs with CUDA_VISIBLE_DEVICES)")
    backend.check_devices(accelerator, devices, num_nodes)
    if devices * num_nodes > groups:
        raise InputError("--devices", f"{devices} x --num-nodes {num_nodes}", f"at most {groups} ranks in all (one "
                         f"shard of the scan's {groups} groups each)")
    return distributed.plan(devices, num_nodes)


@contextlib.contextmanager
def sharded_predict(job, backend, topology, accelerator: str | None, spec: dict):
    """The ``predict`` of this job (engine.reconstruction.pinn_object): the backend's for one process; across the
    ranks of ``topology`` otherwise — the ranks this process starts (``spec``) and rank 0's gather."""
    if topology is None:
        yield backend.predict if accelerator is None else functools.partial(backend.predict, accelerator=accelerator)
        return
    from engine.pipeline import other_ranks
    from engine.shards import ShardGather

    with other_ranks(job, topology, spec, "inference on {} ranks", cancel_join_s=0.0) as ranks:
        failed = ranks.failed if ranks is not None else list
        with ShardGather(topology, check=job.check_cancel, failed=failed) as gather:
            yield gather.sharded(functools.partial(backend.predict, accelerator=accelerator or "cpu",
                                                   replicas=topology))


def infer_job(bundle_path: str | Path, data_path: str | Path, backend: str | None, runs_root: str | Path,
              events: str | None = None, events_fd: int | None = None, batch_size: int | None = None,
              truth: str | Path | None = None, human: bool | None = None, native_log=None,
              options=None, *, accelerator: str | None = None, devices: int | str = 1, num_nodes: int = 1) -> int:
    """Reconstruct ``data_path`` with a bundle into a new run (recon.npz, previews, product.h5, metrics.json).

    ``truth``: a dataset NPZ whose objectGuess scores the result when the data itself has none. ``accelerator``
    None: the framework's own placement (one process); ``devices`` × ``num_nodes``: ranks (see the module).
    """
    from engine.backends import canonical_name, load_backend
    from engine.bundle import load_bundle
    from engine.config import InferenceConfig, to_dict
    from engine.jobs import Job
    from engine.pipeline import dataset_info, inference_input, load_data, require_trained, run_inference
    from engine.runstore import RunStore

    RunStore(runs_root).check_writable(create=False)
    bundle = load_bundle(bundle_path)
    require_trained(bundle, bundle_path)
    cfg = bundle.run_config
    ds = load_data(data_path, require_probe=False, N=cfg.model.N, options=options)
    if truth is not None and ds.object is None:
        truth_ds = load_data(truth, require_probe=False)
        if truth_ds.object is None:
            raise InputError(str(truth), "objectGuess", "expected the true object (objectGuess)")
        ds = replace(ds, object=truth_ds.object)
    name = canonical_name(backend)
    if batch_size is not None:
        InferenceConfig(batch_size=batch_size)  # ConfigError (exit 2) for a bad value
    bs = batch_size or cfg.inference.batch_size
    module = load_backend(name)
    prepared = topology = None
    if devices != 1 or num_nodes != 1:  # the groups, to share them out (and to refuse more ranks than them)
        prepared = inference_input(ds, cfg, ds.probe if ds.probe is not None else bundle.probe)
        topology = plan_ranks(module, accelerator or "cpu", devices, num_nodes, len(prepared.groups))
    elif accelerator is not None:
        module.check_devices(accelerator, 1)
    if topology is not None and not topology.chief:  # srun/torchrun started this rank
        from engine.replica import infer_replica

        return infer_replica(bundle, ds, module, bs, topology, accelerator or "cpu", prepared)
    config = {**to_dict(cfg), "backend": name, "bundle": str(bundle_path),
              "bundle_manifest_sha256": bundle.manifest_sha256, "inference_batch_size": bs,
              **({"ranks": topology.world} if topology is not None else {})}
    spec = {"kind": "infer", "bundle": str(bundle_path), "data_path": str(data_path), "backend": name,
            "batch_size": bs, "options": asdict(options) if options is not None else None,
            "accelerator": accelerator or "cpu"}
    with Job.start(kind="infer", store=RunStore(runs_root), config=config, backend=name,
                   dataset=dataset_info(ds), events=events, events_fd=events_fd, human=human,
                   native_log=native_log) as job, \
            sharded_predict(job, module, topology, accelerator, spec) as predict:
        job.stage("loading")
        job.log(f"bundle trained by {bundle.backend}, inferring with {name}")
        run_inference(job, bundle, ds, module, bs, str(data_path), name, prepared=prepared, predict=predict)
    return int(job.exit_code)
