"""Cold `pinnacle infer` against the same command through the warm worker (`pinnacle serve`), per backend.

    python benchmarks/bench_worker.py BUNDLE DATA [--repeats 3] [--backends tensorflow,torch]

For each backend: the whole process cold (``--worker off``) and warm (``--worker auto`` with a worker listening),
timed from launching the command to (a) the ``recon`` artifact event (recon.npz written: the answer) and (b) the
process's exit (metrics, PNGs and products written too). Medians of ``--repeats`` runs; the load average is printed
before and after (2 cores: read ratios more than absolute values on a busy machine). Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    return "load average {:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())


def timed_infer(bundle: str, data: str, backend: str, runs: Path, worker: str, env: dict) -> tuple[float, float]:
    """(seconds to the recon artifact, seconds to exit) of one whole ``pinnacle infer`` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "infer", bundle, data, "--backend", backend,
                             "--runs", str(runs), "--events", "-", "--worker", worker], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    to_recon = None
    for line in proc.stdout:
        event = json.loads(line)
        if to_recon is None and event.get("type") == "artifact" and event.get("kind") == "recon":
            to_recon = time.perf_counter() - t0
    err = proc.stderr.read()
    if proc.wait() != 0 or to_recon is None:
        raise SystemExit(f"infer failed ({worker}, {backend}):\n{err[-2000:]}")
    return to_recon, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("data")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="tensorflow,torch")
    args = ap.parse_args()
    backends = args.backends.split(",")
    print(f"bench_worker: {args.data} with {args.bundle}; {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="pw") as tmp:
        sock = Path(tmp) / "w.sock"
        env = {**os.environ, "PINNACLE_WORKER_SOCKET": str(sock)}
        runs = Path(tmp) / "runs"
        rows = []
        for backend in backends:
            cold = [timed_infer(args.bundle, args.data, backend, runs, "off", env) for _ in range(args.repeats)]
            t0 = time.perf_counter()
            serve = subprocess.Popen([sys.executable, "-m", "console.cli", "serve", "--backend", backend],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            ready = serve.stdout.readline()
            warm_up = time.perf_counter() - t0
            if not ready.startswith("worker ready"):
                raise SystemExit(f"the worker did not start ({backend})")
            try:
                warm = [timed_infer(args.bundle, args.data, backend, runs, "auto", env)
                        for _ in range(args.repeats)]
            finally:
                serve.terminate()
                serve.wait()
            rows.append((backend, cold, warm, warm_up))
            print(f"  {backend}: cold {[round(c[1], 2) for c in cold]} s, warm {[round(w[1], 2) for w in warm]} s",
                  flush=True)
    print(f"\n{'backend':<11} {'cold: recon':>12} {'cold: exit':>11} {'warm: recon':>12} {'warm: exit':>11}"
          f" {'worker start':>13}")
    for backend, cold, warm, warm_up in rows:
        med = [statistics.median(x[i] for x in runs_) for runs_ in (cold, warm) for i in (0, 1)]
        print(f"{backend:<11} {med[0]:11.2f}s {med[1]:10.2f}s {med[2]:11.2f}s {med[3]:10.2f}s {warm_up:12.1f}s")
    print(f"\n({load()} at the end; medians of {args.repeats})")


if __name__ == "__main__":
    main()
