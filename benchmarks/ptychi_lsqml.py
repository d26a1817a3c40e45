"""pty-chi's LSQML on a Pinnacle NPZ scan, for benchmarks/bench_reconstruct.py --ptychi-python (docs/performance.md).

    .venv-ptychi/bin/python benchmarks/ptychi_lsqml.py SCAN.npz --epochs 200 --out OUT.npz [--batch-size 32]
        [--noise-model gaussian|poisson] [--batching random|compact|uniform] [--momentum 0] [--margin 8] [--seed 0]

Runs in the environment made by scripts/ptychi_env.sh (pty-chi needs a torch/torchvision pair of its own), so it
imports nothing from Pinnacle: it reads the NPZ keys directly.

Geometry, mapped from Pinnacle's conventions (docs/physics.md) to pty-chi's:
- Pinnacle: patch pixel (N//2, N//2) sits on the position (x, y), i.e. patch pixel (0, 0) at position − N/2;
  pty-chi: patch pixel (0, 0) at position + origin − (N − 1)/2, positions given as (y, x) and measured from the
  object buffer's ``position_origin_coords``. The object buffer is the truth's grid padded by ``margin`` free pixels
  per side (as Pinnacle's refinement pads it), so the origin is set to (margin − ½, margin − ½) and the positions
  are passed unchanged.
- Pinnacle: far field fftshift(fft2(P·O))/N with the DC term centred; pty-chi: fft2(P·O) unnormalised, compared
  with the measured intensities after its own fftshift (``fft_shift=True``). The probe is therefore passed as
  probeGuess/N, which gives the same counts; the measured amplitudes are squared into counts.
Before timing, the true object is pushed through pty-chi's forward model and compared with the measured
amplitudes: that error must sit at the Poisson noise floor, else the mapping above is wrong.

Settings: object from a flat 1 (as Pinnacle's `iterative`), SGD step 1 (LSQML's own optimal step, scaled by its
default 0.9), the probe held fixed (no probe update, no rescaling of its intensity in the first epoch, no
object/probe ambiguity removal, which would rescale it), no position correction, random mini-batches of 32
(Pinnacle's batch size), on CPU in float32, torch's default thread count. Everything else is pty-chi's default,
including its Gaussian noise model (LSQML's amplitude likelihood), which on the benchmark scans reaches a given
phase SSIM in about half the epochs of its Poisson model (docs/performance.md); --noise-model poisson selects that.

Writes OUT.npz in bench_reconstruct's snapshot format: ``epoch`` (0 = the flat start), ``seconds`` (cumulative
seconds inside pty-chi's ``task.run``: no set-up, no snapshot copies, no metrics), ``objects`` (H, W) complex64 on
the truth's grid, ``origin`` [0, 0].
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

SNAPSHOTS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50, 60, 80, 100, 150, 200)  # as bench_reconstruct.py
KEYS = {"diffraction": "(M, N, N) measured amplitudes (sqrt of counts)", "xcoords": "(M,) x positions in pixels",
        "ycoords": "(M,) y positions in pixels", "probeGuess": "(N, N) complex probe in count units",
        "objectGuess": "(H, W) complex true object (its grid is the reconstruction grid)"}


def fail(source: str, key: str, expected: str) -> None:
    """Pinnacle's bad-input rule (one line, exit 2), written out: this environment cannot import engine.errors."""
    print(f"error: {source}: {key}: expected {expected}", file=sys.stderr)
    raise SystemExit(2)


def read_scan(path: str) -> dict[str, np.ndarray]:
    """The scan's arrays, checked for the shapes the mapping relies on."""
    if not Path(path).is_file():
        fail(path, "file", "an existing Pinnacle NPZ scan")
    with np.load(path) as z:
        for key, what in KEYS.items():
            if key not in z.files:
                fail(path, key, what)
        scan = {k: np.asarray(z[k]) for k in KEYS}
    d, p, o = scan["diffraction"], scan["probeGuess"], scan["objectGuess"]
    if d.ndim != 3 or d.shape[1] != d.shape[2] or p.shape != d.shape[1:]:
        fail(path, "diffraction", f"(M, N, N) with probeGuess (N, N); got {d.shape} and {p.shape}")
    if scan["xcoords"].shape != (len(d),) or scan["ycoords"].shape != (len(d),):
        fail(path, "xcoords", f"({len(d)},) positions, one per pattern")
    if o.ndim != 2:
        fail(path, "objectGuess", f"a 2-D complex object; got shape {o.shape}")
    return scan


def build_task(scan: dict[str, np.ndarray], start: np.ndarray, args, epochs: int):
    """A pty-chi LSQML task: object free, probe and positions fixed, geometry as in the module docstring."""
    import torch
    import ptychi.api as api
    from ptychi.api.task import PtychographyTask

    N = scan["diffraction"].shape[-1]
    o = api.LSQMLOptions()
    o.data_options.fft_shift = True  # measured patterns have the DC term at the centre
    o.object_options.optimizable = True
    o.object_options.optimizer = api.Optimizers.SGD
    o.object_options.step_size = 1.0
    o.object_options.determine_position_origin_coords_by = api.ObjectPosOriginCoordsMethods.SPECIFIED
    o.object_options.position_origin_coords = np.array([args.margin - 0.5, args.margin - 0.5])
    o.object_options.remove_object_probe_ambiguity.enabled = False  # would rescale the (known) probe
    o.probe_options.optimizable = False
    o.probe_position_options.optimizable = False
    o.opr_mode_weight_options.optimizable = False
    r = o.reconstructor_options
    r.num_epochs = epochs
    r.batch_size = args.batch_size
    r.noise_model = api.NoiseModels(args.noise_model)
    r.batching_mode = api.BatchingModes(args.batching)
    r.momentum_acceleration_gain = args.momentum  # pty-chi applies it with compact batching only
    r.rescale_probe_intensity_in_first_epoch = False  # the probe is in count units already
    r.default_device = api.Devices.CPU
    r.random_seed = args.seed
    counts = scan["diffraction"].astype(np.float32) ** 2
    probe = (scan["probeGuess"].astype(np.complex64) / np.float32(N))[None, None]
    return PtychographyTask(
        o,
        diffraction_data=torch.as_tensor(counts),
        object_data=torch.as_tensor(start[None].astype(np.complex64)),
        probe_data=torch.as_tensor(probe),
        probe_position_x_px=torch.as_tensor(scan["xcoords"].astype(np.float32)),
        probe_position_y_px=torch.as_tensor(scan["ycoords"].astype(np.float32)),
    )


def predicted_counts(task, M: int) -> np.ndarray:
    """The task's model counts for every pattern, DC term centred like the measured patterns."""
    import torch

    fm = task.reconstructor.forward_model
    with torch.no_grad():
        pred = np.concatenate([fm(torch.arange(s, min(s + 64, M))).cpu().numpy() for s in range(0, M, 64)])
    return np.fft.fftshift(np.maximum(pred.astype(np.float64), 0), axes=(-2, -1))  # pty-chi: DC at the corner


def amplitude_error(counts: np.ndarray, measured: np.ndarray) -> float:
    """Relative L2 error of model amplitudes against measured amplitudes."""
    return float(np.linalg.norm(np.sqrt(counts) - measured) / np.linalg.norm(measured))


def noise_floor(counts: np.ndarray, seed: int) -> float:
    """The same error for data drawn with Poisson noise from ``counts`` itself: what a perfect model reaches."""
    drawn = np.random.default_rng(seed).poisson(counts)
    return amplitude_error(counts, np.sqrt(drawn))


def padded(obj: np.ndarray, margin: int, fill: complex = 1.0) -> np.ndarray:
    return np.pad(obj.astype(np.complex64), margin, constant_values=fill)


def crop(obj: np.ndarray, margin: int) -> np.ndarray:
    return obj[margin:obj.shape[0] - margin, margin:obj.shape[1] - margin]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scan")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--noise-model", choices=("gaussian", "poisson"), default="gaussian",
                    help="LSQML's likelihood; gaussian (pty-chi's default) converges faster on these scans")
    ap.add_argument("--batching", choices=("random", "compact", "uniform"), default="random")
    ap.add_argument("--momentum", type=float, default=0.0, help="LSQML's momentum_acceleration_gain (compact only)")
    ap.add_argument("--margin", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.epochs < 1:
        fail("--epochs", "value", "an integer >= 1")
    if args.batch_size < 1:
        fail("--batch-size", "value", "an integer >= 1")
    if args.margin < 1:
        fail("--margin", "value", "an integer >= 1 (pty-chi's sub-pixel shift reads one pixel past each patch)")
    scan = read_scan(args.scan)
    import logging

    import ptychi  # noqa: F401  (imported before silencing: its import configures logging)
    import torch

    logging.getLogger("ptychi").setLevel(logging.WARNING)  # no per-epoch loss lines and progress bar
    truth = scan["objectGuess"]
    m = args.margin

    measured, M = scan["diffraction"].astype(np.float64), len(scan["diffraction"])
    truth_counts = predicted_counts(build_task(scan, padded(truth, m), args, 1), M)
    err_truth, floor = amplitude_error(truth_counts, measured), noise_floor(truth_counts, args.seed)
    del truth_counts
    task = build_task(scan, np.ones((truth.shape[0] + 2 * m, truth.shape[1] + 2 * m), np.complex64), args,
                      args.epochs)
    err_flat = amplitude_error(predicted_counts(task, M), measured)

    snaps = {"epoch": [0], "seconds": [0.0], "objects": [crop(task.get_data_to_cpu("object", as_numpy=True)[0], m)]}
    marks = sorted({e for e in SNAPSHOTS if e <= args.epochs} | {args.epochs})
    done, elapsed = 0, 0.0
    for mark in marks:
        t0 = time.perf_counter()
        task.run(mark - done)
        elapsed += time.perf_counter() - t0
        done = mark
        snaps["epoch"].append(mark)
        snaps["seconds"].append(elapsed)
        snaps["objects"].append(crop(task.get_data_to_cpu("object", as_numpy=True)[0], m).copy())
    np.savez(args.out, epoch=np.array(snaps["epoch"]), seconds=np.array(snaps["seconds"]),
             objects=np.stack(snaps["objects"]).astype(np.complex64), origin=np.array([0, 0]))

    losses = task.reconstructor.loss_tracker.table["loss"].to_numpy()
    shown = [e for e in (1, 2, 5, 10, 50, args.epochs) if e <= len(losses)]
    print(f"pty-chi {ptychi.__version__ if hasattr(ptychi, '__version__') else ''} LSQML on {args.scan}: "
          f"{args.epochs} epochs in {elapsed:.2f} s, batch {args.batch_size} {args.batching}, momentum "
          f"{args.momentum:g}, {args.noise_model} noise, "
          f"torch {torch.__version__} CPU, {torch.get_num_threads()} threads")
    print(f"  forward-model check: relative amplitude error of the true object {err_truth:.4f} "
          f"(the same model with Poisson noise {floor:.4f}); of the flat start {err_flat:.4f}")
    print("  loss (pty-chi's displayed MSE of amplitudes) " +
          ", ".join(f"epoch {e}: {losses[e - 1]:.4g}" for e in dict.fromkeys(shown)))
    print(f"  wrote {args.out}: snapshots at epochs {snaps['epoch']}")


if __name__ == "__main__":
    main()
