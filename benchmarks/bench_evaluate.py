"""Seconds per ``engine.metrics.evaluate`` (TARGETS.md / issue 17: ≤ 0.5 s for a 232×232 object). Not a test.

A 232×232 lines object (the simulator's), a 16×16 jittered raster of 256 positions for N = 64, and a recon made
the way inference makes one: the truth sub-pixel shifted, amplitude scaled, phase offset and ramped, blurred
and noisy, cut into the 256 patches and stitched back on the truth's grid (zero outside the scan). evaluate
then registers it (phase correlation + polish), removes the ambiguities and computes SSIM and FRCs. Prints the
first call in this process (it pays for lazy scikit-image imports) and the median of the following calls,
with the load average: compare figures only when taken at a similar load.

    python benchmarks/bench_evaluate.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _case(size: int = 232, M: int = 256, N: int = 64, seed: int = 0):
    from scipy.ndimage import gaussian_filter

    from engine import physics, simulate

    rng = np.random.default_rng(seed)
    truth = simulate.make_object("lines", size, N, rng)
    pos = simulate.make_scan("raster", M, size, N, 8.0, 0.5, rng)
    yy, xx = np.mgrid[:size, :size]
    rec = 1.2 * physics.fourier_shift(truth.astype(np.complex128), 0.37, -0.61) * np.exp(1j * (1.0 + 0.03 * yy - 0.05 * xx))
    rec = gaussian_filter(rec.real, 1.0) + 1j * gaussian_filter(rec.imag, 1.0)
    rec = rec + 0.05 * (rng.standard_normal(rec.shape) + 1j * rng.standard_normal(rec.shape))
    patches = physics.extract_patches(rec, pos, N)
    yy, xx = np.mgrid[:N, :N] - N // 2
    weight = physics.stitch_weight(simulate.make_probe("disk", N, 10.0), N // 2)
    recon, _ = physics.stitch(patches, pos, weight, truth.shape)
    return recon, truth, pos, N


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    from engine.metrics import evaluate

    recon, truth, pos, N = _case()
    t0 = time.perf_counter()
    res = evaluate(recon, (0, 0), truth, pos, N)
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        evaluate(recon, (0, 0), truth, pos, N)
        times.append(time.perf_counter() - t0)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    y0, y1, x0, x1 = res["region"]
    print(f"evaluate: {truth.shape[0]}x{truth.shape[1]} object, {len(pos)} positions of N {N}, region "
          f"{y1 - y0}x{x1 - x0}: {float(np.median(times)):.3f} s median of {args.repeats} "
          f"(min {min(times):.3f}, first call {first:.3f}); load average {load}")
    print(f"  shift {res['registration_shift_px'][0]:+.3f}, {res['registration_shift_px'][1]:+.3f} px; "
          f"phase SSIM {res['phase']['ssim']:.3f}, FRC50 {res['phase']['frc50_px']} px")


if __name__ == "__main__":
    main()
