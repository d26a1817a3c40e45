"""Time-to-quality of `iterative` and `hybrid` reconstruction, each backend, at 1e9 and 1e5 photons (docs/refinement.md).

    python benchmarks/bench_reconstruct.py [--data-dir DIR] [--bundle-1e9 B] [--bundle-1e5 B] [--epochs E]
        [--backends tensorflow,torch] [--doses 1e9,1e5] [--methods iterative,hybrid] [--ptychi-python PY]

The benchmark scans are simulated with `pinnacle simulate` (as TARGETS.md describes: band-limited "lines" object
232², disk probe, N 64, random positions; a 1024-position training scan and a separate 256-position held-out scan
of another object) into --data-dir, once. `hybrid` needs a bundle per dose: given with --bundle-*, else trained with
the CLI defaults on the training scan (TensorFlow) and reused from --data-dir afterwards.

Each (backend, method, dose) runs in its own child process (one framework per process). The child refines and, at
chosen epochs, copies the object out; metrics (engine.metrics.evaluate: complex FRC50 and NRMSE, phase and
amplitude SSIM) are computed after the run, outside the timed loop. Seconds are refinement seconds (the engine's
own epoch times, the first included); `hybrid` adds the network's inference and stitching. Each run refines with
the settings `pinnacle reconstruct` would choose for the scan's dose (engine.refine.for_dose: rPIE's β and the
low-frequency phase momentum) and prints its epoch times: the first (compilation, first calls) apart from the
median of the rest, compared across backends. With --ptychi-python, pty-chi's LSQML runs on the same scan in the
same benchmark (benchmarks/ptychi_lsqml.py in the Python given by --ptychi-python, an environment of its own:
scripts/ptychi_env.sh) and its curve is printed beside ours.
Prints the curves, the TARGETS figures and the load average; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SNAPSHOTS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50, 60, 70, 80, 100, 150, 200)
SCANS = {"train": ("1024", "11"), "test": ("256", "12")}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f}"


def pinnacle(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pinnacle {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def tag(dose: str, defocus: float) -> str:
    """File-name tag of a dose's scans: the issue's scans (defocus 0) keep the plain name."""
    return dose if not defocus else f"{dose}_defocus{defocus:g}"


def scans(data_dir: Path, dose: str, defocus: float = 0.0) -> dict[str, Path]:
    out = {}
    for kind, (positions, seed) in SCANS.items():
        path = data_dir / f"{kind}_{tag(dose, defocus)}.npz"
        if not path.exists():
            pinnacle("simulate", str(path), "--object", "lines", "--probe", "disk", "--scan", "random",
                     "--positions", positions, "--size", "232", "--seed", seed, "--nphotons", dose,
                     "--defocus", f"{defocus:g}")
        out[kind] = path
    return out


def bundle_for(data_dir: Path, dose: str, train: Path, given: str | None, defocus: float = 0.0) -> Path:
    if given:
        return Path(given)
    runs = data_dir / f"runs_{tag(dose, defocus)}"
    found = sorted(runs.glob("*-train/bundle/manifest.json")) if runs.is_dir() else []
    if found:
        return found[-1].parent
    print(f"training a bundle on {train.name} with the CLI defaults ({load()}) ...", flush=True)
    t0 = time.perf_counter()
    pinnacle("train", str(train), "--runs", str(runs), "--no-progress")
    print(f"  trained in {time.perf_counter() - t0:.0f} s", flush=True)
    return sorted(runs.glob("*-train/bundle/manifest.json"))[-1].parent


# ---------------------------------------------------------------------------------------------------- child
def child(backend: str, method: str, data: str, bundle: str | None, epochs: int, out: str) -> None:
    """Refine in this process and write snapshots (objects at SNAPSHOTS epochs, with cumulative seconds)."""
    from engine import refine as R
    from engine.backends import load_backend
    from engine.dataset import load_dataset
    from engine.pipeline import stitch_grid
    from engine.scaling import compute_scales

    module = load_backend(backend)
    ds = load_dataset(data)
    # β and the low-frequency phase momentum as `pinnacle reconstruct` chooses them (engine.refine.for_dose)
    cfg = R.for_dose(R.RefineConfig(epochs=epochs), ds.measured)
    start_seconds, start_obj, weight = 0.0, None, None
    shape, origin = stitch_grid(ds)
    if method == "hybrid":
        from engine.bundle import load_bundle
        from engine.reconstruction import pinn_reconstruction

        class _Job:  # what pinn_reconstruction reports to; the benchmark only times it
            cancelled = False

            def stage(self, *a, **k): pass
            def progress(self, *a, **k): pass
            def log(self, *a, **k): pass
            def check_cancel(self): pass

        b = load_bundle(bundle)
        t0 = time.perf_counter()
        rec = pinn_reconstruction(_Job(), b, ds, module, b.run_config.inference.batch_size)
        start_seconds = time.perf_counter() - t0
        # the same start as `pinnacle reconstruct --method hybrid` (engine/refine.py hybrid_start)
        start_obj, _ = R.hybrid_start(rec.object, ds.probe, b.run_config.model.gridsize)
        weight, shape, origin = rec.weight, rec.object.shape, rec.origin
    s = compute_scales(ds.measured, ds.probe).photon_scale
    problem = R.make_problem(ds.measured ** 2, ds.positions, ds.probe * np.float32(s), shape, origin, cfg.margin,
                             valid=ds.valid)
    first = R.start_object(shape, cfg.margin, start_obj, weight)
    snaps = {"epoch": [0], "seconds": [start_seconds], "objects": [R.crop_object(first, cfg.margin)]}
    epoch_seconds: list[float] = []

    class Hooks:
        elapsed = start_seconds

        def on_start(self, e, p): pass
        def on_batch_end(self, e, d, loss): pass
        def should_stop(self): return False

        def on_epoch_end(self, epoch, loss, seconds, rate, state):
            self.elapsed += seconds
            epoch_seconds.append(seconds)
            if epoch + 1 in SNAPSHOTS or epoch + 1 == epochs:
                snaps["epoch"].append(epoch + 1)
                snaps["seconds"].append(self.elapsed)
                snaps["objects"].append(R.crop_object(state().object, cfg.margin))

    module.refine(problem, R.RefineState(first, (ds.probe * np.float32(s)).astype(np.complex64)), cfg, Hooks())
    np.savez(out, epoch=np.array(snaps["epoch"]), seconds=np.array(snaps["seconds"]),
             objects=np.stack(snaps["objects"]), origin=np.array(origin), epoch_seconds=np.array(epoch_seconds),
             regularization=np.array(cfg.regularization))


# --------------------------------------------------------------------------------------------------- parent
def curve(path: Path, truth_data: Path) -> list[dict]:
    from engine.dataset import load_dataset
    from engine.metrics import evaluate

    ds = load_dataset(truth_data)
    rows = []
    with np.load(path) as z:
        origin = tuple(int(v) for v in z["origin"])
        for epoch, seconds, obj in zip(z["epoch"], z["seconds"], z["objects"]):
            # with the scan's probe, as every job evaluates: only the pixels a pattern lit count (docs/metrics.md)
            m = evaluate(obj, origin, ds.object, ds.positions, ds.N, ds.probe)
            rows.append({"epoch": int(epoch), "seconds": float(seconds), "frc50": m["complex"]["frc50_crossing"],
                         "nrmse": m["complex"]["nrmse"], "phase_ssim": m["phase"]["ssim"],
                         "amplitude_ssim": m["amplitude"]["ssim"]})
    return rows


def speed(path: Path) -> dict | None:
    """A child's refinement speed: its first epoch (compilation, first calls) apart from the median of the rest,
    and its rPIE β; None for a run that does not record them (pty-chi)."""
    with np.load(path) as z:
        if "epoch_seconds" not in z:
            return None
        sec = z["epoch_seconds"]
        return {"first": float(sec[0]), "median": float(np.median(sec[1:])) if len(sec) > 1 else float(sec[0]),
                "total": float(sec.sum()), "beta": float(z["regularization"])}


def run_child(args: list[str], out: Path) -> None:
    proc = subprocess.run([sys.executable, __file__, "--child", *args, "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stderr[-3000:]}")


def run_ptychi(python: str, data: Path, epochs: int, out: Path) -> None:
    """pty-chi LSQML (benchmarks/ptychi_lsqml.py) in its own environment: the same snapshot file format."""
    proc = subprocess.run([python, str(ROOT / "benchmarks" / "ptychi_lsqml.py"), str(data), "--epochs",
                           str(epochs), "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pty-chi run failed:\n{proc.stderr[-3000:]}")
    print("\n".join("  " + line for line in proc.stdout.strip().splitlines()), flush=True)  # its settings, checks


def first_reaching(rows: list[dict], key: str, target: float, lower_is_better: bool = False) -> dict | None:
    for r in rows:
        v = r[key]
        if v is None:
            v = float("inf") if key == "frc50" else None  # FRC never below 0.5: resolved to Nyquist
        if v is not None and (v <= target if lower_is_better else v >= target):
            return r
    return None


def fmt(v, spec=".4f") -> str:
    if v is None:
        return "Nyq"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(ROOT / "bench-data"))
    ap.add_argument("--bundle-1e9")
    ap.add_argument("--bundle-1e5")
    ap.add_argument("--epochs", type=int, help="refinement epochs (default: `pinnacle reconstruct`'s)")
    ap.add_argument("--backends", default="tensorflow,torch")
    ap.add_argument("--doses", default="1e9,1e5")
    ap.add_argument("--methods", default="iterative,hybrid")
    ap.add_argument("--defocus", type=float, default=0.0,
                    help="probe defocus of the simulated scans, radians at the disk's rim (0: the issue's scans, "
                         "whose disk probe is its own twin; 3 breaks the twin ambiguity: docs/performance.md)")
    ap.add_argument("--json", help="also write every curve to this file")
    ap.add_argument("--ptychi-python", help="a Python with ptychi installed (scripts/ptychi_env.sh): adds pty-chi "
                                            "LSQML's curve on the same scan")
    ap.add_argument("--child", nargs="*")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child is not None:
        backend, method, data, bundle, epochs = args.child
        child(backend, method, data, None if bundle == "-" else bundle, int(epochs), args.out)
        return

    if args.epochs is None:
        from engine.refine import RefineConfig
        args.epochs = RefineConfig().epochs
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"bench_reconstruct: {load()}, {os.cpu_count()} CPUs", flush=True)
    results: dict[str, list[dict]] = {}
    speeds: dict[str, dict] = {}
    for dose in args.doses.split(","):
        files = scans(data_dir, dose, args.defocus)
        bundle = bundle_for(data_dir, dose, files["train"], getattr(args, f"bundle_{dose}", None), args.defocus) \
            if "hybrid" in args.methods else None
        runners = [(b, m) for b in args.backends.split(",") for m in args.methods.split(",")]
        if args.ptychi_python:
            runners.append(("ptychi", "lsqml"))
        for backend, method in runners:
            out = data_dir / f"curve_{dose}_{backend}_{method}.npz"
            print(f"[{dose}] {backend} {method} ... ({load()})", flush=True)
            if backend == "ptychi":
                run_ptychi(args.ptychi_python, files["test"], args.epochs, out)
            else:
                run_child([backend, method, str(files["test"]), str(bundle) if method == "hybrid" else "-",
                           str(args.epochs)], out)
            rows = curve(out, files["test"])
            results[f"{dose} {backend} {method}"] = rows
            if (sp := speed(out)) is not None:
                speeds[f"{dose} {backend} {method}"] = sp
                print(f"  rPIE β {sp['beta']:g}; epoch seconds: first {sp['first']:.2f}, then median "
                      f"{sp['median']:.3f}; refinement {sp['total']:.2f} s")
            print(f"  {'epoch':>5} {'seconds':>8} {'cFRC50':>7} {'cNRMSE':>7} {'phase SSIM':>10} {'amp SSIM':>8}")
            for r in rows:
                print(f"  {r['epoch']:>5} {r['seconds']:>8.2f} {fmt(r['frc50'], '.1f'):>7} {r['nrmse']:>7.4f} "
                      f"{r['phase_ssim']:>10.4f} {r['amplitude_ssim']:>8.4f}")
    print(f"\nsummary ({load()}; cFRC50 'Nyq' = the complex FRC stays above 0.5 up to Nyquist)")
    for key, rows in results.items():
        if "ptychi" in key:
            t975 = first_reaching(rows, "phase_ssim", 0.975)
            print(f"  {key}: final cNRMSE {rows[-1]['nrmse']:.4f}, phase SSIM {rows[-1]['phase_ssim']:.4f}; phase SSIM "
                  "0.975 at " + (f"{t975['seconds']:.2f} s (epoch {t975['epoch']})" if t975 else "never"))
    for dose in args.doses.split(","):
        for backend in args.backends.split(","):
            it, hy = results.get(f"{dose} {backend} iterative"), results.get(f"{dose} {backend} hybrid")
            for name, rows in (("iterative", it), ("hybrid", hy)):
                if not rows:
                    continue
                last = rows[-1]
                t975 = first_reaching(rows, "phase_ssim", 0.975)
                print(f"  {dose} {backend:10s} {name:9s}: final (epoch {last['epoch']}, {last['seconds']:.1f} s) "
                      f"cFRC50 {fmt(last['frc50'], '.1f')}, cNRMSE {last['nrmse']:.4f}, phase SSIM "
                      f"{last['phase_ssim']:.4f}, amp SSIM {last['amplitude_ssim']:.4f}; phase SSIM 0.975 at "
                      + (f"{t975['seconds']:.2f} s (epoch {t975['epoch']})" if t975 else "never"))
            if it and hy:
                target = it[-1]["nrmse"]
                reach = first_reaching(hy, "nrmse", target, lower_is_better=True)
                ratio = f"{reach['epoch'] / it[-1]['epoch']:.2f}" if reach else "not reached"
                print(f"  {dose} {backend:10s} hybrid reaches iterative's final cNRMSE {target:.4f} at epoch "
                      f"{reach['epoch'] if reach else '-'} of {it[-1]['epoch']}: ratio {ratio}")
    backends = args.backends.split(",")
    for dose in args.doses.split(","):
        for method in args.methods.split(","):
            got = {b: speeds[f"{dose} {b} {method}"] for b in backends if f"{dose} {b} {method}" in speeds}
            if len(got) > 1:
                fast = min(v["median"] for v in got.values())
                rates = ", ".join(f"{b} {v['median']:.3f} s ({v['median'] / fast:.2f}x; {v['total']:.2f} s)"
                                  for b, v in got.items())
                print(f"  {dose} {method} refinement speed (median epoch after the first; total): {rates}")
    if args.json:
        Path(args.json).write_text(json.dumps({"curves": results, "speeds": speeds}, indent=1))


if __name__ == "__main__":
    main()
