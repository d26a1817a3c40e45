"""The console's job runner, without the UI: event pipe, batching, cancel of the whole process group, crash."""
import asyncio
import os
import sys
from pathlib import Path

from console.runner import JobSpec, Runner
from console.state import CANCELLED, FAILED, OK, RunView, reduce_batch

FAKE = str(Path(__file__).with_name("fake_engine.py"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Collector:
    def __init__(self):
        self.batches: list[list[dict]] = []
        self.view = RunView("k")

    def __call__(self, key, batch):
        self.batches.append(batch)
        self.view = reduce_batch(self.view, batch)


async def test_stream_to_completion_ignores_stdout_noise():
    c = Collector()
    runner = Runner(c)
    job = await runner.start(JobSpec("k", (sys.executable, FAKE, "--steps", "3", "--progress-per-step", "200")))
    assert await job.wait() == 0
    assert c.view.status == OK and c.view.epoch == 3 and c.view.train_loss == (1.0, 0.5, 1 / 3)
    assert any("noise on stdout" in ln.text and ln.level == "output" for ln in c.view.logs)
    assert not any("unparsable" in ln.text for ln in c.view.logs)
    assert sum(len(b) for b in c.batches) > 600 > len(c.batches)  # batched, not one message per event


async def test_cancel_ends_whole_group():
    c = Collector()
    runner = Runner(c, grace=2.0)
    job = await runner.start(JobSpec("k", (sys.executable, FAKE, "--steps", "1000", "--delay", "0.05", "--grandchild")))
    for _ in range(200):
        await asyncio.sleep(0.02)
        if any(ln.text.startswith("grandchild") for ln in c.view.logs):
            break
    grandchild = int(next(ln.text for ln in c.view.logs if ln.text.startswith("grandchild")).split()[1])
    runner.cancel("k")
    assert await job.wait() == 130
    assert c.view.status == CANCELLED
    await asyncio.sleep(0.1)
    assert not alive(job.pid) and not alive(grandchild)


async def test_sigint_ignored_escalates_to_sigterm():
    c = Collector()
    runner = Runner(c, grace=0.3)
    job = await runner.start(JobSpec("k", (sys.executable, FAKE, "--steps", "1000", "--delay", "0.05", "--ignore-sigint")))
    await asyncio.sleep(0.5)
    await runner.shutdown()
    assert job.returncode != 0 and c.view.status == CANCELLED and not alive(job.pid)


async def test_crash_reports_error():
    c = Collector()
    job = await Runner(c).start(JobSpec("k", (sys.executable, FAKE, "--steps", "5", "--fail-at", "2")))
    assert await job.wait() == 1
    assert c.view.status == FAILED
    assert "fake engine crashed at step 2" in c.view.errors[0]


async def test_missing_program_fails_cleanly():
    c = Collector()
    job = await Runner(c).start(JobSpec("k", ("/nonexistent/program",)))
    assert await job.wait() == 127 and c.view.status == FAILED
