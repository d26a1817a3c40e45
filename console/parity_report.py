"""Read a parity run's parity.json (layout: engine/parity/report.py) into rows the Parity screen shows.

A full run has ~30 checks; the screen shows one row per level while all of a level's checks pass (the worst one's
value and tolerance) and every failing check on its own row, so a failure is never hidden. Tolerant of missing or
reshaped parts (a report from an older or interrupted run still shows what it has).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.backends import BACKENDS  # the registry; imports no framework


@dataclass(frozen=True)
class ParityView:
    run_dir: str
    message: str = ""
    passed: bool | None = None
    checks: tuple[tuple[str, str, str, str, bool | None], ...] = ()  # level, name, value, tolerance, passed
    metrics: tuple[tuple[str, float | None, float | None], ...] = ()  # name, tf, torch
    runtimes: tuple[tuple[str, float | None, float | None], ...] = ()  # stage, tf, torch
    runtimes_reliable: bool | None = None  # False: other processes used the machine (engine/contention.py)
    runtime_note: str = ""  # e.g. "others used 0.9 of 2 cores"
    phases: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    amplitudes: tuple[np.ndarray | None, np.ndarray | None] = (None, None)


#: Metrics the screen shows when present (the level-3 compared ones); the rest are in parity.md.
METRICS_SHOWN = ("phase_ssim", "amplitude_ssim", "complex_nrmse", "phase_psnr", "amplitude_psnr", "final_train_loss")


def _level(c: dict) -> str:
    lv = c.get("level", "?")
    return "cross" if lv == "cross" else f"L{lv}"


def _ratio(c: dict) -> float:
    """How close a check came to its tolerance (a minimum-type check counts as 0 when it passed)."""
    v, t = _num(c.get("value")), _num(c.get("tolerance"))
    if v is None or t is None or "AT LEAST" in str(c.get("detail", "")):
        return 0.0
    return v / t if t else (0.0 if v == 0 else float("inf"))


def _short(text: str, width: int = 24) -> str:
    """Half the screen holds the checks table: keep its name column narrow enough for the numbers to show."""
    return text if len(text) <= width else text[:width - 1] + "…"


def _check_rows(raw: list[dict]) -> tuple[tuple[str, str, str, str, bool | None], ...]:
    """Failing checks one by one (name + backend); per level one summary row of the passing ones."""
    rows = []
    for level in dict.fromkeys(_level(c) for c in raw):
        group = [c for c in raw if _level(c) == level]
        ok = [c for c in group if c.get("passed") is True]
        for c in group:
            if c.get("passed") is not True:
                who = c.get("backend") or ""
                rows.append((level, _short(str(c.get("subject") or c.get("name", "?")) + (f" [{who}]" if who else "")),
                             _fmt(c.get("value")), _fmt(c.get("tolerance")),
                             c.get("passed") if isinstance(c.get("passed"), bool) else None))
        if ok:
            worst = max(ok, key=_ratio)
            what = f"{len(ok)} ok"
            rows.append((level, _short(f"{what}; worst {worst.get('subject') or worst.get('name')}"),
                         _fmt(worst.get("value")), _fmt(worst.get("tolerance")), True))
    return tuple(rows)


def _num(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _fmt(v) -> str:
    f = _num(v)
    return f"{f:.3g}" if f is not None else ("–" if v is None else str(v))


def _by_backend(block) -> dict[str, dict]:
    """Accept {backend: {name: x}} or {name: {backend: x}}; return {backend: {name: x}}."""
    if not isinstance(block, dict):
        return {}
    if any(b in block for b in BACKENDS):
        return {b: dict(block.get(b) or {}) for b in BACKENDS}
    out: dict[str, dict] = {b: {} for b in BACKENDS}
    for name, per in block.items():
        if isinstance(per, dict):
            for b in BACKENDS:
                out[b][name] = per.get(b)
    return out


def _recon(run_dir: Path, report: dict, backend: str):
    paths = report.get("reconstructions") or report.get("recons") or {}
    candidates = [paths.get(backend)] if isinstance(paths, dict) and paths.get(backend) else []
    candidates += [run_dir / backend / "recon.npz", run_dir / f"recon_{backend}.npz"]
    for c in candidates:
        p = Path(c) if Path(c).is_absolute() else run_dir / c
        if p.exists():
            try:
                with np.load(p, allow_pickle=False) as z:
                    if "object" in z.files:
                        obj = z["object"]
                        return np.abs(obj), np.angle(obj)
                    return (z["amplitude"] if "amplitude" in z.files else None), (z["phase"] if "phase" in z.files else None)
            except Exception:  # noqa: BLE001 - show the rest of the report
                return None, None
    return None, None


def load_parity(run_dir: str | Path) -> ParityView:
    run_dir = Path(run_dir)
    try:
        report = json.loads((run_dir / "parity.json").read_text())
    except (OSError, ValueError) as exc:
        return ParityView(str(run_dir), message=f"no readable parity.json in {run_dir.name} ({type(exc).__name__})")
    raw = [c for c in report.get("checks") or [] if isinstance(c, dict)]
    checks = _check_rows(raw)
    first, second = BACKENDS  # ParityView's tf, torch columns
    m = _by_backend(report.get("metrics"))
    names = list(dict.fromkeys([*m.get(first, {}), *m.get(second, {})]))
    shown = [n for n in METRICS_SHOWN if n in names]
    names = shown or names
    metrics = tuple((n, _num(m[first].get(n)), _num(m[second].get(n))) for n in names)
    r = _by_backend(report.get("runtimes"))
    stages = list(dict.fromkeys([*r.get(first, {}), *r.get(second, {})]))
    runtimes = tuple((s, _num(r[first].get(s)), _num(r[second].get(s))) for s in stages)
    (ta, tp), (pa, pp) = _recon(run_dir, report, first), _recon(run_dir, report, second)
    flags = [c.get("passed") for c in raw]
    passed = report.get("passed") if isinstance(report.get("passed"), bool) else (
        all(flags) if flags and all(isinstance(f, bool) for f in flags) else None)
    reliable, note = _contention(report.get("contention"))
    return ParityView(str(run_dir), "", passed, tuple(checks), metrics, runtimes, reliable, note, (tp, pp), (ta, pa))


def _contention(c) -> tuple[bool | None, str]:
    """(reliable, short note) from the report's contention record; (None, "") when it has none."""
    if not isinstance(c, dict) or not isinstance(c.get("reliable"), bool):
        return None, ""
    used, cores = _num(c.get("other_cores_max")), c.get("cores")
    note = f"others used {used:.1f} of {cores} cores" if used is not None else ""
    return c["reliable"], note


def latest_parity_dir(root: str | Path) -> str | None:
    found = sorted(Path(root).glob("*/parity.json"), key=lambda p: p.stat().st_mtime) if Path(root).is_dir() else []
    return str(found[-1].parent) if found else None


def parity_dir_to_show(opened: str | None, root: str | Path) -> str | None:
    """The run the Parity screen shows: the one opened (when it is a parity run), else the newest in the store."""
    if opened and (Path(opened) / "parity.json").exists():
        return opened
    return latest_parity_dir(root)
