"""Console benchmark (not a test): time to first paint, and sustained event ingestion through the real runner.

A child process emits progress events at a target rate (default 10,000/s) on --events-fd, stamped with its wall
clock; the app ingests them through the runner and reducer while a 20 Hz timer measures how late the UI loop
runs. Prints: first paint, events/s ingested, worst ingest lag (event written -> folded into the run view) and
worst UI-loop delay. ``--rate 0`` emits as fast as the child can.

    .venv/bin/python benchmarks/bench_console.py [--rate 10000] [--seconds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time

T0 = time.perf_counter()

EMITTER = r"""
import json, os, sys, time
fd = int(sys.argv[sys.argv.index("--events-fd") + 1]); rate = float(sys.argv[1]); seconds = float(sys.argv[2])
out = os.fdopen(fd, "w", buffering=1 << 16)
t0 = time.monotonic(); n = 0; total = int(rate * seconds) if rate else 200000
out.write(json.dumps({"v": 1, "type": "stage", "run_id": "bench", "seq": 0, "t": 0.0, "stage": "training"}) + "\n")
while n < total:
    now = time.monotonic() - t0
    due = total if not rate else min(total, int(now * rate) + 1)
    while n < due:
        n += 1
        out.write('{"v":1,"type":"progress","run_id":"bench","seq":%d,"t":%.6f,"done":%d,"total":%d,"wall":%.6f}\n'
                  % (n, now, n, total, time.time()))
    out.flush()
    if rate:
        time.sleep(0.001)
out.close()
"""


async def main(rate: float, seconds: float) -> None:
    from console.app import PinnacleApp
    from console.runner import JobSpec

    app = PinnacleApp(runs="/nonexistent-runs-for-bench", fixtures="/nonexistent")
    lags: list[float] = []
    ingest = app.ingest

    def timed_ingest(key, events):
        now = time.time()
        lags.extend(now - e["wall"] for e in events[-1:] if "wall" in e)
        ingest(key, events)

    app.ingest = timed_ingest
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        first_paint = time.perf_counter() - T0
        print(f"first paint (headless, incl. imports): {first_paint:.3f} s")
        delays: list[float] = []
        last = [time.perf_counter()]

        def tick():
            now = time.perf_counter()
            delays.append(now - last[0] - 0.05)
            last[0] = now

        app.set_interval(0.05, tick)
        t_start = time.perf_counter()
        await app.start_job(JobSpec("bench", (sys.executable, "-c", EMITTER, str(rate), str(seconds)), label="bench"))
        job = app.runner.jobs["bench"]
        await job.wait()
        await pilot.pause()
        elapsed = time.perf_counter() - t_start
        view = app.views["bench"]
        n = view.progress.done
        print(f"events: {n} in {elapsed:.2f} s (target {rate:.0f}/s) -> ingested {n / elapsed:,.0f} events/s "
              f"(includes child start-up)")
        print(f"final progress {view.progress.done}/{view.progress.total}, exit {view.exit_code}")
        if lags:
            print(f"ingest lag: median {sorted(lags)[len(lags) // 2] * 1e3:.1f} ms, worst {max(lags) * 1e3:.1f} ms")
        if delays:
            print(f"UI loop delay (20 Hz timer): median {sorted(delays)[len(delays) // 2] * 1e3:.1f} ms, "
                  f"worst {max(delays) * 1e3:.1f} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=10000.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    asyncio.run(main(a.rate, a.seconds))
