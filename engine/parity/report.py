"""The parity report in the run directory: ``parity.json`` (every check), ``parity.md`` (for a human) and images.

parity.json layout (format 1; console/parity_report.py reads it)::

    {"format": 1, "passed": bool, "levels": [0, 1, 2, 3], "data": ..., "test": ..., "options": {...},
     "checks": [{"name", "level", "subject", "backend", "value", "tolerance", "passed", "detail"}, ...],
     "failures": ["level 0: fourier_shift (torch vs numpy oracle): 1.4 > 1e-05", ...],
     "metrics": {"tensorflow": {"phase_ssim": ...}, "torch": {...}},      # level 3 only
     "runtimes": {"tensorflow": {"train per epoch (s)": ...}, "torch": {...}},
     "reconstructions": {"tensorflow": "runs/<id>/recon.npz", "torch": ...},
     "runs": {"train tensorflow": "runs/<id>", ...}, "images": {"phase": "parity_phase.png", ...}}

Paths are relative to the parity run directory. Values that are not finite are written as strings ("nan").
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from engine.backends import BACKENDS, LABELS
from engine.jsonsafe import json_safe
from engine.parity.checks import Check

FORMAT = 1
LEVEL_TITLES = {0: "Level 0 — ops vs the numpy oracle", 1: "Level 1 — same weights, same network output",
                2: "Level 2 — one training step: gradients, optimiser rule, update", 3: "Level 3 — end to end (train, infer, evaluate)",
                "cross": "Cross-loading — each bundle in the other backend"}


def level_key(level) -> str:
    return "cross" if level == "cross" else f"level {level}"


def failure_line(c: Check) -> str:
    value = "missing" if c.value is None else f"{c.value:.3g}"
    op = "<" if c.detail.find("AT LEAST") >= 0 else ">"
    who = f" [{c.backend}]" if c.backend else ""
    return f"{level_key(c.level)}: {c.name}{who}: {value} {op} {c.tolerance:g}" + (f" ({c.detail})" if c.detail else "")


def _fmt(v, spec: str = ".4g") -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
        return format(float(v), spec)
    return "–" if v is None else str(v)


def _numbers(a, b) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float))


def _side_by_side(values: dict, backends: tuple[str, str], labels: tuple[str, str], columns: tuple[str, str],
                  spec: str, last) -> list[str]:
    """A markdown table (the metrics and the runtimes): per key the first backend measured, both backends' values
    (``spec``), then ``last(a, b)`` — their difference or ratio; ``columns`` name the key and that last column."""
    first, second = backends
    rows = [f"| {columns[0]} | {labels[0]} | {labels[1]} | {columns[1]} |", "|---|---|---|---|"]
    for key in values.get(first, {}):
        a, b = values[first].get(key), values[second].get(key)
        rows.append(f"| {key} | {_fmt(a, spec)} | {_fmt(b, spec)} | {last(a, b)} |")
    return rows + [""]


def contention_note(c: dict | None) -> str:
    """One sentence on how far to trust the runtimes (engine/contention.py); empty for reports without it."""
    if not isinstance(c, dict) or c.get("reliable") is None:
        return ""
    load = ", ".join(f"{x:g}" for x in c.get("load_average") or [])
    used = f"other processes used up to {c['other_cores_max']:.2f} of {c['cores']} cores while the children ran"
    if c["reliable"]:
        return f"Quiet machine: {used} (load average {load} at the end); the ratios can be compared."
    return (f"**Unreliable runtimes:** {used} (load average {load} at the end); the ratios say more about the "
            "machine than about the backends — measure again on a quiet machine.")


def build(opts, checks: list[Check], level3: dict | None, images: dict[str, str]) -> dict:
    from engine.parity.checks import verdict

    return {
        "format": FORMAT,
        "passed": verdict(checks),
        "levels": list(opts.levels),
        "data": opts.data,
        "test": opts.test,
        "options": {"epochs": opts.epochs, "gridsize": opts.gridsize, "seed": opts.seed,
                    "filters_scale": opts.filters_scale},
        "checks": [c.to_dict() for c in checks],
        "failures": [failure_line(c) for c in checks if not c.passed],
        "metrics": (level3 or {}).get("metrics", {}),
        "runtimes": (level3 or {}).get("runtimes", {}),
        "contention": (level3 or {}).get("contention"),
        "reconstructions": (level3 or {}).get("reconstructions", {}),
        "runs": (level3 or {}).get("runs", {}),
        "images": images,
    }


def write_json(path: Path, report: dict) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(json_safe(report), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------------------ markdown
def markdown(report: dict, run_id: str) -> str:
    ok = report["passed"]
    opts = report["options"]
    first, second = BACKENDS
    la, lb = LABELS[first], LABELS[second]
    lines = [f"# Parity report {run_id}", "",
             f"**Verdict: {'PASS — the two backends agree on every check' if ok else 'FAIL — out of tolerance'}** "
             f"({sum(c['passed'] for c in report['checks'])} of {len(report['checks'])} checks pass; exit code "
             f"{0 if ok else 3}).", "",
             "Pinnacle trains the same physics-informed network with TensorFlow/Keras or PyTorch/Lightning. This "
             "report checks that the two give the same answer, from single operations up to whole reconstructions. "
             "Each check compares a number with a fixed tolerance; docs/parity.md explains why each tolerance is "
             "what it is.", "",
             "## What was compared", "",
             f"- training data: `{report['data']}`; held-out scan: `{report['test']}`",
             f"- levels: {', '.join(str(x) for x in report['levels'])} (3 includes cross-loading); "
             f"epochs {opts['epochs']}, gridsize {opts['gridsize']}, seed {opts['seed']}, "
             f"filters scale {opts['filters_scale']}", ""]
    if report["failures"]:
        lines += ["## Failures", ""] + [f"- {f}" for f in report["failures"]] + [""]
    lines += ["## Checks", ""]
    by_level: dict[str, list[dict]] = {}
    for c in report["checks"]:
        by_level.setdefault(level_key(c["level"]), []).append(c)
    for level, title in LEVEL_TITLES.items():
        rows = by_level.get(level_key(level))
        if not rows:
            continue
        lines += [f"### {title}", "", "| check | value | tolerance | result | how |", "|---|---|---|---|---|"]
        for c in rows:
            lines.append(f"| {c['name']} | {_fmt(c['value'], '.3g')} | {c['tolerance']:g} | "
                         f"{'pass' if c['passed'] else '**FAIL**'} | {c['detail']} |")
        lines.append("")
    if report["metrics"]:
        lines += ["## Reconstruction metrics (held-out scan, each bundle in its own backend)", "",
                  "After removing the global phase offset and phase ramp, scaling amplitude by a least-squares "
                  "factor and registering sub-pixel shifts (docs/metrics.md); PSNR with peak 1, SSIM with phase "
                  "mapped to [0, 1], FRC50 as a resolution in pixels.", ""]
        lines += _side_by_side(report["metrics"], (first, second), (la, lb), ("metric", f"Δ ({lb} − {la})"), ".4g",
                               lambda a, b: _fmt(b - a if _numbers(a, b) else None, "+.3g"))
    if report["runtimes"]:
        lines += ["## Runtimes per stage (same machine, one after the other)", ""]
        lines += _side_by_side(report["runtimes"], (first, second), (la, lb), ("stage", f"{lb} / {la}"), ".3g",
                               lambda a, b: _fmt(b / a if _numbers(a, b) and a else None, ".2f"))
        lines += ["The first epoch includes building (TensorFlow: tracing) the training step; inference "
                      "throughput includes the model build.", ""]
        note = contention_note(report.get("contention"))
        if note:
            lines += [note, ""]
    if report["images"]:
        lines += ["## Images", "", "Each backend's reconstruction of the held-out scan and their difference "
                  "(TensorFlow − PyTorch; phase after removing the mean phase offset between the two).", ""]
        lines += [f"![{k}]({v})" for k, v in report["images"].items()] + [""]
    if report["runs"]:
        lines += ["## Child runs", ""] + [f"- {k}: `{v}`" for k, v in report["runs"].items()] + [""]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- images
def difference_images(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(covered mask, amplitude difference, phase difference) of two objects on the same grid; the phase
    difference is wrapped and has the mean offset between the two removed (a global phase is not physical)."""
    covered = (np.abs(a) > 0) & (np.abs(b) > 0)
    offset = np.angle(np.sum((a * np.conj(b))[covered])) if covered.any() else 0.0
    dphi = np.angle(a * np.conj(b) * np.exp(-1j * offset))
    return covered, np.where(covered, np.abs(a) - np.abs(b), 0.0), np.where(covered, dphi, 0.0)


def write_images(directory: Path, objects: dict[str, np.ndarray]) -> dict[str, str]:
    """``parity_amplitude.png`` and ``parity_phase.png``: TensorFlow, PyTorch, difference side by side (display
    ranges: the 1st–99th percentile of both objects' covered pixels, shared, so the two are directly comparable)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    first, second = BACKENDS
    a, b = objects[first], objects[second]
    covered, damp, dphi = difference_images(a, b)
    offset = np.angle(np.sum((a * np.conj(b))[covered])) if covered.any() else 0.0
    out = {}
    for part in ("amplitude", "phase"):
        fig = Figure(figsize=(13, 4.2), dpi=90, layout="constrained")
        axes = fig.subplots(1, 3)
        if part == "amplitude":
            vals = np.concatenate([np.abs(a)[covered], np.abs(b)[covered]]) if covered.any() else np.zeros(1)
            lo, hi = np.percentile(vals, [1, 99])
            imgs = [(np.abs(a), "viridis", lo, hi), (np.abs(b), "viridis", lo, hi)]
            diff = damp
        else:  # on the objects' own range: a weak phase on [-π, π] would look flat
            pb = np.angle(b * np.exp(1j * offset))  # PyTorch's phase with the global offset matched to TF's
            vals = np.concatenate([np.angle(a)[covered], pb[covered]]) if covered.any() else np.zeros(1)
            lo, hi = np.percentile(vals, [1, 99])
            imgs = [(np.where(covered, np.angle(a), np.nan), "cividis", lo, hi),
                    (np.where(covered, pb, np.nan), "cividis", lo, hi)]
            diff = dphi
        lim = float(np.abs(diff).max()) or 1e-12
        imgs.append((diff, "RdBu_r", -lim, lim))
        titles = [f"{LABELS[first]} {part}",
                  f"{LABELS[second]} {part}" + (f" (offset {offset:+.2f} rad matched)" if part == "phase" else ""),
                  f"difference (max |Δ| {lim:.2g}{' rad' if part == 'phase' else ''})"]
        for ax, (img, cmap, vmin, vmax), title in zip(axes, imgs, titles):
            im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("x (px)")
            fig.colorbar(im, ax=ax, shrink=0.85)
        path = directory / f"parity_{part}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp)
        tmp.replace(path)
        out[part] = path.name
    return out
