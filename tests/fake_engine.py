"""A stand-in engine job for console tests: emits SPEC §5 events on --events-fd, like ``pinnacle selftest``.

--fail-at K crashes (uncaught exception, no error event) at step K; --grandchild starts a sleeping child process
in the same process group (to prove cancel reaches the whole group); --ignore-sigint makes it need SIGTERM.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--delay", type=float, default=0.01)
    ap.add_argument("--fail-at", type=int, default=-1)
    ap.add_argument("--events-fd", type=int, required=True)
    ap.add_argument("--grandchild", action="store_true")
    ap.add_argument("--ignore-sigint", action="store_true")
    ap.add_argument("--progress-per-step", type=int, default=10)
    a = ap.parse_args()
    out = os.fdopen(a.events_fd, "w", buffering=1)
    t0 = time.monotonic()
    seq = [0]

    def emit(type_, **kw):
        seq[0] += 1
        out.write(json.dumps({"v": 1, "type": type_, "run_id": "fake", "seq": seq[0], "t": time.monotonic() - t0, **kw}) + "\n")

    stop = []
    signal.signal(signal.SIGINT, signal.SIG_IGN if a.ignore_sigint else (lambda *_: stop.append(1)))
    emit("run_started", backend="fake")
    print("noise on stdout that must not corrupt the event stream", flush=True)
    if a.grandchild:
        g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        emit("log", level="info", message=f"grandchild {g.pid}")
    emit("stage", stage="training")
    for step in range(1, a.steps + 1):
        for i in range(a.progress_per_step):
            emit("progress", done=i + 1, total=a.progress_per_step)
        if step == a.fail_at:
            raise RuntimeError(f"fake engine crashed at step {step}")
        time.sleep(a.delay)
        if stop:
            emit("run_finished", status="cancelled")
            return 130
        emit("epoch", epoch=step, epochs=a.steps, train_loss=1.0 / step, val_loss=1.2 / step, seconds=a.delay,
             samples_per_s=100.0)
    emit("run_finished", status="ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
