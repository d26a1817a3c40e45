"""Stitching throughput (TARGETS.md: ≥ 20,000 patches/s for N = 64). Prints patches/s; not a test.

1,024 patches of N = 64, probe-intensity weight on the predicted N/2 centre (what inference uses), into a
300×300 grid, at random sub-pixel positions (random order: the scatter-add gets no help from the cache) and on a
jittered raster in scan order (what a scan looks like). Median and best of several repeats, with the load
average, because the machine may be shared: compare figures only when taken at a similar load.

    python benchmarks/bench_stitch.py [--repeats 9] [--patches 1024] [--N 64]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from engine import physics


def _positions(kind: str, M: int, N: int, side: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "random":
        return rng.uniform(N / 2, N / 2 + side, (M, 2))
    cols = int(np.ceil(np.sqrt(M)))
    iy, ix = np.divmod(np.arange(M), cols)
    step = side / max(cols - 1, 1)
    return N / 2 + np.stack([ix, iy], 1) * step + rng.uniform(-0.5, 0.5, (M, 2)).clip(-0.49, 0.49)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patches", type=int, default=1024)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    N, M = args.N, args.patches
    yy, xx = np.mgrid[:N, :N] - N // 2
    probe = (np.hypot(yy, xx) < N / 4).astype(np.complex64)
    weight = physics.stitch_weight(probe, N // 2)
    patches = (rng.uniform(0.5, 1, (M, N, N)) * np.exp(1j * rng.uniform(-1, 1, (M, N, N)))).astype(np.complex64)
    grid = 300
    for kind in ("random", "raster"):
        positions = _positions(kind, M, N, grid - N, rng)
        physics.stitch(patches, positions, weight, (grid, grid))  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            physics.stitch(patches, positions, weight, (grid, grid))
            times.append(time.perf_counter() - t0)
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"stitch: N={N}, {M} patches ({kind} positions) into {grid}x{grid}: "
              f"{M / float(np.median(times)):,.0f} patches/s median, {M / min(times):,.0f} best "
              f"of {args.repeats}; load average {load}")


if __name__ == "__main__":
    main()
