"""Pilot tests: the console drives real child processes (``pinnacle selftest`` and a crashing fake engine)
through the real runner — stream to completion, cancel, crash, quit with a running child."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from console.app import PinnacleApp
from console.runner import JobSpec
from console.state import CANCELLED, FAILED, OK
from textual.widgets import Static

FAKE = str(Path(__file__).with_name("fake_engine.py"))


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def until(pilot, cond, tries=400):
    for _ in range(tries):
        if cond():
            return True
        await pilot.pause(0.05)
    return cond()


def make_app(tmp_path) -> PinnacleApp:
    return PinnacleApp(runs=str(tmp_path / "runs"), fixtures=tmp_path, clock=lambda: 0.0, grace=3.0)


async def test_stream_to_completion(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        key = await app.launch("selftest", ["selftest", "--steps", "3", "--delay", "0.05"], "selftest")
        assert await until(pilot, lambda: app.views[key].exit_code is not None)
        view = app.views[key]
        assert view.status == OK and view.epoch == 3 and len(view.train_loss) == 3
        assert view.metric("final_loss") == pytest.approx(1 / 3)
        await pilot.pause()
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "ok" in header and "selftest" in header
        record = json.loads((Path(view.run_dir) / "run.json").read_text())
        assert record["status"] == "ok" and app.results_dir == view.run_dir


async def test_cancel_ends_child(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        key = await app.launch("selftest", ["selftest", "--steps", "1000", "--delay", "0.2"], "long selftest")
        assert await until(pilot, lambda: app.views[key].epoch >= 1)
        pid = app.runner.jobs[key].pid
        await pilot.press("c")
        assert await until(pilot, lambda: app.views[key].exit_code is not None)
        assert app.views[key].status == CANCELLED and app.views[key].exit_code == 130
        assert gone(pid)
        record = json.loads((Path(app.views[key].run_dir) / "run.json").read_text())
        assert record["status"] == "cancelled"
        assert "cancelled" in str(app.screen.query_one("#run-header", Static).render())


async def test_crash_shows_error_and_app_survives(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        # an engine that dies without an error event: the console shows its last output line
        await app.start_job(JobSpec("crash", (sys.executable, FAKE, "--steps", "5", "--fail-at", "2"), label="crash"))
        assert await until(pilot, lambda: app.views["crash"].exit_code is not None)
        assert app.views["crash"].status == FAILED
        await pilot.pause()
        errors = app.screen.query_one("#run-errors", Static)
        assert errors.has_class("has-errors") and "fake engine crashed at step 2" in str(errors.render())
        # selftest's own failure path (error event + run_finished failed), then the app still works
        key = await app.launch("selftest", ["selftest", "--steps", "3", "--delay", "0.01", "--fail-at", "2"], "fails")
        assert await until(pilot, lambda: app.views[key].exit_code is not None)
        assert app.views[key].status == FAILED and "injected failure" in " ".join(app.views[key].errors)
        await pilot.press("h")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "HistoryScreen"


def test_quit_with_running_child_leaves_no_orphan(tmp_path):
    """Quit (q) while a job runs: the app cancels it and waits; the child and its group are gone after exit."""
    script = f"""
import asyncio, sys
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
from console.app import PinnacleApp
async def main():
    app = PinnacleApp(runs={str(tmp_path / 'runs')!r}, fixtures={str(tmp_path)!r}, grace=3.0)
    async with app.run_test() as pilot:
        key = await app.launch("selftest", ["selftest", "--steps", "1000", "--delay", "0.2"], "long")
        for _ in range(400):
            if app.views[key].epoch >= 1: break
            await pilot.pause(0.05)
        print("PID", app.runner.jobs[key].pid, flush=True)
        await pilot.press("q")
        await pilot.pause(0.1)
        print("STATUS", app.views[key].status, app.runner.jobs[key].returncode, flush=True)
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    pid = int(next(ln for ln in out.stdout.splitlines() if ln.startswith("PID")).split()[1])
    assert "STATUS cancelled 130" in out.stdout
    assert gone(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing left in the child's process group


def test_console_never_imports_frameworks():
    code = ("import sys; import console.app, console.cli\n"
            "from console.screens import datasets, launch, run, results, parity, history, help\n"
            "bad = [m for m in ('tensorflow', 'torch', 'keras', 'lightning') if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
