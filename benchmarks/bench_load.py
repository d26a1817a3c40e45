"""Training epoch time per backend on a quiet machine and beside one busy process (a pure-Python loop on one core).

    python benchmarks/bench_load.py [--data fixtures/train.npz] [--epochs 4] [--repeats 2] [--env GOMP_SPINCOUNT=3000]

Each case is a whole `pinnacle train` (CI size); the figure is the median epoch time after the first (which also
builds or traces the step). ``--env`` adds a variable to PyTorch's runs (e.g. an OpenMP setting) as a third and
fourth case. Prints the TF/PyTorch ratios quiet and loaded, and the load average; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def epoch_seconds(backend: str, data: str, epochs: int, env: dict) -> list[float]:
    with tempfile.TemporaryDirectory() as runs:
        subprocess.run([sys.executable, "-m", "console.cli", "train", data, "--backend", backend, "--epochs",
                        str(epochs), "--filters-scale", "1", "--runs", runs, "--no-progress"], cwd=ROOT,
                       env={**os.environ, **env}, check=True, capture_output=True)
        (events,) = Path(runs).glob("*/events.jsonl")
        lines = [json.loads(line) for line in events.read_text().splitlines()]
    return [e["seconds"] for e in lines if e.get("type") == "epoch"]


def case(backend: str, data: str, epochs: int, env: dict, busy: bool, repeats: int) -> float:
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        steady = [s for _ in range(repeats) for s in epoch_seconds(backend, data, epochs, env)[1:]]
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return statistics.median(steady)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "fixtures" / "train.npz"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    print("bench_load: load average {:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg()), flush=True)
    cases = [("tensorflow", {}), ("torch", {})] + ([("torch", extra)] if extra else [])
    rows = []
    for backend, env in cases:
        label = backend + (" " + " ".join(f"{k}={v}" for k, v in env.items()) if env else "")
        quiet = case(backend, args.data, args.epochs, env, False, args.repeats)
        busy = case(backend, args.data, args.epochs, env, True, args.repeats)
        rows.append((label, quiet, busy))
        print(f"  {label}: quiet {quiet:.2f} s/epoch, beside a busy process {busy:.2f} s/epoch", flush=True)
    tf_quiet, tf_busy = rows[0][1], rows[0][2]
    print(f"\n{'backend':<32} {'quiet':>8} {'busy':>8} {'busy/quiet':>11} {'÷TF quiet':>10} {'÷TF busy':>9}")
    for label, quiet, busy in rows:
        print(f"{label:<32} {quiet:7.2f}s {busy:7.2f}s {busy / quiet:10.2f}× {quiet / tf_quiet:9.2f}× "
              f"{busy / tf_busy:8.2f}×")
    print("\n(load average {:.2f} / {:.2f} / {:.2f} at the end)".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
