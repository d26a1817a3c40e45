"""Throughput and memory figures of both backends (a benchmark, not a test): prints the TARGETS.md figures.

Each backend runs in its own child process (the two frameworks never share one). For each size:
- inference: ``predict`` on 1,024 patterns at batch 64 (after one warm-up batch), patterns/s;
- training: groups/s of the second epoch of ``train`` at batch 16 (the first epoch pays for graph building);
- forward model + Poisson loss alone: patterns/s of the backend's physics layer on a batch of 256;
- peak memory: the child's peak resident set size after inference (ru_maxrss), which includes the framework;
and, backend-free, the shared numpy stitcher: patches/s for 1,024 patches of N = 64.

    .venv/bin/python benchmarks/bench_backends.py [--backends tensorflow,torch] [--sizes paper,ci] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

SIZES = {"paper": 2, "ci": 1}  # n_filters_scale; N = 64, gridsize 1


def _synthetic(M: int, N: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:N, :N] - N // 2
    probe = (np.hypot(yy, xx) < 10).astype(np.complex64) * 40
    amp = np.sqrt(rng.poisson(50.0, (M, 1, N, N))).astype(np.float32)
    return probe, amp


def child(backend_name: str, size: str, quick: bool) -> dict:
    from engine import grouping
    from engine.backend_api import PhysicsConstants, TrainingData
    from engine.backends import load_backend
    from engine.config import ModelConfig, RunConfig, TrainingConfig
    from engine.weights import init_weights

    be = load_backend(backend_name)
    N = 64
    mcfg = ModelConfig(N=N, n_filters_scale=SIZES[size], gridsize=1)
    weights = init_weights(mcfg, 0)
    probe, amp = _synthetic(1024, N)
    consts = PhysicsConstants(probe=probe, photon_scale=1.0, input_scale=0.1, N=N, C=1)
    M = 256 if quick else 1024
    x = amp[:M] * 0.1
    offsets = np.zeros((M, 1, 2), np.float32)
    be.predict(mcfg, weights, consts, x[:64], offsets[:64], 64)  # warm-up: graph build, allocator
    t = time.perf_counter()
    be.predict(mcfg, weights, consts, x, offsets, 64)
    infer = M / (time.perf_counter() - t)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    G = 64 if quick else 128
    positions = np.stack(np.meshgrid(np.arange(G) * 4.0, [0.0]), -1).reshape(-1, 2)
    groups = grouping.make_groups(positions, 1, N)
    data = TrainingData(amplitude=amp[:G, 0], train=groups, val=groups.take(np.arange(0)), input_scale=0.1)
    cfg = RunConfig(model=mcfg, training=TrainingConfig(epochs=2, batch_size=16), backend=backend_name)
    rates: list[float] = []

    class Hooks:
        def on_train_start(self, *a): ...
        def on_batch_end(self, *a): ...
        def on_epoch_end(self, epoch, tl, vl, lr, seconds, samples_per_s, weights):
            rates.append(samples_per_s)
        def should_stop(self):
            return False

    be.train(cfg, data, consts, weights, Hooks(), None, None)
    physics_rate = _physics_rate(backend_name, probe, amp[:256, 0])
    return {"backend": backend_name, "size": size, "inference_patterns_per_s": infer,
            "training_groups_per_s": rates[-1], "forward_loss_patterns_per_s": physics_rate,
            "peak_rss_mib_inference": peak_mib, "threads": os.cpu_count()}


def _physics_rate(backend_name: str, probe: np.ndarray, amp: np.ndarray) -> float:
    """Patterns/s of forward model + Poisson loss alone, in the backend's own graph/eager mode."""
    rng = np.random.default_rng(1)
    obj = np.exp(1j * rng.uniform(-1, 1, amp.shape)).astype(np.complex64)
    counts = amp**2
    reps = 10
    if backend_name == "torch":
        import torch

        from engine.torch import physics as tp

        P, O, n = torch.from_numpy(probe), torch.from_numpy(obj), torch.from_numpy(counts)
        with torch.inference_mode():
            tp.poisson_deviance(tp.forward_intensity(P, O), n)
            t = time.perf_counter()
            for _ in range(reps):
                tp.poisson_deviance(tp.forward_intensity(P, O), n)
    else:
        import tensorflow as tf

        from engine.tf import physics as tp

        P, O, n = tf.constant(probe), tf.constant(obj), tf.constant(counts)
        f = tf.function(lambda P, O, n: tp.poisson_deviance(tp.forward_intensity(P, O), n))
        f(P, O, n)
        t = time.perf_counter()
        for _ in range(reps):
            f(P, O, n).numpy()
    return reps * len(amp) / (time.perf_counter() - t)


def stitch_rate() -> float:
    from engine import physics

    rng = np.random.default_rng(2)
    N, M = 64, 1024
    patches = (rng.random((M, N, N)) * np.exp(1j * rng.random((M, N, N)))).astype(np.complex64)
    pos = rng.uniform(40, 260, (M, 2))
    w = physics.stitch_weight(np.ones((N, N), np.complex64), N // 2)
    physics.stitch(patches[:64], pos[:64], w, (300, 300))
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        physics.stitch(patches, pos, w, (300, 300))
        best = max(best, M / (time.perf_counter() - t))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="tensorflow,torch")
    ap.add_argument("--sizes", default="paper,ci")
    ap.add_argument("--quick", action="store_true", help="fewer patterns (a smoke run, noisier figures)")
    ap.add_argument("--child", nargs=2, metavar=("BACKEND", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.quick)))
        return 0
    rows = []
    for size in args.sizes.split(","):
        for b in args.backends.split(","):
            cmd = [sys.executable, __file__, "--child", b, size] + (["--quick"] if args.quick else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{b} {size}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'size':6} {'backend':11} {'infer pat/s':>12} {'train grp/s':>12} {'fwd+loss pat/s':>15} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['size']:6} {r['backend']:11} {r['inference_patterns_per_s']:12.1f} {r['training_groups_per_s']:12.2f} "
              f"{r['forward_loss_patterns_per_s']:15.0f} {r['peak_rss_mib_inference']:13.0f}")
    for size in args.sizes.split(","):
        pair = {r["backend"]: r for r in rows if r["size"] == size}
        if len(pair) == 2:
            a, b = pair["tensorflow"], pair["torch"]
            ri = max(a["inference_patterns_per_s"], b["inference_patterns_per_s"]) / min(a["inference_patterns_per_s"], b["inference_patterns_per_s"])
            rt = max(a["training_groups_per_s"], b["training_groups_per_s"]) / min(a["training_groups_per_s"], b["training_groups_per_s"])
            print(f"{size}: TF/torch throughput ratio — inference {ri:.2f}×, training {rt:.2f}× (target ≤ 1.3×)")
    print(f"stitching (numpy, N=64, 1,024 patches): {stitch_rate():.0f} patches/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
