"""Stitching throughput (TARGETS.md: ≥ 20,000 patches/s for N = 64). Prints patches/s; not a test.

1,024 patches of N = 64 at random sub-pixel positions, probe-intensity weight on the predicted N/2 centre
(what inference uses), into a ~300×300 grid. Best of a few repeats, because the machine is shared.

    python benchmarks/bench_stitch.py [--repeats 5] [--patches 1024]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from engine import physics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patches", type=int, default=1024)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    N, M = args.N, args.patches
    yy, xx = np.mgrid[:N, :N] - N // 2
    probe = (np.hypot(yy, xx) < N / 4).astype(np.complex64)
    weight = physics.stitch_weight(probe, N // 2)
    patches = (rng.uniform(0.5, 1, (M, N, N)) * np.exp(1j * rng.uniform(-1, 1, (M, N, N)))).astype(np.complex64)
    side = 300 - N
    positions = rng.uniform(N / 2, N / 2 + side, (M, 2))
    best = np.inf
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        physics.stitch(patches, positions, weight, (300, 300))
        best = min(best, time.perf_counter() - t0)
    print(f"stitch: N={N}, {M} patches into 300x300: {M / best:,.0f} patches/s (best of {args.repeats})")


if __name__ == "__main__":
    main()
