"""What the console shows about datasets and finished runs: pure functions, numpy only, no UI.

The engine's ``engine.dataset`` and ``engine.runstore`` are used when present; until then (and for files they do
not cover) a minimal reader of the data contract keeps the console useful. Everything degrades to a message.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@dataclass(frozen=True)
class DatasetInfo:
    path: str
    error: str | None = None
    summary: tuple[tuple[str, str], ...] = ()
    diffraction: np.ndarray | None = None  # one pattern (amplitude, log-scaled for display)
    probe: np.ndarray | None = None  # complex
    positions: np.ndarray | None = None  # (M, 2) x, y
    amplitude: np.ndarray | None = None  # ground truth, if present
    phase: np.ndarray | None = None


#: Scan files the browser lists: NPZ, CXI and HDF5 (Ptychodus' diffraction.h5); product files are results, not scans.
DATASET_SUFFIXES = (".npz", ".cxi", ".h5", ".hdf5")


def _scans(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in DATASET_SUFFIXES and p.is_file()
                  and not p.name.startswith("product."))


def list_datasets(folder: str | None, fixtures: Path = FIXTURES) -> list[Path]:
    """Bundled fixtures first, then the scan files (.npz, .cxi, .h5, .hdf5) of the chosen folder."""
    fixtures = Path(fixtures)
    found = sorted(fixtures.glob("*.npz")) if fixtures.is_dir() else []
    if folder and Path(folder).is_dir():
        found += [p for p in _scans(Path(folder)) if p.resolve() not in {f.resolve() for f in found}]
    return found


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return " × ".join(map(str, v))
    return str(v)


def _load(path: str):
    """-> (arrays dict, summary dict) via engine.dataset when it exists; InputError/ValueError on bad files."""
    try:
        from engine.dataset import load_dataset, summarize
    except ImportError:
        load_dataset = summarize = None
    if load_dataset is not None:
        ds = load_dataset(path)
        arrays = {k: getattr(ds, k, None) for k in ("diffraction", "probe", "positions", "object")}
        s = summarize(ds)
        summary = {"patterns": s.get("M"), "N": s.get("N"), "positions": len(ds.positions), "nphotons": s.get("nphotons"),
                   "scan step": s.get("scan_step"), "probe": s.get("has_probe"), "ground truth": s.get("has_truth"),
                   "fingerprint": str(s.get("fingerprint", ""))[:12]}
        return arrays, summary
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("diffraction", "probe", "positions") if k not in z.files]
        if missing:
            raise ValueError(f"{path}: {missing[0]}: expected an array (data contract key missing)")
        arrays = {k: z[k] for k in ("diffraction", "probe", "positions", "object") if k in z.files}
    d = arrays["diffraction"]
    if d.ndim != 3 or d.shape[1] != d.shape[2]:
        raise ValueError(f"{path}: diffraction: expected (M, N, N) amplitudes, got shape {d.shape}")
    summary = {"patterns": d.shape[0], "N": d.shape[1], "positions": len(arrays["positions"]),
               "nphotons": float((d.astype(np.float64) ** 2).sum(axis=(1, 2)).mean()), "ground_truth": "object" in arrays}
    return arrays, summary


def inspect_dataset(path: str | Path) -> DatasetInfo:
    """Validate and summarise one dataset; an invalid file gives its one-line validation message."""
    path = str(path)
    try:
        arrays, summary = _load(path)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the message the operator reads
        msg = exc.one_line() if hasattr(exc, "one_line") else (str(exc) or type(exc).__name__)
        if path not in msg:
            msg = f"{path}: expected a scan file: NPZ, CXI or Ptychodus HDF5 ({msg})"
        return DatasetInfo(path, error=msg)
    d = np.asarray(arrays["diffraction"])
    centre = d[len(d) // 2] if d.ndim == 3 and len(d) else None
    obj = arrays.get("object")
    return DatasetInfo(
        path, summary=tuple((str(k), _fmt(v)) for k, v in summary.items()),
        diffraction=None if centre is None else np.log1p(centre.astype(np.float64) ** 2),
        probe=None if arrays.get("probe") is None else np.asarray(arrays["probe"]),
        positions=None if arrays.get("positions") is None else np.asarray(arrays["positions"], dtype=np.float64),
        amplitude=None if obj is None else np.abs(obj), phase=None if obj is None else np.angle(obj),
    )


def scatter_image(positions: np.ndarray, size: int = 64) -> np.ndarray:
    """Scan positions as a 2-D histogram ([y, x], equal axes) so the image widget can draw them."""
    xy = np.asarray(positions, dtype=np.float64)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = float(max(hi - lo)) or 1.0
    idx = np.clip(((xy - lo) / span * (size - 1)).round().astype(int), 0, size - 1)
    img = np.zeros((size, size))
    np.add.at(img, (idx[:, 1], idx[:, 0]), 1.0)
    return img


# ---- runs on disk ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunRecord:
    """One row of the history: what run.json says, normalised, with the run directory."""

    run_id: str
    run_dir: str
    status: str = "?"
    kind: str = "?"
    backend: str = "?"
    dataset: str = ""
    started: float | None = None
    duration: float | None = None
    key_metric: tuple[str, float] | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _when(v) -> float | None:
    """Epoch seconds from a number or an ISO-8601 string (run.json writes ISO)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        import datetime as dt

        try:
            return dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _record(d: dict, run_dir: Path) -> RunRecord:
    timings = d.get("timings") if isinstance(d.get("timings"), dict) else {}
    duration = d.get("duration_s", d.get("duration", timings.get("total_s", timings.get("total"))))
    started, finished = _when(d.get("started", d.get("created"))), _when(d.get("finished"))
    if duration is None and started is not None and finished is not None:
        duration = finished - started
    metrics = d.get("metrics") if isinstance(d.get("metrics"), dict) and d["metrics"] else _read_json(run_dir / "metrics.json") or {}
    key = None
    km = d.get("key_metric")
    if isinstance(km, dict) and isinstance(km.get("value"), (int, float)):
        key = (str(km.get("name", "metric")), float(km["value"]))
    for name in ("phase_ssim", "ssim_phase", "amplitude_ssim", "ssim", "val_loss", "train_loss"):
        if key is None and isinstance(metrics.get(name), (int, float)):
            key = (name, float(metrics[name]))
    ds = d.get("dataset") or d.get("data") or ""
    if isinstance(ds, dict):
        ds = ds.get("path") or ds.get("name") or ds.get("sha256", "")[:12]
    config = d.get("config") if isinstance(d.get("config"), dict) else {}
    backend = d.get("backend") or config.get("backend")
    return RunRecord(
        run_id=str(d.get("run_id") or run_dir.name), run_dir=str(run_dir), status=str(d.get("status", "?")),
        kind=str(d.get("kind") or d.get("command") or "?"), backend=str(backend or "?"), dataset=Path(str(ds)).name,
        started=started,
        duration=float(duration) if isinstance(duration, (int, float)) else None, key_metric=key, raw=d,
    )


def list_runs(root: str | Path) -> list[RunRecord]:
    """Runs of the store, newest first; engine.runstore when present, else run.json files under root."""
    root = Path(root)
    try:
        from engine.runstore import RunStore
    except ImportError:
        RunStore = None
    if RunStore is not None:
        try:
            items = RunStore(root).list()
        except Exception:  # noqa: BLE001 - a broken store must not take the console down
            items = []
        recs = [_record(d, Path(d.get("dir") or d.get("run_dir") or root / str(d.get("run_id", ""))))
                for d in items if isinstance(d, dict)]
    else:
        recs = []
        for rj in sorted(root.glob("*/run.json")) if root.is_dir() else []:
            d = _read_json(rj)
            if d is not None:
                recs.append(_record(d, rj.parent))
    return sorted(recs, key=lambda r: (r.started or 0.0, r.run_id), reverse=True)


@dataclass(frozen=True)
class RunResults:
    run_dir: str
    amplitude: np.ndarray | None = None
    phase: np.ndarray | None = None
    metrics: tuple[tuple[str, str], ...] = ()
    artifacts: tuple[str, ...] = ()
    message: str = ""


def load_results(run_dir: str | Path) -> RunResults:
    """recon.npz images, metrics.json numbers and the list of artifacts; missing pieces are simply absent."""
    run_dir = Path(run_dir)
    amp = ph = None
    notes = []
    recon = run_dir / "recon.npz"
    if recon.exists():
        try:
            with np.load(recon, allow_pickle=False) as z:
                if "amplitude" in z.files:
                    amp = z["amplitude"]
                if "phase" in z.files:
                    ph = z["phase"]
                if (amp is None or ph is None) and "object" in z.files:
                    obj = z["object"]
                    amp = np.abs(obj) if amp is None else amp
                    ph = np.angle(obj) if ph is None else ph
        except Exception as exc:  # noqa: BLE001
            notes.append(f"recon.npz unreadable: {exc}")
    else:
        notes.append("no recon.npz in this run")
    metrics = _read_json(run_dir / "metrics.json") or {}
    flat = []
    for k, v in metrics.items():
        if isinstance(v, dict):
            flat += [(f"{k}.{k2}", v2) for k2, v2 in v.items() if not isinstance(v2, (dict, list))]
        elif not isinstance(v, list):
            flat.append((k, v))
    arts = tuple(sorted(str(p) for p in run_dir.rglob("*") if p.is_file())) if run_dir.is_dir() else ()
    return RunResults(str(run_dir), amp, ph, tuple((k, _fmt(v)) for k, v in flat), arts, "; ".join(notes))
