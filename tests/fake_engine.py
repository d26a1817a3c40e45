"""A stand-in engine job for console tests: emits protocol events (docs/protocol.md) on --events-fd, like
``pinnacle selftest``.

--fail-at K crashes (uncaught exception, no error event) at step K; --grandchild starts a sleeping child process
in the same process group (to prove cancel reaches the whole group); --ignore-sigint makes it need SIGTERM;
--run-dir D --previews K writes a held-out preview (previews/epoch_NNNN.npz, the contract's layout) every K epochs
and announces it with held-out metrics and an artifact event.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time


def write_preview(run_dir: str, epoch: int, epochs: int) -> str:
    """A 24×24 held-out preview that sharpens as training goes on (numpy only, imported here: only when asked)."""
    import numpy as np

    y, x = np.mgrid[:24, :24] / 24
    q = epoch / epochs
    rng = np.random.default_rng(epoch)
    phase = q * np.sin(2 * np.pi * 2 * y) * np.cos(2 * np.pi * x) + (1 - q) * 0.5 * rng.standard_normal((24, 24))
    amp = 0.6 + 0.4 * q * np.cos(2 * np.pi * 3 * x) ** 2 + (1 - q) * 0.2 * rng.standard_normal((24, 24))
    rel = f"previews/epoch_{epoch:04d}.npz"
    os.makedirs(os.path.join(run_dir, "previews"), exist_ok=True)
    np.savez(os.path.join(run_dir, rel), amplitude=amp.astype(np.float32), phase=phase.astype(np.float32),
             epoch=np.int64(epoch), phase_ssim=np.float64(0.3 + 0.5 * q))
    return rel


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--delay", type=float, default=0.01)
    ap.add_argument("--fail-at", type=int, default=-1)
    ap.add_argument("--events-fd", type=int, required=True)
    ap.add_argument("--grandchild", action="store_true")
    ap.add_argument("--ignore-sigint", action="store_true")
    ap.add_argument("--progress-per-step", type=int, default=10)
    ap.add_argument("--run-dir", default="")
    ap.add_argument("--previews", type=int, default=0)
    a = ap.parse_args()
    out = os.fdopen(a.events_fd, "w", buffering=1)
    t0 = time.monotonic()
    seq = [0]

    def emit(type_, **kw):
        seq[0] += 1
        out.write(json.dumps({"v": 1, "type": type_, "run_id": "fake", "seq": seq[0], "t": time.monotonic() - t0, **kw}) + "\n")

    stop = []
    signal.signal(signal.SIGINT, signal.SIG_IGN if a.ignore_sigint else (lambda *_: stop.append(1)))
    emit("run_started", kind="train", backend="fake", run_dir=a.run_dir, pid=os.getpid())
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
            emit("run_finished", status="cancelled", exit_code=130)
            return 130
        emit("epoch", epoch=step, epochs=a.steps, train_loss=1.0 / step, val_loss=1.2 / step, seconds=a.delay,
             samples_per_s=100.0)
        if a.previews and a.run_dir and step % a.previews == 0:
            emit("metric", name="heldout_phase_ssim", value=0.3 + 0.5 * step / a.steps, epoch=step, stage="training")
            emit("artifact", kind="preview", path=write_preview(a.run_dir, step, a.steps))
    emit("run_finished", status="ok", exit_code=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
