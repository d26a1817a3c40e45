"""The job protocol end to end: `pinnacle selftest` in a child process, signals, exit codes, the run store."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import Cancelled, InputError
from engine.events import EVENT_TYPES, parse_line, validate_event
from engine.jobs import Job
from engine.runstore import RunLocked, RunStore

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PINNACLE_RUNS", None)
    return subprocess.run([sys.executable, "-m", "console", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60, **kw)


class Child:
    """A selftest child whose events arrive on a pipe (the way the console runs jobs)."""

    def __init__(self, runs: Path, *args: str):
        read_fd, write_fd = os.pipe()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "console", "selftest", "--runs", str(runs), "--events-fd", str(write_fd), *args],
            pass_fds=(write_fd,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        os.close(write_fd)
        self.stream = os.fdopen(read_fd, encoding="utf-8")
        self.events: list[dict] = []

    def read_until(self, kind: str) -> dict:
        for line in self.stream:
            ev = parse_line(line)
            self.events.append(ev)
            if ev["type"] == kind:
                return ev
        raise AssertionError(f"stream ended before a {kind} event; got {[e['type'] for e in self.events]}")

    def finish(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout=timeout)
        self.events += [parse_line(line) for line in self.stream]
        self.stream.close()
        self.proc.stdout.close()
        self.stderr = self.proc.stderr.read()
        self.proc.stderr.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


@pytest.fixture
def child_cleanup():
    children: list[Child] = []
    yield children.append
    for c in children:
        if c.proc.poll() is None:
            c.kill()


def only_run(runs: Path) -> dict:
    recs = RunStore(runs).list()
    assert len(recs) == 1
    return recs[0]


def test_selftest_ok_end_to_end(tmp_path):
    runs, events = tmp_path / "runs", tmp_path / "ev.jsonl"
    res = cli("selftest", "--steps", "4", "--delay", "0.01", "--runs", str(runs), "--events", str(events))
    assert res.returncode == 0, res.stderr
    lines = events.read_text().splitlines()
    evs = [parse_line(x) for x in lines]
    assert all(validate_event(e) is None for e in evs), [validate_event(e) for e in evs]
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert evs[0]["type"] == "run_started" and evs[-1]["type"] == "run_finished"
    assert evs[-1]["status"] == "ok" and evs[-1]["exit_code"] == 0
    assert [e["t"] for e in evs] == sorted(e["t"] for e in evs)
    losses = [e["train_loss"] for e in evs if e["type"] == "epoch"]
    assert len(losses) == 4 and all(a > b for a, b in zip(losses, losses[1:]))
    stages = [e["stage"] for e in evs if e["type"] == "stage"]
    assert stages == ["loading", "training", "evaluating", "saving"]
    rec = only_run(runs)
    run_dir = Path(rec["dir"])
    assert (run_dir / "events.jsonl").read_text() == events.read_text()  # the run keeps the full stream
    assert rec["status"] == "ok" and rec["exit_code"] == 0 and rec["kind"] == "selftest"
    assert set(rec["timings"]) == set(stages) and all(v >= 0 for v in rec["timings"].values())
    assert rec["metrics"]["final_loss"] == pytest.approx(0.25) and rec["key_metric"] == "final_loss"
    for art in [e for e in evs if e["type"] == "artifact"]:
        assert (run_dir / art["path"]).is_file()
    assert {a["kind"] for a in rec["artifacts"]} == {"checkpoint", "result"}
    listing = json.loads(cli("runs", "--runs", str(runs), "--json").stdout)
    assert listing[0]["status"] == "ok" and listing[0]["key_metric"] == {"name": "final_loss", "value": 0.25}
    shown = cli("runs", "show", rec["run_id"][:8], "--runs", str(runs), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["run_id"] == rec["run_id"]
    human = cli("runs", "show", rec["run_id"], "--runs", str(runs))
    for word in ("config", "timings", "metrics", "artifacts", "final_loss", "checkpoints/last.json"):
        assert word in human.stdout


def test_events_on_stdout_stay_machine_clean(tmp_path):
    res = cli("selftest", "--steps", "2", "--delay", "0", "--runs", str(tmp_path), "--events", "-")
    assert res.returncode == 0
    evs = [json.loads(x) for x in res.stdout.splitlines()]  # every stdout line is an event
    assert all(validate_event(e) is None for e in evs) and evs[-1]["type"] == "run_finished"


def test_failure_emits_error_and_exits_1(tmp_path):
    events = tmp_path / "ev.jsonl"
    res = cli("selftest", "--steps", "5", "--delay", "0", "--fail-at", "2", "--runs", str(tmp_path / "r"),
              "--events", str(events))
    assert res.returncode == 1
    evs = [parse_line(x) for x in events.read_text().splitlines()]
    err = [e for e in evs if e["type"] == "error"]
    assert len(err) == 1 and err[0]["kind"] == "RuntimeError" and "step 2" in err[0]["message"]
    assert "Traceback" in err[0]["traceback"]
    assert evs[-1]["type"] == "run_finished" and evs[-1]["status"] == "failed" and evs[-1]["exit_code"] == 1
    rec = only_run(tmp_path / "r")
    assert rec["status"] == "failed" and rec["exit_code"] == 1 and rec["last_epoch"]["epoch"] == 1


@pytest.mark.parametrize("args,source", [(("--steps", "0"), "--steps"), (("--delay", "-1"), "--delay"),
                                          (("--events", "no/such/dir/ev.jsonl"), "--events"),
                                          (("--events-fd", "999"), "--events-fd")])
def test_bad_input_exits_2_and_leaves_no_run(tmp_path, args, source):
    runs = tmp_path / "runs"
    res = cli("selftest", "--runs", str(runs), *args)
    assert res.returncode == 2
    assert res.stderr.startswith(f"pinnacle: error: {source}") and len(res.stderr.strip().splitlines()) == 1
    assert not runs.exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_cancels_with_130_and_saves_partial_results(tmp_path, child_cleanup, sig):
    runs = tmp_path / "runs"
    child = Child(runs, "--steps", "500", "--delay", "0.05")
    child_cleanup(child)
    child.read_until("epoch")
    child.proc.send_signal(sig)
    assert child.finish(timeout=10) == 130
    last = child.events[-1]
    assert last["type"] == "run_finished" and last["status"] == "cancelled" and last["exit_code"] == 130
    rec = json.loads((Path(only_run(runs)["dir"]) / "run.json").read_text())
    assert rec["status"] == "cancelled" and rec["exit_code"] == 130
    run_dir = Path(only_run(runs)["dir"])
    partial = json.loads((run_dir / "partial.json").read_text())
    assert partial["steps_completed"] >= 1
    assert json.loads((run_dir / "checkpoints" / "last.json").read_text())["step"] >= 1
    assert any(e["type"] == "artifact" and e["kind"] == "partial" for e in child.events)
    assert 1 <= rec["last_epoch"]["epoch"] < 500


def test_sigkill_leaves_an_interrupted_run_and_the_lock_refuses_a_second_writer(tmp_path, child_cleanup):
    runs = tmp_path / "runs"
    child = Child(runs, "--steps", "500", "--delay", "0.05")
    child_cleanup(child)
    started = child.read_until("epoch") and child.events[0]
    run_id = started["run_id"]
    store = RunStore(runs)
    assert store.get(run_id)["status"] == "running"
    with pytest.raises(RunLocked):
        store.attach(run_id)  # a second writer while the job is alive
    child.proc.send_signal(signal.SIGKILL)
    assert child.finish() == -signal.SIGKILL
    rec = json.loads((runs / run_id / "run.json").read_text())  # readable, still says running
    assert rec["status"] == "running"
    assert store.get(run_id)["status"] == "interrupted"
    listing = json.loads(cli("runs", "--runs", str(runs), "--json").stdout)
    assert [(r["run_id"], r["status"]) for r in listing] == [(run_id, "interrupted")]
    store.attach(run_id).close()  # the dead writer's lock is gone


def test_in_process_job_maps_endings_to_status_and_restores_signals(tmp_path):
    store = RunStore(tmp_path)
    before = signal.getsignal(signal.SIGINT)
    with Job.start(kind="selftest", store=store, config={}, human=False) as job:
        assert signal.getsignal(signal.SIGINT) is not before
        raise ValueError("inner")
    assert (job.status, job.exit_code) == ("failed", 1)
    assert signal.getsignal(signal.SIGINT) is before
    with Job.start(kind="selftest", store=store, config={}, human=False) as job:
        os.kill(os.getpid(), signal.SIGTERM)  # handled: sets the flag
        assert job.cancelled
        with pytest.raises(Cancelled):
            job.check_cancel()
        job.check_cancel()
    assert (job.status, job.exit_code) == ("cancelled", 130)
    with pytest.raises(InputError):
        with Job.start(kind="selftest", store=store, config={}, human=False) as job:
            raise InputError("data.npz", "diffraction", "a (M, N, N) array")
    assert (job.status, job.exit_code) == ("failed", 2)
    statuses = [r["status"] for r in store.list()]
    assert statuses == ["failed", "cancelled", "failed"]
    for rec in store.list():
        evs = [parse_line(x) for x in (Path(rec["dir"]) / "events.jsonl").read_text().splitlines()]
        assert all(e["type"] in EVENT_TYPES and validate_event(e) is None for e in evs)
        assert evs[-1]["type"] == "run_finished" and evs[-1]["status"] == rec["status"]


def test_second_signal_stops_at_once_and_savers_run(tmp_path):
    store = RunStore(tmp_path)
    saved = []
    reached = []
    with Job.start(kind="selftest", store=store, config={}, human=False) as job:
        job.on_cancel(lambda: saved.append(job.artifact("partial", "partial.json")))
        os.kill(os.getpid(), signal.SIGINT)  # first: only the flag
        reached.append("after first")
        os.kill(os.getpid(), signal.SIGINT)  # second: Cancelled is raised right here
        reached.append("after second")
    assert reached == ["after first"]
    assert (job.status, job.exit_code) == ("cancelled", 130)
    rec = store.get(job.run_id)
    assert rec["status"] == "cancelled" and rec["artifacts"] == [{"kind": "partial", "path": "partial.json"}]
    assert saved and saved[0]["path"] == "partial.json"
