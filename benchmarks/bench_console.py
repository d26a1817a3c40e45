"""Console benchmark (not a test): time to first paint, and sustained event ingestion — from a child through the
real runner, and from a run started elsewhere through the follower (tailing its events.jsonl).

A writer process emits progress events at a target rate (default 10,000/s), stamped with its wall clock: on
--events-fd for the runner, or appended to RUN/events.jsonl (holding the run's writer lock, as a job does) for the
follower. The app ingests them through the reducer while a 20 Hz timer measures how late the UI loop runs. Prints:
first paint, events/s ingested, ingest lag (event written -> folded into the run view), UI-loop delay; with
--follow also the time to replay the finished run's whole history (what opening it from History costs).
``--rate 0`` emits as fast as the writer can.

    .venv/bin/python benchmarks/bench_console.py [--rate 10000] [--seconds 5] [--follow]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()

EMITTER = r"""
import fcntl, json, os, sys, time
rate = float(sys.argv[1]); seconds = float(sys.argv[2]); path = sys.argv[3]
if path == "-":
    out = os.fdopen(int(sys.argv[sys.argv.index("--events-fd") + 1]), "w", buffering=1 << 16)
else:  # a job elsewhere: it holds its run's lock and appends to events.jsonl
    lock = open(os.path.join(os.path.dirname(path), "run.lock"), "a+"); fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
    out = open(path, "a", buffering=1 << 16)
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
out.write(json.dumps({"v": 1, "type": "run_finished", "run_id": "bench", "seq": n + 1, "t": time.monotonic() - t0,
                      "status": "ok", "exit_code": 0}) + "\n")
out.close()
"""


def _outside_run(root: Path) -> Path:
    """A run directory as the run store makes it (run.json running, pid of nobody yet)."""
    run_dir = root / "20260101-000000-0000-bench"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"format": 1, "run_id": run_dir.name, "kind": "selftest",
                                                  "status": "running", "backend": None, "config": {},
                                                  "created": "2026-01-01T00:00:00Z", "pid": None}))
    (run_dir / "events.jsonl").write_text("")
    return run_dir


async def main(rate: float, seconds: float, follow: bool) -> None:
    import subprocess

    from console.app import PinnacleApp
    from console.runner import JobSpec

    root = Path(tempfile.mkdtemp(prefix="bench-console-"))
    app = PinnacleApp(runs=str(root / "runs"), fixtures="/nonexistent", watch=None)
    lags: list[float] = []  # newest event of each batch
    oldest: list[float] = []  # oldest event of each batch: what batching / polling adds
    ingest = app.ingest

    def timed_ingest(key, events):
        now = time.time()
        stamped = [e["wall"] for e in events if "wall" in e]
        if stamped:
            lags.append(now - stamped[-1])
            oldest.append(now - stamped[0])
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
        if follow:
            run_dir = _outside_run(root / "runs")
            writer = subprocess.Popen([sys.executable, "-c", EMITTER, str(rate), str(seconds),
                                       str(run_dir / "events.jsonl")])
            await asyncio.sleep(0.2)  # it holds the lock by now: the follower sees a live writer
            key = app.open_run(str(run_dir))
            await asyncio.to_thread(writer.wait)
            await app.followers[key].wait()
            await pilot.pause()
        else:
            key = "bench"
            await app.start_job(JobSpec(key, (sys.executable, "-c", EMITTER, str(rate), str(seconds), "-"), label="bench"))
            await app.runner.jobs[key].wait()
            await pilot.pause()
        elapsed = time.perf_counter() - t_start
        view = app.views[key]
        n = view.progress.done
        how = "follower (events.jsonl tail)" if follow else "runner (pipe)"
        print(f"{how}: {n} events in {elapsed:.2f} s (target {rate:.0f}/s) -> ingested {n / elapsed:,.0f} events/s "
              f"(includes writer start-up)")
        print(f"final progress {view.progress.done}/{view.progress.total}, status {view.status}")
        if lags:
            print(f"ingest lag, newest event of a batch: median {sorted(lags)[len(lags) // 2] * 1e3:.1f} ms, worst "
                  f"{max(lags) * 1e3:.1f} ms; oldest: median {sorted(oldest)[len(oldest) // 2] * 1e3:.1f} ms, worst "
                  f"{max(oldest) * 1e3:.1f} ms")
        if delays:
            print(f"UI loop delay (20 Hz timer): median {sorted(delays)[len(delays) // 2] * 1e3:.1f} ms, "
                  f"worst {max(delays) * 1e3:.1f} ms")
        if follow:
            from console.follow import replay
            from console.state import RunView, reduce_batch

            t = time.perf_counter()
            events = replay(run_dir)
            replayed = reduce_batch(RunView("replay"), events)
            print(f"replay of the finished run ({len(events)} events, as History opens it): "
                  f"{time.perf_counter() - t:.2f} s, status {replayed.status}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=10000.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--follow", action="store_true", help="follow a run started elsewhere instead of a child")
    a = ap.parse_args()
    asyncio.run(main(a.rate, a.seconds, a.follow))
