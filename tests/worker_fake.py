"""A worker with a stand-in job (no framework), for tests/test_worker.py: ``python tests/worker_fake.py SOCKET [UID]``.
``python tests/worker_fake.py --real --socket SOCKET`` (as the console's keeper starts it) runs the real commands
but warms nothing (a quick start for the console's tests; the job imports its framework itself).

The job is chosen by the word after the command: ``infer echo CODE`` prints its arguments and exits CODE;
``infer wait`` prints "waiting" and waits for SIGINT (then exits 130); ``infer crash`` kills itself (SIGKILL).
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

# the project, not tests/ (whose torch/ and tf/ packages would shadow the frameworks)
sys.path[0] = str(Path(__file__).resolve().parents[1])

from console.worker.server import Worker  # noqa: E402


def fake_job(argv: list[str]) -> int:
    action = argv[1]
    if action == "echo":
        print("job", os.getpid(), " ".join(argv), flush=True)
        return int(argv[2])
    if action == "wait":
        stop = []
        signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        print("waiting", os.getpid(), flush=True)
        deadline = time.monotonic() + 60
        while not stop and time.monotonic() < deadline:
            time.sleep(0.02)
        print("cancelled" if stop else "timed out", flush=True)
        return 130 if stop else 1
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    return 2


def main() -> None:
    args = sys.argv[1:]
    if "--socket" in args:
        at = args.index("--socket")
        args = [args[at + 1]] + args[:at] + args[at + 2:]
    path = Path(args[0])
    if "--real" in args:
        from console.worker.server import run_command

        worker = Worker(path, [], runner=run_command)
    else:
        uid = int(args[1]) if len(args) > 1 else None
        worker = Worker(path, ["fake"], runner=fake_job, uid=uid)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.bind()
    print("ready", os.getpid(), flush=True)
    worker.serve()


if __name__ == "__main__":
    main()
