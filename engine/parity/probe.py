"""Parity levels 0, 1 and 2 (docs/parity.md) probed in one backend per process: NPZ in, NPZ out.

Both frameworks in one process would share (and fight over) threads, allocators and logging, and the console rule
is that a process imports at most one framework — so the comparison runs each backend in its own child:

    python -m engine.parity.probe BACKEND INPUT.npz OUTPUT.npz

INPUT holds cases (``write_inputs``): per case a run config (JSON), canonical weights, one batch, the physics
constants and a short sequence of given gradients. OUTPUT holds, per case, what the backend computed from them:
the predicted object patches and the batch loss for each loss kind (level 1); the gradient of the training loss
for every canonical parameter, the weights after one training step, and the weights after the training optimiser
applied to the given gradients (level 2). INPUT may
also hold level-0 "ops" inputs (``ops_inputs``): the child then runs every op of engine.physics' oracle list
(``OPS``) through the backend's numpy-in/out wrappers (engine/<backend>/ops.py) and writes what they return.
Arrays are read with ``allow_pickle=False``; nothing in the files is executed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.backend_api import Batch, PhysicsConstants
from engine.config import LOSSES, RunConfig, from_dict, to_dict


@dataclass(frozen=True)
class Case:
    """One parity probe: the same weights, batch and given gradients go to every backend."""

    cfg: RunConfig
    weights: dict[str, np.ndarray]
    consts: PhysicsConstants
    batch: Batch
    given: tuple[dict[str, np.ndarray], ...] = ()  # gradients for the optimiser-rule check (engine.parity.checks)


@dataclass(frozen=True)
class Outputs:
    objects: np.ndarray  # (B, C, N, N) complex64, after merge/re-extract
    losses: dict[str, float]  # loss kind → batch loss
    stepped: dict[str, np.ndarray]  # canonical weights after one training step (own gradient)
    grads: dict[str, np.ndarray]  # ∂(training loss)/∂parameter, canonical layout
    optimized: dict[str, np.ndarray]  # zero weights after the optimiser applied to Case.given


#: Level-0 ops (engine.physics' oracle list) → argument names in call order; every backend's ops module has them.
OPS: dict[str, tuple[str, ...]] = {
    "fourier_shift": ("a", "dy", "dx"),
    "merge_group": ("patches", "offsets"),
    "reextract_group": ("region", "offsets", "N"),
    "forward_intensity": ("probe", "obj_patches", "photon_scale"),
    "poisson_deviance": ("pred_counts", "counts"),
    "amplitude_mae": ("pred_counts", "counts"),
    "masked_poisson_deviance": ("pred_counts", "counts", "valid"),
    "masked_amplitude_mae": ("pred_counts", "counts", "valid"),
    "refine_patches": ("obj", "corners", "fractions", "N", "margin"),
    "refine_gradients": ("obj", "probe", "counts", "corners", "fractions", "margin", "valid"),
}
#: The numpy oracle of each op: engine.physics, except the refinement's ops (engine.refine).
ORACLE_MODULE = {"refine_patches": "engine.refine", "refine_gradients": "engine.refine"}
#: Ops that are another op called with more arguments (the detector-mask variants of the losses).
OP_FUNCTION = {"masked_poisson_deviance": "poisson_deviance", "masked_amplitude_mae": "amplitude_mae"}


def _crandn(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)).astype(np.complex64)


def ops_inputs(seed: int = 0, N: int = 64) -> dict[str, dict[str, np.ndarray]]:
    """Fixed, seeded level-0 inputs in single precision (what the training graph sees), values of order 1 so
    that an absolute tolerance means the same thing for every op: a batch of gridsize-2 groups (C = 4) with
    sub-pixel offsets up to N/4, a probe scaled to an O(1) far field, and Poisson counts that include zeros."""
    from engine import physics

    rng = np.random.default_rng(seed)
    patches = _crandn(rng, (2, 4, N, N))
    offsets = rng.uniform(-N / 4, N / 4, (2, 4, 2)).astype(np.float32)
    lam = rng.uniform(0.0, 4.0, (2, 4, 16, 16)).astype(np.float32)
    mask_rng = np.random.default_rng([seed, 14])  # its own stream: the other ops' inputs stay as they were
    valid = mask_rng.uniform(size=(16, 16)) > 0.2  # a detector mask: about a fifth of the pixels excluded
    garbage = np.where(valid, mask_rng.poisson(lam), 1e6).astype(np.float32)  # masked counts must never be read
    return {
        "fourier_shift": {"a": _crandn(rng, (2, 3, 32, 48)), "dy": rng.uniform(-8, 8, (2, 3)),
                          "dx": rng.uniform(-8, 8, (2, 3))},
        "merge_group": {"patches": patches, "offsets": offsets},
        "reextract_group": {"region": physics.merge_group(patches, offsets)[0], "offsets": offsets,
                            "N": np.array(N)},
        "forward_intensity": {"probe": (_crandn(rng, (N, N)) / N).astype(np.complex64),
                              "obj_patches": _crandn(rng, (2, 4, N, N)), "photon_scale": np.array(1.7)},
        "poisson_deviance": {"pred_counts": lam, "counts": rng.poisson(lam).astype(np.float32)},
        "amplitude_mae": {"pred_counts": lam, "counts": rng.poisson(lam[::-1]).astype(np.float32)},
        "masked_poisson_deviance": {"pred_counts": lam, "counts": garbage, "valid": valid},
        "masked_amplitude_mae": {"pred_counts": lam, "counts": garbage, "valid": valid},
        **refine_ops_inputs(seed),
    }


def refine_ops_inputs(seed: int, N: int = 32, margin: int = 4, M: int = 5) -> dict[str, dict[str, np.ndarray]]:
    """Level-0 inputs of the refinement's ops: an object of order 1 on a small padded grid, windows at sub-pixel
    positions that overlap, a probe scaled to a far field of order 1, Poisson counts (with zeros) and a mask."""
    rng = np.random.default_rng([seed, 21])
    side = 2 * N + 2 * margin
    obj = (1.0 + 0.3 * _crandn(rng, (side, side))).astype(np.complex64)
    corners = rng.integers(0, side - (N + 2 * margin) + 1, (M, 2)).astype(np.int64)
    fractions = rng.uniform(0, 1, (M, 2))
    probe = (3.0 * _crandn(rng, (N, N))).astype(np.complex64)
    counts = rng.poisson(9.0, (M, N, N)).astype(np.float32)
    valid = rng.uniform(size=(N, N)) > 0.1
    common = {"obj": obj, "corners": corners, "fractions": fractions, "margin": np.array(margin)}
    return {"refine_patches": {**common, "N": np.array(N)},
            "refine_gradients": {**common, "probe": probe, "counts": counts, "valid": valid}}


def call_op(module, op: str, args: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """``module.<op>(*args)`` (module: engine.physics or a backend's ops); outputs as a tuple of arrays."""
    values = [args[k].item() if args[k].ndim == 0 else args[k] for k in OPS[op]]
    out = getattr(module, OP_FUNCTION.get(op, op))(*values)
    return tuple(np.asarray(o) for o in (out if isinstance(out, tuple) else (out,)))


def _ops_arrays(prefix: str, table: dict[str, dict[str, np.ndarray]] | dict[str, tuple[np.ndarray, ...]]) -> dict:
    arrays = {f"{prefix}": np.array(json.dumps(sorted(table)))}
    for op, values in table.items():
        items = values.items() if isinstance(values, dict) else enumerate(values)
        for key, v in items:
            arrays[f"{prefix}/{op}/{key}"] = np.asarray(v)
    return arrays


def _read_ops(path: Path, prefix: str) -> dict[str, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
        if prefix not in z.files:
            return {}
        out: dict[str, dict[str, np.ndarray]] = {}
        for op in json.loads(str(z[prefix])):
            head = f"{prefix}/{op}/"
            out[op] = {k[len(head):]: z[k] for k in z.files if k.startswith(head)}
        return out


def read_ops_inputs(path: Path) -> dict[str, dict[str, np.ndarray]]:
    return _read_ops(path, "ops")


def read_ops_outputs(path: Path) -> dict[str, tuple[np.ndarray, ...]]:
    """op → its outputs in order (merge_group: region, coverage)."""
    return {op: tuple(v[str(i)] for i in range(len(v))) for op, v in _read_ops(path, "ops_out").items()}


def write_inputs(path: Path, cases: dict[str, Case], ops: dict[str, dict[str, np.ndarray]] | None = None,
                 refine=None) -> None:
    """``refine``: an engine.parity.refine.StepCase (level-2 refinement step), or None."""
    arrays: dict[str, np.ndarray] = {"cases": np.array(json.dumps(sorted(cases)))}
    if ops:
        arrays.update(_ops_arrays("ops", ops))
    if refine is not None:
        from engine.parity import refine as parity_refine

        arrays.update(parity_refine.arrays(refine))
    for name, c in cases.items():
        arrays[f"{name}/cfg"] = np.array(json.dumps(to_dict(c.cfg)))
        arrays[f"{name}/probe"] = np.asarray(c.consts.probe, np.complex64)
        arrays[f"{name}/scales"] = np.array([c.consts.photon_scale, c.consts.input_scale], np.float64)
        if c.consts.valid is not None:
            arrays[f"{name}/valid"] = np.asarray(c.consts.valid, bool)  # the detector mask the loss honours
        for field in ("x", "counts", "offsets"):
            arrays[f"{name}/batch/{field}"] = np.asarray(getattr(c.batch, field), np.float32)
        _put(arrays, f"{name}/w/", c.weights)
        arrays[f"{name}/given"] = np.array(len(c.given))
        for i, g in enumerate(c.given):
            _put(arrays, f"{name}/given/{i}/", g)
    np.savez(path, **arrays)


def _put(arrays: dict, prefix: str, tensors: dict[str, np.ndarray]) -> None:
    for key, v in tensors.items():
        arrays[prefix + key] = np.asarray(v, np.float32)


def _get(z, prefix: str) -> dict[str, np.ndarray]:
    """The tensors stored under ``prefix`` (names never contain '/', so deeper prefixes are not picked up)."""
    return {k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix) and "/" not in k[len(prefix):]}


def _read_cases(path: Path, read) -> dict:
    """``read(z, name)`` of every case a probe file lists (inputs and outputs are both stored per case name)."""
    with np.load(path, allow_pickle=False) as z:
        return {name: read(z, name) for name in json.loads(str(z["cases"]))}


def _case(z, name: str) -> Case:
    cfg = from_dict(json.loads(str(z[f"{name}/cfg"])))
    photon_scale, input_scale = (float(v) for v in z[f"{name}/scales"])
    valid = z[f"{name}/valid"] if f"{name}/valid" in z.files else None
    consts = PhysicsConstants(z[f"{name}/probe"], photon_scale, input_scale, cfg.model.N, cfg.model.channels,
                              valid=valid)
    batch = Batch(*(z[f"{name}/batch/{f}"] for f in ("x", "counts", "offsets")))
    given = tuple(_get(z, f"{name}/given/{i}/") for i in range(int(z[f"{name}/given"])))
    return Case(cfg, _get(z, f"{name}/w/"), consts, batch, given)


def read_inputs(path: Path) -> dict[str, Case]:
    return _read_cases(path, _case)


def probe(backend, case: Case) -> Outputs:
    """What ``backend`` (a module of engine/backend_api.py) computes for one case."""
    m, tc = case.cfg.model, case.cfg.training
    objects = backend.predict(m, case.weights, case.consts, case.batch.x, case.batch.offsets, len(case.batch))
    losses = {kind: float(backend.batch_loss(m, case.weights, case.consts, case.batch, kind)) for kind in LOSSES}
    f32 = lambda d: {k: np.asarray(v, np.float32) for k, v in d.items()}  # noqa: E731
    return Outputs(
        objects=np.asarray(objects, np.complex64), losses=losses,
        stepped=f32(backend.sgd_step(case.cfg, case.weights, case.consts, case.batch)),
        grads=f32(backend.gradients(m, case.weights, case.consts, case.batch, tc.loss)),
        # from zero weights: the check then measures the optimiser's rule, not the float32 rounding of θ + Δθ
        optimized=f32(backend.optimizer_steps(case.cfg, {k: np.zeros_like(w) for k, w in case.weights.items()},
                                              case.consts, list(case.given))),
    )


def write_outputs(path: Path, outputs: dict[str, Outputs], ops_out: dict[str, tuple[np.ndarray, ...]] | None = None,
                  refine_out: dict[str, np.ndarray] | None = None) -> None:
    arrays: dict[str, np.ndarray] = {"cases": np.array(json.dumps(sorted(outputs)))}
    if ops_out:
        arrays.update(_ops_arrays("ops_out", ops_out))
    arrays.update(refine_out or {})
    for name, o in outputs.items():
        arrays[f"{name}/objects"] = o.objects
        arrays[f"{name}/losses"] = np.array(json.dumps(o.losses))
        for part in ("stepped", "grads", "optimized"):
            _put(arrays, f"{name}/{part}/", getattr(o, part))
    np.savez(path, **arrays)


def read_refine_outputs(path: Path) -> dict[str, np.ndarray]:
    """The level-2 refinement step's outputs (engine.parity.refine.run_steps), empty when there were none."""
    from engine.parity import refine as parity_refine

    with np.load(path, allow_pickle=False) as z:
        return parity_refine.outputs(z)


def _outputs(z, name: str) -> Outputs:
    return Outputs(z[f"{name}/objects"], json.loads(str(z[f"{name}/losses"])),
                   **{part: _get(z, f"{name}/{part}/") for part in ("stepped", "grads", "optimized")})


def read_outputs(path: Path) -> dict[str, Outputs]:
    return _read_cases(path, _outputs)


def run_in_child(backend: str, inputs: Path, output: Path, timeout: float | None = None) -> dict[str, Outputs]:
    """Run the probe for ``backend`` in a fresh interpreter and read its results (raises on failure)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    proc = subprocess.run([sys.executable, "-m", "engine.parity.probe", backend, str(inputs), str(output)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"parity probe for {backend} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return read_outputs(output)


def main(argv: list[str] | None = None) -> int:
    from engine.backends import load_backend

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m engine.parity.probe BACKEND INPUT.npz OUTPUT.npz", file=sys.stderr)
        return 2
    backend = load_backend(args[0])
    cases = read_inputs(Path(args[1]))
    ops_in = read_ops_inputs(Path(args[1]))
    ops_out = None
    if ops_in:
        import importlib

        from engine.backends import canonical_name, info

        module = importlib.import_module(info(canonical_name(args[0])).ops_module)
        ops_out = {op: call_op(module, op, a) for op, a in ops_in.items()}
    from engine.parity import refine as parity_refine

    with np.load(Path(args[1]), allow_pickle=False) as z:
        step_case = parity_refine.read_case(z)
    refine_out = parity_refine.run_steps(backend.refine_step, step_case) if step_case is not None else None
    write_outputs(Path(args[2]), {name: probe(backend, case) for name, case in cases.items()}, ops_out, refine_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
