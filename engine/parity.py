"""What "the backends agree" means (SPEC §8), as numbers: named tolerances and the checks of every level.

Each level function compares what the backends computed (gathered by engine.parity_job in child processes — a
process imports at most one framework) and returns a list of ``Check``. A tolerance is never loosened to make a
failure pass: a failing check is a bug in a backend. docs/parity.md explains every value.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

BACKENDS = ("tensorflow", "torch")
LEVELS = (0, 1, 2, 3)

# --------------------------------------------------------------------------------------------- tolerances
#: Level 0, max abs error of each op against the float64 numpy oracle, inputs of order 1 (SPEC §8). float32 keeps
#: ~7 digits; an FFT of 64² adds log2(4096) = 12 rounding steps and a merge sums 4 shifted patches, so honest
#: float32 results land at 1e-7–1e-6; 1e-5 leaves 10× for different summation orders and nothing for a wrong sign,
#: a wrong frequency grid or a half-pixel offset (errors of order 1).
OPS_ABS_TOL = 1e-5
#: Level 0, losses: |L_backend − L_oracle| / max(1, |L|) — the same float32 budget, relative for large losses.
LOSS_REL_TOL = 1e-5
#: Level 1, the same bundle in both backends: ‖O_tf − O_torch‖ / ‖O_torch‖ of the predicted object patches and the
#: batch loss relative to max(1, |L|) (SPEC §8). Convolutions through ~10 layers in float32 with different
#: summation orders (oneDNN vs Eigen) agree to ~1e-6 relative; 1e-4 is the spec's bound.
NETWORK_REL_TOL = 1e-4
#: Level 2, one Adam step from the same weights on the same batch: max abs parameter difference (SPEC §8).
STEP_ABS_TOL = 1e-4
#: Level 2 steps with this learning rate, not the training one. Adam's first step is lr·g/(|g| + ε) per component:
#: where |g| is below the float32 round-off of the gradient (~1e-5 relative) that round-off decides the step's size
#: (anything in [0, lr]) and sign. At lr 1e-3 the 1e-4 tolerance would ask for 10 % agreement on round-off (one of
#: 5·10⁵ parameters failed at 2.1e-4 with gridsize 2); at 1e-4 the same steps differ by ≤ 2.1e-5.
STEP_LR = 1e-4
#: Level 2, so that a wrong gradient or Adam formula cannot hide under the small step: the whole update as a vector,
#: ‖Δ_tf − Δ_torch‖ / ‖Δ_torch‖ (measured 5e-4; a wrong beta or bias correction moves it to order 1).
UPDATE_REL_TOL = 1e-2
#: Level 2 sanity: Adam's first step moves the largest parameter by about lr; less than half means no step was taken.
STEP_MIN_MOVE = 0.5 * STEP_LR
#: Cross-loading: the object that bundle A gives in backend B vs in backend A, ‖O_AB − O_AA‖ / ‖O_AA‖. The same
#: network on the same input is level 1; stitching is shared numpy code, so nothing is added on top (SPEC §8).
CROSS_REL_TOL = NETWORK_REL_TOL

# Level 3: two trainings of a few epochs from the same weights, seed, groups and batch order are not bit-identical:
# each step's float32 round-off (~1e-6, level 2) is amplified by Adam's normalised steps, and a few epochs in the two
# networks are different samples. How far apart round-off ALONE puts them was measured on the fixtures (5 epochs,
# docs/parity.md "Level 3"): each backend trained again with its initial weights perturbed by 1e-7 relative. The
# four runs (TF, TF', torch, torch') are honest draws of one distribution; each tolerance is 3·√2·σ of it (σ: their
# sample standard deviation), a 3-sigma bound on the difference of two honest draws.
#: |Δ phase SSIM| (phase mapped to [0, 1], after offset/ramp removal): σ = 0.055 (values 0.359–0.472).
PHASE_SSIM_TOL = 0.23
#: |Δ amplitude SSIM| (after the least-squares amplitude scale): σ = 0.023 (values 0.234–0.283).
AMPLITUDE_SSIM_TOL = 0.10
#: |ΔL| / |L| of the final epoch's mean training loss: σ = 2.3 % (18 528–19 551). The steadiest level-3 number: a
#: backend that does not train (the first epoch's loss is 3× higher) or uses another loss scale is far outside it.
TRAIN_LOSS_REL_TOL = 0.10
# PSNR is reported side by side but not gated: round-off alone moved it by up to 9 dB (phase) and 12.5 dB
# (amplitude) at 5 epochs, so a gate that passes honest runs would pass anything.


@dataclass(frozen=True)
class Check:
    """One comparison: ``passed`` is ``value <= tolerance`` unless ``detail`` says otherwise (a minimum)."""

    name: str
    level: int | str  # 0, 1, 2, 3 or "cross"
    subject: str  # the op, the network output, the metric, the bundle...
    value: float | None
    tolerance: float
    passed: bool
    detail: str = ""
    backend: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["value"] = _json_float(self.value)
        return d


def _json_float(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))


def _at_most(name, level, subject, value, tol, detail="", backend="") -> Check:
    """``value`` must be finite and ≤ ``tol`` (a NaN fails)."""
    ok = value is not None and math.isfinite(float(value)) and float(value) <= tol
    return Check(name, level, subject, None if value is None else float(value), tol, bool(ok), detail, backend)


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.complex128) - np.asarray(b, np.complex128)))) if np.size(a) else 0.0


def relative_error(a, b) -> float:
    """‖a − b‖ / ‖b‖."""
    a, b = np.asarray(a, np.complex128), np.asarray(b, np.complex128)
    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-30))


def loss_error(got: float, want: float) -> float:
    """|got − want| / max(1, |want|): absolute for small losses, relative for large ones."""
    return abs(float(got) - float(want)) / max(1.0, abs(float(want)))


# ----------------------------------------------------------------------------------------------- level 0
def level0_checks(backend: str, got: dict[str, tuple[np.ndarray, ...]], oracle: dict[str, tuple[np.ndarray, ...]]
                  ) -> list[Check]:
    """Every op of one backend against the numpy oracle (the same inputs). A missing op is a failure."""
    checks = []
    for op, want in oracle.items():
        name = f"{op} ({backend} vs numpy oracle)"
        if op not in got:
            checks.append(Check(name, 0, op, None, OPS_ABS_TOL, False, "not computed by the backend", backend))
            continue
        out = got[op]
        if len(out) != len(want) or any(np.shape(g) != np.shape(w) for g, w in zip(out, want)):
            checks.append(Check(name, 0, op, None, OPS_ABS_TOL, False,
                                f"shape {[np.shape(g) for g in out]}, expected {[np.shape(w) for w in want]}", backend))
        elif np.ndim(want[0]) == 0:  # a loss
            checks.append(_at_most(name, 0, op, loss_error(out[0], want[0]), LOSS_REL_TOL,
                                   f"{float(out[0]):.8g} vs {float(want[0]):.8g}; |ΔL|/max(1,|L|)", backend))
        else:
            errs = [max_abs(g, w) for g, w in zip(out, want)]
            parts = ", ".join(f"{e:.2g}" for e in errs) if len(errs) > 1 else ""
            checks.append(_at_most(name, 0, op, max(errs), OPS_ABS_TOL,
                                   "max abs error" + (f" per output ({parts})" if parts else ""), backend))
    return checks


# ----------------------------------------------------------------------------------------------- level 1
def level1_checks(case: str, tf_out, torch_out) -> list[Check]:
    """Same weights, same batch: predicted patches and each loss kind (engine.parity_probe.Outputs)."""
    checks = [_at_most(f"network output, {case}", 1, "predicted object patches",
                       relative_error(tf_out.objects, torch_out.objects), NETWORK_REL_TOL,
                       "‖O_tf − O_torch‖ / ‖O_torch‖")]
    for kind in sorted(torch_out.losses):
        a, b = tf_out.losses.get(kind, float("nan")), torch_out.losses[kind]
        checks.append(_at_most(f"{kind} batch loss, {case}", 1, f"{kind} loss", loss_error(a, b), NETWORK_REL_TOL,
                               f"tf {a:.8g} vs torch {b:.8g}; |ΔL|/max(1,|L|)"))
    return checks


# ----------------------------------------------------------------------------------------------- level 2
def level2_checks(case: str, w0: dict[str, np.ndarray], tf_w: dict[str, np.ndarray], torch_w: dict[str, np.ndarray]
                  ) -> list[Check]:
    """One Adam step (lr STEP_LR) from ``w0``: parameters, the update vector, and that a step was taken."""
    if set(tf_w) != set(w0) or set(torch_w) != set(w0):
        return [Check(f"parameter names, {case}", 2, "canonical weights", None, 0.0, False,
                      f"tf {sorted(set(tf_w) ^ set(w0))}, torch {sorted(set(torch_w) ^ set(w0))} differ")]
    worst = max(w0, key=lambda k: float(np.abs(tf_w[k] - torch_w[k]).max()))
    moved = max(float(np.abs(torch_w[k] - w0[k]).max()) for k in w0)
    d_tf = np.concatenate([(tf_w[k] - w0[k]).ravel() for k in w0]).astype(np.float64)
    d_torch = np.concatenate([(torch_w[k] - w0[k]).ravel() for k in w0]).astype(np.float64)
    update = float(np.linalg.norm(d_tf - d_torch) / max(float(np.linalg.norm(d_torch)), 1e-30))
    return [
        _at_most(f"parameters after one Adam step, {case}", 2, "parameters",
                 float(np.abs(tf_w[worst] - torch_w[worst]).max()), STEP_ABS_TOL,
                 f"max abs difference (worst tensor {worst}); lr {STEP_LR:g}"),
        _at_most(f"update vector, {case}", 2, "Adam update", update, UPDATE_REL_TOL, "‖Δ_tf − Δ_torch‖ / ‖Δ_torch‖"),
        Check(f"a step was taken, {case}", 2, "Adam update", moved, STEP_MIN_MOVE, bool(moved >= STEP_MIN_MOVE),
              "largest parameter move (torch); must be AT LEAST the tolerance"),
    ]


# ----------------------------------------------------------------------------------------------- level 3
#: (metric key in the report, tolerance, how it is compared) — compared between A-in-A of both backends.
LEVEL3_METRICS = (
    ("phase_ssim", PHASE_SSIM_TOL, "abs"),
    ("amplitude_ssim", AMPLITUDE_SSIM_TOL, "abs"),
    ("final_train_loss", TRAIN_LOSS_REL_TOL, "rel"),
)


def level3_checks(metrics: dict[str, dict[str, float | None]]) -> list[Check]:
    """Metrics of each backend's own reconstruction ({backend: {metric: value}}) against the other's."""
    checks = []
    for key, tol, how in LEVEL3_METRICS:
        a, b = metrics["tensorflow"].get(key), metrics["torch"].get(key)
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            checks.append(Check(f"{key} agreement", 3, key, None, tol, False, f"missing (tf {a}, torch {b})"))
            continue
        delta = abs(a - b) / max(abs(b), 1e-30) if how == "rel" else abs(a - b)
        detail = f"tf {a:.4g} vs torch {b:.4g}; " + ("|Δ|/|torch|" if how == "rel" else "|Δ|")
        checks.append(_at_most(f"{key} agreement", 3, key, delta, tol, detail))
    return checks


def cross_checks(objects: dict[tuple[str, str], np.ndarray]) -> list[Check]:
    """``objects[(trained_by, inferred_by)]``: bundle A in backend B must give A-in-A (level-1 tolerance)."""
    checks = []
    for a in BACKENDS:
        for b in BACKENDS:
            if a == b:
                continue
            own, other = objects.get((a, a)), objects.get((a, b))
            name = f"{a} bundle inferred by {b}"
            if own is None or other is None or np.shape(own) != np.shape(other):
                checks.append(Check(name, "cross", f"{a} bundle", None, CROSS_REL_TOL, False,
                                    "reconstruction missing or on a different grid", b))
                continue
            checks.append(_at_most(name, "cross", f"{a} bundle", relative_error(other, own), CROSS_REL_TOL,
                                   f"‖O_{a}→{b} − O_{a}→{a}‖ / ‖O_{a}→{a}‖ (complex object)", b))
    return checks


def verdict(checks: list[Check]) -> bool:
    """All pass (and there is at least one check)."""
    return bool(checks) and all(c.passed for c in checks)
