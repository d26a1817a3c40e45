"""Pilot tests: the console drives real child processes (``pinnacle selftest`` and a fake engine) through the real
runner, and follows runs it did not start (a ``pinnacle selftest`` started here as a plain subprocess, as another
shell would) — stream to completion, cancel (asked first), crash, attach to and cancel an outside run, replay a
finished run from History, previews updating, quit with a running child."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import Static

from console.app import PinnacleApp
from console.messages import JobRequest
from console.runner import JobSpec, console_command
from console.screens.confirm import ConfirmScreen
from console.state import CANCELLED, FAILED, OK, OUTSIDE, STORED
from console.widgets.image import ImageView

FAKE = str(Path(__file__).with_name("fake_engine.py"))
ROOT = str(Path(__file__).resolve().parent.parent)


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


def make_app(tmp_path, **kw) -> PinnacleApp:
    return PinnacleApp(runs=str(tmp_path / "runs"), fixtures=tmp_path, clock=lambda: 0.0, grace=3.0, **kw)


def selftest(*args: str) -> JobRequest:
    return JobRequest("selftest", ("selftest", *args), "selftest", "")


def outside_selftest(runs: Path, *args: str) -> subprocess.Popen:
    """``pinnacle selftest`` started as another shell would: not a child of the console, its own session."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.Popen(console_command(["selftest", *args, "--runs", str(runs), "--no-progress"]), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def header(app) -> str:
    return str(app.screen.query_one("#run-header", Static).render())


async def test_stream_to_completion(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        key = await app.launch(selftest("--steps", "3", "--delay", "0.05"))
        assert await until(pilot, lambda: app.views[key].exit_code is not None)
        view = app.views[key]
        assert view.status == OK and view.epoch == 3 and len(view.train_loss) == 3
        assert view.metric("final_loss") == pytest.approx(1 / 3)
        await pilot.pause()
        assert "ok" in header(app) and "selftest" in header(app)
        record = json.loads((Path(view.run_dir) / "run.json").read_text())
        assert record["status"] == "ok" and app.results_dir == view.run_dir


async def test_cancel_asks_then_ends_child(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        key = await app.launch(selftest("--steps", "1000", "--delay", "0.2"))
        assert await until(pilot, lambda: app.views[key].epoch >= 1)
        pid = app.runner.jobs[key].pid
        await pilot.press("c")
        assert await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # keep running
        assert await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.3)
        assert app.views[key].status == "running" and not app.views[key].cancel_requested
        await pilot.press("c")
        assert await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        assert await until(pilot, lambda: app.views[key].exit_code is not None)
        assert app.views[key].status == CANCELLED and app.views[key].exit_code == 130
        assert gone(pid)
        record = json.loads((Path(app.views[key].run_dir) / "run.json").read_text())
        assert record["status"] == "cancelled"
        await pilot.pause()
        assert "cancelled" in header(app) and "exit 130" in header(app)


async def test_crash_shows_cause_and_app_survives(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        # an engine that dies without an error event: the console shows its exit code and last output line
        await app.start_job(JobSpec("crash", (sys.executable, FAKE, "--steps", "5", "--fail-at", "2"), label="crash"))
        assert await until(pilot, lambda: app.views["crash"].exit_code is not None)
        assert app.views["crash"].status == FAILED
        await pilot.pause()
        failure = app.screen.query_one("#run-failure", Static)
        assert failure.has_class("failed") and "fake engine crashed at step 2" in str(failure.render())
        # selftest's own failure path (error event + run_finished failed): kind and message shown
        key = await app.launch(selftest("--steps", "3", "--delay", "0.01", "--fail-at", "2"))
        assert await until(pilot, lambda: app.views[key].exit_code is not None)
        assert app.views[key].status == FAILED and app.views[key].error[0] == "RuntimeError"
        await pilot.pause()
        assert "RuntimeError: selftest: injected failure at step 2" in str(failure.render())
        await pilot.press("h")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "HistoryScreen"
        assert "RuntimeError: selftest: injected failure at step 2" in str(app.screen.query_one("#hist-detail", Static).render())


async def test_outside_run_is_followed_live_and_cancelled(tmp_path):
    """A `pinnacle selftest` started from another shell appears on the Run screen by itself, live; `c` + `y`
    sends it SIGINT as Ctrl-C would: it ends cancelled with exit 130 and the console shows it."""
    runs = tmp_path / "runs"
    runs.mkdir()
    proc = outside_selftest(runs, "--steps", "1000", "--delay", "0.2")
    try:
        app = make_app(tmp_path, watch=0.2, follow_interval=0.1)
        async with app.run_test(size=(120, 40)) as pilot:
            app.action_show("run")
            assert await until(pilot, lambda: any(v.source == OUTSIDE for v in app.views.values()))
            key = next(k for k, v in app.views.items() if v.source == OUTSIDE)
            assert app.current_run == key
            assert await until(pilot, lambda: app.views[key].epoch >= 2)  # live: epochs keep arriving
            view = app.views[key]
            assert view.pid == proc.pid and view.status == "running" and len(view.train_loss) >= 2
            await pilot.pause()
            assert "started elsewhere" in header(app) and f"pid {proc.pid}" in header(app)
            await pilot.press("c")
            assert await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            assert await until(pilot, lambda: app.views[key].finished)
            assert app.views[key].status == CANCELLED and app.views[key].exit_code == 130
            assert proc.wait(timeout=30) == 130
            record = json.loads((Path(app.views[key].run_dir) / "run.json").read_text())
            assert record["status"] == "cancelled" and record["error"]["kind"] == "Cancelled"
            await pilot.pause()
            assert "cancelled" in header(app) and "exit 130" in header(app)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def test_history_opens_a_live_outside_run_on_the_run_screen(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    proc = outside_selftest(runs, "--steps", "1000", "--delay", "0.2")
    try:
        app = make_app(tmp_path, watch=None, follow_interval=0.1)  # no auto-follow: opened by hand
        async with app.run_test(size=(120, 40)) as pilot:
            assert await until(pilot, lambda: any((p / "run.json").exists() for p in runs.iterdir()))
            app.action_show("history")
            await pilot.pause()
            assert await until(pilot, lambda: "running" in str(app.screen.query_one("#hist-detail", Static).render()))
            await pilot.press("enter")
            assert await until(pilot, lambda: app.screen.__class__.__name__ == "RunScreen")
            key = app.current_run
            assert app.views[key].source == OUTSIDE
            assert await until(pilot, lambda: app.views[key].epoch >= 1)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130


async def test_finished_run_from_history_replays_its_whole_history(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    done = outside_selftest(runs, "--steps", "4", "--delay", "0.01", "--fail-at", "3")
    assert done.wait(timeout=60) == 1
    run_dir = next(runs.iterdir())
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    app = make_app(tmp_path, watch=None)
    async with app.run_test(size=(120, 40)) as pilot:
        app.action_show("history")
        await pilot.pause()
        assert "RuntimeError: selftest: injected failure at step 3" in str(app.screen.query_one("#hist-detail", Static).render())
        await pilot.press("enter")
        assert await until(pilot, lambda: app.screen.__class__.__name__ == "ResultsScreen")
        assert "RuntimeError: selftest: injected failure at step 3" in str(app.screen.query_one("#res-head", Static).render())
        view = app.views[app.current_run]
        assert view.source == STORED and view.status == FAILED and view.events == len(lines)
        assert view.epoch == 2 and view.error == ("RuntimeError", "selftest: injected failure at step 3")
        await pilot.press("r")
        await pilot.pause()
        assert "failed" in header(app) and "from the run store" in header(app)
        assert "injected failure" in str(app.screen.query_one("#run-failure", Static).render())


async def test_preview_updates_as_epochs_go(tmp_path):
    run_dir = tmp_path / "fake-run"
    run_dir.mkdir()
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        # a second between previews: even a loaded machine shows the first before the second arrives
        await app.start_job(JobSpec("fake", (sys.executable, FAKE, "--steps", "4", "--delay", "1.0", "--progress-per-step",
                                             "2", "--run-dir", str(run_dir), "--previews", "2"), label="fake"))
        amp = app.screen.query_one("#run-preview-amplitude", ImageView)
        assert await until(pilot, lambda: amp.array is not None)
        first = amp.array.copy()
        title = str(app.screen.query_one("#run-preview-title", Static).render())
        assert "epoch 2" in title and "phase SSIM 0.550" in title
        assert await until(pilot, lambda: "epoch 4" in str(app.screen.query_one("#run-preview-title", Static).render()))
        assert not np.array_equal(first, amp.array)  # the picture changed with the new preview
        assert await until(pilot, lambda: app.views["fake"].finished)


def test_quit_with_running_child_asks_and_leaves_no_orphan(tmp_path):
    """Quit (q) while a job runs: the app asks, then cancels it and waits; the child and its group are gone."""
    script = f"""
import asyncio, sys
sys.path.insert(0, {ROOT!r})
from console.app import PinnacleApp
from console.messages import JobRequest
from console.screens.confirm import ConfirmScreen
async def main():
    app = PinnacleApp(runs={str(tmp_path / 'runs')!r}, fixtures={str(tmp_path)!r}, grace=3.0)
    async with app.run_test() as pilot:
        key = await app.launch(JobRequest("selftest", ("selftest", "--steps", "1000", "--delay", "0.2"), "long", ""))
        for _ in range(400):
            if app.views[key].epoch >= 1: break
            await pilot.pause(0.05)
        print("PID", app.runner.jobs[key].pid, flush=True)
        await pilot.press("q")
        await pilot.pause(0.2)
        print("ASKED", isinstance(app.screen, ConfirmScreen), flush=True)
        await pilot.press("y")
        await pilot.pause(0.1)
        print("STATUS", app.views[key].status, app.runner.jobs[key].returncode, flush=True)
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    pid = int(next(ln for ln in out.stdout.splitlines() if ln.startswith("PID")).split()[1])
    assert "ASKED True" in out.stdout and "STATUS cancelled 130" in out.stdout
    assert gone(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing left in the child's process group


async def test_launch_command_preview_follows_the_backend_and_escape_frees_screen_keys(tmp_path):
    (tmp_path / "train.npz").write_bytes(b"")
    app = make_app(tmp_path)
    app.selected_dataset = str(tmp_path / "train.npz")
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_show("launch")
        await pilot.pause()
        command = lambda: str(app.screen.query_one("#launch-command", Static).render())  # noqa: E731
        assert "--backend tensorflow" in command()
        await pilot.press("right", "enter")  # the backend selector has the focus: PyTorch
        await pilot.pause()
        assert "--backend torch" in command() and "tensorflow" not in command()
        app.screen.query_one("#in-epochs").focus()
        await pilot.press("end", "backspace", "backspace", "3")
        await pilot.pause()
        assert "--epochs 3" in command()
        assert "--lr-schedule" not in command() and "augment" not in command()  # the defaults add nothing
        app.screen.query_one("#choice-lr-schedule").focus()
        await pilot.press("right", "enter")
        app.screen.query_one("#choice-augment").focus()
        await pilot.press("right", "enter")
        await pilot.pause()
        assert "--lr-schedule cosine --no-augment" in command()
        app.screen.query_one("#in-epochs").focus()
        await pilot.press("h")  # typed into the field, not a screen key
        assert app.screen.__class__.__name__ == "LaunchScreen"
        await pilot.press("escape", "h")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "HistoryScreen"


async def test_help_opens_and_closes_itself_with_each_of_its_keys(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("escape", "q", "question_mark", "f1"):
            await pilot.press("question_mark")
            await pilot.pause()
            assert app.screen.__class__.__name__ == "HelpScreen"
            await pilot.press(key)
            await pilot.pause()
            assert app.screen.__class__.__name__ == "DatasetsScreen", key


def test_console_never_imports_frameworks():
    code = ("import sys; import console.app, console.cli\n"
            "from console.screens import datasets, launch, run, results, parity, history, help, confirm\n"
            "import console.follow, console.readers, console.launching, console.widgets.loss_plot\n"
            "bad = [m for m in ('tensorflow', 'torch', 'keras', 'lightning') if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.slow
@pytest.mark.torch
async def test_reconstructions_run_in_the_console_s_worker_which_is_restarted_when_it_died(tmp_path):
    """The console starts its worker on the first reconstruction, the job runs in a fork of it (the run's pid is
    not the console's child), a dead worker is restarted at the next launch, and closing the console stops it."""
    pytest.importorskip("torch")
    import shutil
    import tempfile

    from console.launching import reconstruct_request
    from console.worker import client
    from console.worker.keeper import WorkerKeeper

    folder = Path(tempfile.mkdtemp(prefix="pw"))
    folder.chmod(0o700)
    sock = folder / "w.sock"
    keeper = WorkerKeeper((sys.executable, str(Path(__file__).with_name("worker_fake.py")), "--real"), path=sock,
                          log=tmp_path / "worker.log")  # a real worker that warms nothing: a quick start
    scan = str(Path(ROOT) / "fixtures" / "test.npz")
    request = reconstruct_request("iterative", scan, None, "torch", "1")
    app = make_app(tmp_path, worker=keeper)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            assert keeper.ensure() == "started"
            assert await until(pilot, lambda: client.ping(sock) is not None)
            key = await app.launch(request)
            assert await until(pilot, lambda: app.views[key].exit_code is not None, tries=1200)
            view = app.views[key]
            assert view.status == OK, (tmp_path / "worker.log").read_text()
            record = json.loads((Path(view.run_dir) / "run.json").read_text())
            assert record["pid"] != app.runner.jobs[key].pid  # ran in the worker, not in the console's child
            first = keeper.proc.pid
            keeper.proc.kill()
            keeper.proc.wait()
            again = await app.launch(request)  # finds it dead: restarted (this job may run cold meanwhile)
            assert keeper.starts == 2 and keeper.proc.pid != first
            assert await until(pilot, lambda: app.views[again].exit_code is not None, tries=1200)
            assert app.views[again].status == OK
        assert keeper.proc.poll() is not None  # the console closed: its worker stopped
    finally:
        keeper.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def test_a_refused_launch_says_ready_once_the_form_is_complete(tmp_path):
    """ctrl+o on an empty Reconstruct form refuses ("not started: fix what the red line above says") and focuses the
    scan field; once a scan is typed the red line is gone, so the status no longer points at it."""
    scan = tmp_path / "scan.npz"
    scan.write_bytes(b"")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_show("launch")
        await pilot.pause()
        status = lambda: str(app.screen.query_one("#launch-status", Static).render())  # noqa: E731
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert "not started" in status() and app.focused.id == "in-scan"
        await pilot.press("shift+tab", "down", "down", "enter")  # method: iterative (needs no bundle)
        app.screen.query_one("#in-scan").focus()
        await pilot.press(*str(scan))
        await pilot.pause()
        assert "not started" not in status() and "ready: ctrl+o" in status()
        assert "--method iterative" in str(app.screen.query_one("#launch-command", Static).render())
