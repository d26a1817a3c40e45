"""Parity of the refinement (docs/parity.md): one refinement step at level 2, and the refined objects end to end.

Level 2: the same object, probe and batch of patterns go to each backend's ``refine_step`` (in the probe child,
engine.parity.probe) and to the numpy oracle (engine.refine.step, here); the updates must agree — object only, and
object and probe together. End to end (with level 3): `pinnacle reconstruct --method iterative` in each backend on
the held-out scan; the refined objects must agree.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from engine import refine as R
from engine.backends import BACKENDS
from engine.parity.checks import Check, at_most

#: Level 2, one refinement step: ‖ΔO_backend − ΔO_other‖ / ‖ΔO_other‖ (and the same for the probe). The update is
#: linear in the gradient, whose detector-space factor w·(1 − n/λ) = (λ − n)/(λ + n) is bounded by 1, so nothing
#: amplifies round-off: float32 FFTs of ≤ 80² points and window sums leave ~1e-6 relative (measured ≤ 1e-6);
#: 1e-4 leaves 100×. A wrong sign, adjoint, weight or normalisation is of order 1.
REFINE_STEP_TOL = 1e-4
#: Level 2: the batch's summed deviance, |ΔL| / L (float32 λ summed in float64).
REFINE_LOSS_TOL = 1e-5
#: End to end: ‖O_tf − O_torch‖ / ‖O_torch‖ of the iteratively refined objects (all epochs of the default
#: refinement). Each step is a contraction toward the data, so round-off does not grow from epoch to epoch
#: (measured 2.8e-7 after 60 epochs on the fixture, 2.9e-7 with the low-frequency phase momentum); 1e-4 is the
#: level-1 bound, and leaves 300×.
REFINE_OBJECT_TOL = 1e-4
#: Patterns in the level-2 step (a few, overlapping: the normalisation sums several probes per pixel).
STEP_PATTERNS = 8
VARIANTS = ("object", "object+probe")


@dataclass(frozen=True)
class StepCase:
    problem: R.RefineProblem
    state: R.RefineState
    sel: np.ndarray
    cfg: R.RefineConfig


def step_case(ds, seed: int = 0) -> StepCase:
    """The first STEP_PATTERNS patterns of ``ds`` on its reconstruction grid, from a flat object."""
    from engine.pipeline import stitch_grid
    from engine.scaling import compute_scales

    cfg = R.RefineConfig(seed=seed)
    probe = np.asarray(ds.probe, np.complex64)
    scale = compute_scales(ds.measured, probe).photon_scale
    shape, origin = stitch_grid(ds)
    problem = R.make_problem(np.asarray(ds.measured, np.float32) ** 2, ds.positions, probe * np.float32(scale), shape,
                             origin, cfg.margin, valid=ds.valid)
    state = R.RefineState(R.start_object(shape, cfg.margin), (probe * np.float32(scale)).astype(np.complex64))
    return StepCase(problem, state, np.arange(min(STEP_PATTERNS, problem.M)), cfg)


# ------------------------------------------------------------------------------------------------ files
def arrays(case: StepCase) -> dict[str, np.ndarray]:
    import json

    p = case.problem
    out = {"refine/counts": p.counts, "refine/corners": p.corners, "refine/fractions": p.fractions,
           "refine/shape": np.array(p.shape), "refine/margin": np.array(p.margin), "refine/illumination": p.illumination,
           "refine/object": case.state.object, "refine/probe": case.state.probe, "refine/sel": case.sel,
           "refine/cfg": np.array(json.dumps(asdict(case.cfg)))}
    if p.valid is not None:
        out["refine/valid"] = p.valid
    return out


def read_case(z) -> StepCase | None:
    """The step case in an open NPZ (None when it holds none)."""
    import json

    if "refine/counts" not in z.files:
        return None
    valid = z["refine/valid"] if "refine/valid" in z.files else None
    problem = R.RefineProblem(z["refine/counts"], z["refine/corners"], z["refine/fractions"],
                              tuple(int(v) for v in z["refine/shape"]), int(z["refine/margin"]),
                              z["refine/illumination"], valid)
    return StepCase(problem, R.RefineState(z["refine/object"], z["refine/probe"]), z["refine/sel"],
                    R.RefineConfig(**json.loads(str(z["refine/cfg"]))))


def run_steps(step_fn, case: StepCase) -> dict[str, np.ndarray]:
    """What ``step_fn`` (a backend's refine_step, or engine.refine.step) computes for each variant."""
    out = {}
    for variant in VARIANTS:
        state, dev = step_fn(case.problem, case.state, case.sel, case.cfg, variant == "object+probe")
        out[f"refine_out/{variant}/object"] = np.asarray(state.object)
        out[f"refine_out/{variant}/probe"] = np.asarray(state.probe)
        out[f"refine_out/{variant}/deviance"] = np.array(float(dev))
    return out


def outputs(z) -> dict[str, np.ndarray]:
    return {k: z[k] for k in z.files if k.startswith("refine_out/")}


# ----------------------------------------------------------------------------------------------- checks
def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.complex128), np.asarray(b, np.complex128)
    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-300))


def step_checks(case: StepCase, got: dict[str, dict[str, np.ndarray]]) -> list[Check]:
    """Each backend's step against the oracle's, and the two backends against each other."""
    want = run_steps(R.step, case)
    o0, p0 = np.asarray(case.state.object, np.complex128), np.asarray(case.state.probe, np.complex128)
    checks: list[Check] = []
    for variant in VARIANTS:
        ref_o = want[f"refine_out/{variant}/object"] - o0
        ref_p = want[f"refine_out/{variant}/probe"] - p0
        for backend, out in got.items():
            if f"refine_out/{variant}/object" not in out:
                checks.append(Check(f"refinement step ({variant}) vs oracle", 2, "refinement step", None,
                                    REFINE_STEP_TOL, False, "not computed by the backend", backend))
                continue
            d_o = out[f"refine_out/{variant}/object"] - o0
            err = _rel(d_o, ref_o)
            detail = "‖ΔO − ΔO_oracle‖ / ‖ΔO_oracle‖"
            if variant == "object+probe":
                err = max(err, _rel(out[f"refine_out/{variant}/probe"] - p0, ref_p))
                detail = "worst of ‖ΔO − ΔO_oracle‖ / ‖ΔO_oracle‖ and the same for the probe"
            checks.append(at_most(f"refinement step ({variant}) vs oracle", 2, "refinement step", err,
                                   REFINE_STEP_TOL, detail, backend))
            dev, ref_dev = float(out[f"refine_out/{variant}/deviance"]), float(want[f"refine_out/{variant}/deviance"])
            checks.append(at_most(f"refinement batch deviance ({variant}) vs oracle", 2, "refinement loss",
                                   abs(dev - ref_dev) / max(abs(ref_dev), 1e-300), REFINE_LOSS_TOL, "|ΔL| / L",
                                   backend))
        if len(got) == 2 and all(f"refine_out/{variant}/object" in o for o in got.values()):
            (_, a), (_, b) = sorted(got.items())
            err = _rel(a[f"refine_out/{variant}/object"] - o0, b[f"refine_out/{variant}/object"] - o0)
            checks.append(at_most(f"refinement step ({variant}), tensorflow vs torch", 2, "refinement step", err,
                                   REFINE_STEP_TOL, "‖ΔO_tf − ΔO_torch‖ / ‖ΔO_torch‖"))
    return checks


def end_to_end_checks(objects: dict[str, np.ndarray], metrics: dict[str, dict]) -> list[Check]:
    """The two backends' iteratively refined objects of the held-out scan, and their phase SSIM."""
    first, second = BACKENDS
    a, b = objects.get(first), objects.get(second)
    if a is None or b is None or np.shape(a) != np.shape(b):
        return [Check("refined object, tensorflow vs torch", 3, "refined object", None, REFINE_OBJECT_TOL, False,
                      "a refined object is missing or on another grid")]
    checks = [at_most("refined object, tensorflow vs torch", 3, "refined object", _rel(a, b), REFINE_OBJECT_TOL,
                       "‖O_tf − O_torch‖ / ‖O_torch‖ (iterative refinement, complex object)")]
    sa, sb = (metrics.get(k, {}).get("phase_ssim") for k in (first, second))
    if isinstance(sa, (int, float)) and isinstance(sb, (int, float)):
        checks.append(at_most("refined phase SSIM agreement", 3, "refined phase_ssim", abs(sa - sb),
                               REFINE_OBJECT_TOL, f"tf {sa:.5f} vs torch {sb:.5f}; |Δ| (an SSIM moves less than the "
                               "object's relative change)"))
    return checks
