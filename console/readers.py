"""What the console reads from disk: datasets, the run store, a run's results, bundles and held-out previews.

Pure functions over files, numpy only, no UI. Runs are read through ``engine.runstore`` (the record documented in
docs/protocol.md §2, status resolved from the writer lock), datasets through ``engine.dataset``. Every missing or
unreadable piece degrades to a message the operator can act on; nothing here raises for a bad file.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from console.commands.runs import duration as record_duration
from console.commands.runs import key_metric as record_key_metric
from engine.events import CANCELLED, FAILED, INTERRUPTED, OK, RUNNING

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


# ---- datasets --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetInfo:
    path: str
    error: str | None = None
    summary: tuple[tuple[str, str], ...] = ()
    diffraction: np.ndarray | None = None  # one pattern (intensity, log-scaled for display)
    probe: np.ndarray | None = None  # complex
    positions: np.ndarray | None = None  # (M, 2) x, y
    object: np.ndarray | None = None  # ground truth (complex), if present


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
        known = {f.resolve() for f in found}
        found += [p for p in _scans(Path(folder)) if p.resolve() not in known]
    return found


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return " × ".join(map(str, v))
    if v is None:
        return "–"
    return str(v)


def inspect_dataset(path: str | Path) -> DatasetInfo:
    """Validate and summarise one dataset (engine.dataset); an invalid file gives its one-line message."""
    from engine.dataset import load_dataset, summarize

    path = str(path)
    try:
        ds = load_dataset(path)
        s = summarize(ds)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the message the operator reads
        msg = exc.one_line() if hasattr(exc, "one_line") else (str(exc) or type(exc).__name__)
        if path not in msg:
            msg = f"{path}: expected a scan file: NPZ, CXI or Ptychodus HDF5 ({msg})"
        return DatasetInfo(path, error=msg)
    summary = {"patterns": s["M"], "N": s["N"], "nphotons": s["nphotons"], "scan step": s["scan_step"],
               "probe": "yes" if s["has_probe"] else "no",
               "ground truth": "×".join(map(str, s["object_shape"])) if s["has_truth"] else "no",
               "fingerprint": str(s["fingerprint"])[:12]}
    d = np.asarray(ds.diffraction)
    centre = d[len(d) // 2] if d.ndim == 3 and len(d) else None
    return DatasetInfo(
        path, summary=tuple((k, _fmt(v)) for k, v in summary.items()),
        diffraction=None if centre is None else np.log1p(centre.astype(np.float64) ** 2),
        probe=None if ds.probe is None else np.asarray(ds.probe),
        positions=np.asarray(ds.positions, dtype=np.float64),
        object=None if ds.object is None else np.asarray(ds.object),
    )


def read_truth(path: str | Path) -> np.ndarray | None:
    """The true object (objectGuess) of a scan file, or None (no file, no truth, unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["objectGuess"]) if "objectGuess" in z.files else None
    except (OSError, ValueError, KeyError, EOFError):
        return None
    except Exception:  # noqa: BLE001 - a corrupt zip raises zipfile.BadZipFile
        return None


# ---- the run store ---------------------------------------------------------------------------------------------

def _when(v) -> float | None:
    """Epoch seconds from run.json's ISO-8601 times."""
    if not isinstance(v, str):
        return None
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class RunRecord:
    """One run of the store, from its run.json (docs/protocol.md §2), status resolved by the run store."""

    run_id: str
    run_dir: str
    status: str
    kind: str
    backend: str
    dataset: str  # the data file's name
    created: float | None
    duration: float | None
    key_metric: tuple[str, float] | None
    error: tuple[str, str] | None  # (kind, message) of a failed or cancelled run
    pid: int | None
    stage: str | None
    epochs: int | None  # last finished epoch (training runs)
    planned_epochs: int | None
    config: dict = field(default_factory=dict, compare=False, repr=False)
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def live(self) -> bool:
        return self.status == RUNNING

    @property
    def cause(self) -> str | None:
        return f"{self.error[0]}: {self.error[1]}" if self.error else None


def run_record(record: dict) -> RunRecord:
    """A run.json record (as RunStore.list/get return it, with ``dir``) → RunRecord."""
    dataset = record.get("dataset") if isinstance(record.get("dataset"), dict) else {}
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    km = record_key_metric(record)
    err = record.get("error") if isinstance(record.get("error"), dict) else None
    last = record.get("last_epoch") if isinstance(record.get("last_epoch"), dict) else {}
    training = config.get("training") if isinstance(config.get("training"), dict) else {}
    planned = training.get("epochs", config.get("epochs"))
    pid = record.get("pid")
    return RunRecord(
        run_id=str(record.get("run_id") or Path(str(record.get("dir", ""))).name),
        run_dir=str(record.get("dir") or ""), status=str(record.get("status") or "?"),
        kind=str(record.get("kind") or "?"), backend=str(record.get("backend") or "–"),
        dataset=Path(str(dataset.get("path") or "")).name, created=_when(record.get("created")),
        duration=record_duration(record),
        key_metric=(km[0], float(km[1])) if km and isinstance(km[1], (int, float)) else None,
        error=(str(err.get("kind", "error")), str(err.get("message", ""))) if err else None,
        pid=pid if isinstance(pid, int) else None, stage=record.get("stage"),
        epochs=last.get("epoch") if isinstance(last.get("epoch"), int) else None,
        planned_epochs=planned if isinstance(planned, int) else None, config=config, raw=record,
    )


def list_runs(root: str | Path) -> list[RunRecord]:
    """Runs of the store, newest first (a broken store lists nothing rather than taking the console down)."""
    from engine.runstore import RunStore

    try:
        items = RunStore(root).list()
    except Exception:  # noqa: BLE001
        items = []
    recs = [run_record(d) for d in items if isinstance(d, dict)]
    return sorted(recs, key=lambda r: (r.created or 0.0, r.run_id), reverse=True)


def read_run(run_dir: str | Path) -> RunRecord | None:
    """One run's record (status resolved), or None when its run.json is missing or unreadable."""
    from engine.runstore import RunStore

    run_dir = Path(run_dir)
    try:
        return run_record(RunStore(run_dir.parent).get(run_dir.name))
    except Exception:  # noqa: BLE001 - InputError for a missing or unreadable run.json
        return None


def writer_alive(run_dir: str | Path) -> bool:
    """True while a live process holds the run's writer lock (the run store's own test of liveness)."""
    from engine.runstore import lock_is_held

    return lock_is_held(Path(run_dir))


@dataclass(frozen=True)
class BundleInfo:
    """A trained model bundle in the run store, with what an operator picks it by."""

    run_id: str
    path: str  # the bundle directory
    backend: str
    dataset: str
    epochs: int | None
    metric: tuple[str, float] | None  # held-out phase SSIM when the run was scored


def list_bundles(root: str | Path) -> list[BundleInfo]:
    """Bundles of finished training runs (newest first): those whose bundle/manifest.json exists."""
    out = []
    for rec in list_runs(root):
        bundle = Path(rec.run_dir) / "bundle"
        if rec.kind != "train" or rec.status not in (OK, CANCELLED) or not (bundle / "manifest.json").is_file():
            continue
        metrics = rec.raw.get("metrics") if isinstance(rec.raw.get("metrics"), dict) else {}
        metric = None
        for name in ("phase_ssim", "heldout_phase_ssim", "val_loss", "train_loss"):
            if isinstance(metrics.get(name), (int, float)):
                metric = (name, float(metrics[name]))
                break
        out.append(BundleInfo(rec.run_id, str(bundle), rec.backend, rec.dataset, rec.epochs, metric))
    return out


# ---- results of one run ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ObjectResult:
    """One reconstruction of a run (the PINN's, or the refined one) with its metrics."""

    label: str
    object: np.ndarray
    origin: tuple[int, int]
    metrics: dict
    method: str = ""


@dataclass(frozen=True)
class RunResults:
    run_dir: str
    record: RunRecord | None = None
    objects: tuple[ObjectResult, ...] = ()
    truth: np.ndarray | None = None  # ground truth on the recon grid
    scan: str = ""  # the reconstructed scan (from recon.npz)
    region: tuple[int, int, int, int] | None = None  # metric region (y0, y1, x0, x1) on the recon grid
    notes: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()

    @property
    def final(self) -> ObjectResult | None:
        return self.objects[-1] if self.objects else None


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _load_recon(path: Path) -> tuple[np.ndarray, tuple[int, int], dict] | str:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "object" in z.files:
                obj = np.asarray(z["object"])
            else:
                obj = np.asarray(z["amplitude"]) * np.exp(1j * np.asarray(z["phase"]))
            origin = (int(z["origin_x"]) if "origin_x" in z.files else 0, int(z["origin_y"]) if "origin_y" in z.files else 0)
            meta = {k: z[k].item() for k in ("method", "data", "backend") if k in z.files and z[k].shape == ()}
        return obj, origin, meta
    except Exception as exc:  # noqa: BLE001 - shown as a note
        return f"{path.name} unreadable ({type(exc).__name__}: {exc})"


def _truth_on_grid(scan: str, obj: np.ndarray, origin: tuple[int, int], run_dir: Path) -> tuple[np.ndarray | None, str]:
    """The scan's true object cut to the recon grid, or (None, why not)."""
    if not scan:
        return None, ""
    candidates = [Path(scan)] if Path(scan).is_absolute() else [Path(scan), run_dir / scan]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return None, f"ground truth: scan {scan} not found from here"
    truth = read_truth(path)
    if truth is None:
        return None, ""
    x0, y0 = origin
    h, w = obj.shape
    if x0 < 0 or y0 < 0 or y0 + h > truth.shape[0] or x0 + w > truth.shape[1]:
        return None, "ground truth: the reconstruction grid lies outside the true object"
    return truth[y0:y0 + h, x0:x0 + w], ""


def load_results(run_dir: str | Path) -> RunResults:
    """recon.npz (and recon_pinn.npz of a hybrid run, recon_hybrid.npz of a training run's held-out refinement),
    metrics.json (and metrics_pinn.json / metrics_hybrid.json), the scan's ground truth, the run's record; what is
    missing becomes a note that says why."""
    run_dir = Path(run_dir)
    record = read_run(run_dir)
    notes: list[str] = []
    objects: list[ObjectResult] = []
    scan, truth, region = "", None, None
    for fname, mname, label in (("recon_pinn.npz", "metrics_pinn.json", "PINN"), ("recon.npz", "metrics.json", ""),
                                ("recon_hybrid.npz", "metrics_hybrid.json", "hybrid")):  # train --test-refine
        path = run_dir / fname
        if not path.exists():
            continue
        loaded = _load_recon(path)
        if isinstance(loaded, str):
            notes.append(loaded)
            continue
        obj, origin, meta = loaded
        method = str(meta.get("method") or (record.config.get("method") if record else "") or "")
        name = label or {"iterative": "iterative", "hybrid": "hybrid", "pinn": "PINN"}.get(method, "PINN")
        metrics = _read_json(run_dir / mname) or {}
        objects.append(ObjectResult(name, obj, origin, metrics, method))
        scan = scan or str(meta.get("data") or "")
        if region is None and isinstance(metrics.get("region"), list) and len(metrics["region"]) == 4:
            y0, y1, x0, x1 = (int(v) for v in metrics["region"])
            region = (y0 - origin[1], y1 - origin[1], x0 - origin[0], x1 - origin[0])
    if objects:
        truth, why = _truth_on_grid(scan, objects[-1].object, objects[-1].origin, run_dir)
        if why:
            notes.append(why)
    arts = tuple(sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())) \
        if run_dir.is_dir() else ()
    return RunResults(str(run_dir), record, tuple(objects), truth, scan, region, tuple(notes), arts)


def why_no_reconstruction(record: RunRecord | None, stage: str | None = None) -> str:
    """What to tell the operator when a run has no recon.npz."""
    if record is None:
        return "no run.json here: not a run directory"
    if record.status == FAILED:
        return "nothing was reconstructed: the run failed first" + ("" if record.cause else " (no error recorded)")
    if record.status == INTERRUPTED:
        return "the run was interrupted (its writer died) before it reconstructed anything"
    if record.status == CANCELLED:
        return "the run was cancelled before it reconstructed anything"
    if record.live:
        return f"no reconstruction yet (stage: {record.stage or stage or '?'})"
    if record.kind == "train":
        return "this run trained a bundle without a held-out scan, so nothing was reconstructed: reconstruct " \
               "with its bundle from Launch (l)"
    if record.kind == "parity":
        return "a parity run: open it on the Parity screen (p)"
    return "no recon.npz in this run"


def metric_rows(objects: tuple[ObjectResult, ...], compact: bool = False) -> list[tuple[str, list[str]]]:
    """(metric, one value per object) for the metrics table; empty when no object was scored. ``compact``: the
    four that matter most (a short terminal has no room for all)."""
    shown = (("phase", "ssim", "phase SSIM"), ("amplitude", "ssim", "amplitude SSIM"), ("phase", "psnr", "phase PSNR dB"),
             ("amplitude", "psnr", "amplitude PSNR dB"), ("phase", "mae", "phase MAE rad"),
             ("amplitude", "mae", "amplitude MAE"), ("phase", "frc50_px", "phase FRC50 px"))
    if compact:
        shown = tuple(s for s in shown if s[2] in ("phase SSIM", "amplitude SSIM", "phase PSNR dB", "phase FRC50 px"))
    rows = []
    for part, key, label in shown:
        values = [(o.metrics.get(part) or {}).get(key) if isinstance(o.metrics.get(part), dict) else None for o in objects]
        if any(isinstance(v, (int, float)) for v in values):
            rows.append((label, [f"{v:.4g}" if isinstance(v, (int, float)) else "–" for v in values]))
    for key in ("complex_nrmse", "nrmse"):
        values = [o.metrics.get(key) for o in objects]
        if any(isinstance(v, (int, float)) for v in values):
            rows.append(("complex NRMSE", [f"{v:.4g}" if isinstance(v, (int, float)) else "–" for v in values]))
    return rows


# ---- held-out previews -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Preview:
    epoch: int
    amplitude: np.ndarray
    phase: np.ndarray
    metrics: dict


def load_preview(path: str | Path) -> Preview | None:
    """A held-out preview NPZ (float32 amplitude, phase with its offset removed, int epoch, float metrics)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            amp, ph = np.asarray(z["amplitude"], np.float64), np.asarray(z["phase"], np.float64)
            epoch = int(z["epoch"]) if "epoch" in z.files else 0
            metrics = {k: float(z[k]) for k in z.files
                       if k not in ("amplitude", "phase", "epoch") and z[k].shape == () and z[k].dtype.kind in "fi"}
    except Exception:  # noqa: BLE001 - a preview being written or gone: keep the previous one
        return None
    if amp.ndim != 2 or amp.shape != ph.shape:
        return None
    return Preview(epoch, amp, ph, metrics)


def read_events(path: str | Path, offset: int = 0) -> tuple[list[str], int]:
    """Complete lines of an events.jsonl from byte ``offset``; returns (lines, new offset). A line still being
    written (no newline yet) is left for the next read."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    chunk = data[:end + 1]
    return [ln.decode("utf-8", "replace") for ln in chunk.split(b"\n") if ln.strip()], offset + len(chunk)


def failure_context(run_dir: str | Path, tail_bytes: int = 1 << 16) -> tuple[str, ...]:
    """The last lines a run left in its events.jsonl: the failing frame of its traceback, else its last log lines
    (folded by the same reducer as a live run; only the file's tail is read)."""
    from engine.events import parse_line
    from engine.runstore import EVENTS_JSONL

    from console.state import RunView, reduce_batch

    path = Path(run_dir) / EVENTS_JSONL
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - tail_bytes))
            data = fh.read()
    except OSError:
        return ()
    lines = data.split(b"\n")[1 if len(data) >= tail_bytes else 0:]  # the first may be cut
    view = reduce_batch(RunView("tail"), [parse_line(ln.decode("utf-8", "replace")) for ln in lines if ln.strip()])
    return tuple(ln.strip() for ln in (view.traceback_tail[-2:] or view.last_output[-2:]))


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
