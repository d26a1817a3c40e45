"""The warm worker (console/worker): jobs, exit codes, cancel, crashes on either side, no hang, other users refused.

Most tests use tests/worker_fake.py (the real Worker with a stand-in job, no framework); the last one runs the real
``pinnacle serve`` and ``pinnacle infer`` with PyTorch and compares the result with a cold run.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from console.worker import channel, client

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "worker_fake.py"
TEST = ROOT / "fixtures" / "test.npz"
BOUND_S = 15  # no hang: every stand-in ends well inside this


@pytest.fixture
def sock():
    """A short socket path (Unix socket paths are limited to ~100 bytes) in a private directory."""
    folder = Path(tempfile.mkdtemp(prefix="pw"))
    folder.chmod(0o700)
    yield folder / "w.sock"
    shutil.rmtree(folder, ignore_errors=True)


def _env(sock: Path) -> dict:
    return {**os.environ, channel.SOCKET_ENV: str(sock), "PYTHONUNBUFFERED": "1"}


def _start_fake(sock: Path, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(FAKE), str(sock), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("ready"), proc.stderr.read()
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(BOUND_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _client(sock: Path, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env=_env(sock),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie no longer runs (its reaper may be slow to collect it)


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------------------------- choosing
def test_wanted_only_for_infer_and_reconstruct_without_worker_off(monkeypatch) -> None:
    monkeypatch.delenv(client.MODE_ENV, raising=False)
    assert client.wanted(["infer", "B", "D"]) and client.wanted(["reconstruct", "D", "--worker", "auto"])
    assert not client.wanted(["infer", "B", "D", "--worker", "off"])
    assert not client.wanted(["infer", "B", "D", "--worker=off"])
    assert not client.wanted(["train", "D"]) and not client.wanted(["infer", "--help"])
    monkeypatch.setenv(client.MODE_ENV, "off")
    assert not client.wanted(["infer", "B", "D"])
    assert client.events_fd(["infer", "--events-fd", "7"]) == 7 and client.events_fd(["infer"]) is None


def test_no_worker_means_the_command_runs_here(sock: Path) -> None:
    assert client.forward(["infer", "echo", "3"], sock) is None
    sock.touch()  # a leftover file where nothing listens
    assert client.forward(["infer", "echo", "3"], sock) is None


def test_bad_worker_mode_is_one_line_exit_2(sock: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "console.cli", "infer", "B", "D", "--worker", "sometimes"],
                          cwd=ROOT, env=_env(sock), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "pinnacle: error: --worker: sometimes: auto or off"


# ---------------------------------------------------------------------------------------------------- jobs
def test_a_job_runs_in_a_fork_of_the_worker_with_this_terminal_and_its_exit_code(sock: Path) -> None:
    worker = _start_fake(sock)
    try:
        proc = _client(sock, "infer", "echo", "3")
        out, err = proc.communicate(timeout=BOUND_S)
        assert proc.returncode == 3, err
        word, pid, argv = out.split(" ", 2)
        assert word == "job" and int(pid) not in (proc.pid, worker.pid)  # a fork of the worker, not the client
        assert argv.strip() == "infer echo 3 --worker off"  # the job itself never forwards again
        assert client.ping(sock)["pid"] == worker.pid
    finally:
        _stop(worker)
    assert not sock.exists()  # a stopped worker removes its socket


def test_sigint_to_the_client_cancels_the_job(sock: Path) -> None:
    worker = _start_fake(sock)
    try:
        proc = _client(sock, "infer", "wait")
        assert proc.stdout.readline().startswith("waiting")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=BOUND_S)
        assert proc.returncode == 130 and "cancelled" in out
    finally:
        _stop(worker)


def test_a_job_that_crashes_fails_with_a_message(sock: Path) -> None:
    worker = _start_fake(sock)
    try:
        proc = _client(sock, "infer", "crash")
        _, err = proc.communicate(timeout=BOUND_S)
        assert proc.returncode == 1
        assert "the job's process in the worker died (SIGKILL)" in err
        assert client.ping(sock) is not None  # the worker itself is unharmed
    finally:
        _stop(worker)


def test_a_worker_that_dies_fails_its_job_at_once_and_a_new_one_takes_over(sock: Path) -> None:
    worker = _start_fake(sock)
    proc = _client(sock, "infer", "wait")
    job = int(proc.stdout.readline().split()[1])
    worker.kill()
    worker.wait()
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=BOUND_S)
    assert proc.returncode == 1 and "the reconstruction worker stopped during the job" in err
    assert time.monotonic() - t0 < BOUND_S
    assert _wait_gone(job, BOUND_S)  # the client stopped the orphaned job
    assert sock.exists() and client.ping(sock) is None  # a stale socket: the next worker replaces it
    again = _start_fake(sock)
    try:
        done = _client(sock, "infer", "echo", "0")
        done.communicate(timeout=BOUND_S)
        assert done.returncode == 0
    finally:
        _stop(again)


def test_a_client_that_vanishes_has_its_job_stopped(sock: Path) -> None:
    worker = _start_fake(sock)
    try:
        proc = _client(sock, "infer", "wait")
        job = int(proc.stdout.readline().split()[1])
        proc.kill()
        proc.wait()
        assert _wait_gone(job, BOUND_S)
    finally:
        _stop(worker)


def test_stopping_the_worker_stops_its_jobs_and_tells_their_clients(sock: Path) -> None:
    worker = _start_fake(sock)
    proc = _client(sock, "infer", "wait")
    job = int(proc.stdout.readline().split()[1])
    _stop(worker)
    proc.communicate(timeout=BOUND_S)
    assert proc.returncode == 1  # SIGTERM ended the stand-in: a failure, reported
    assert _gone(job)


# ------------------------------------------------------------------------------------------------- who may talk
def test_the_worker_refuses_another_user(sock: Path) -> None:
    worker = _start_fake(sock, str(os.getuid() + 1))  # serves uid+1 only: we are "another user" to it
    try:
        proc = _client(sock, "infer", "echo", "0")
        _, err = proc.communicate(timeout=BOUND_S)
        assert proc.returncode == 1 and "refused: this worker serves only its own user" in err
    finally:
        _stop(worker)


def test_a_client_trusts_no_socket_another_user_could_own_or_enter(sock: Path) -> None:
    folder = sock.parent
    assert "belongs to another user" in channel.unsafe(folder, os.getuid() + 1, directory=True)
    worker = _start_fake(sock)
    try:
        assert "belongs to another user" in channel.unsafe(sock, os.getuid() + 1)
        assert channel.unsafe(sock, os.getuid()) is None
        folder.chmod(0o755)  # others may enter: anyone could have put the socket there
        assert "mode 0700" in channel.unsafe(folder, os.getuid(), directory=True)
        proc = _client(sock, "infer", "echo", "0", "--runs", str(folder / "runs"))
        _, err = proc.communicate(timeout=120)
        assert "not using the worker" in err and "mode 0700" in err  # ... and it ran here instead
        assert client.ping(sock) is None
    finally:
        folder.chmod(0o700)
        _stop(worker)


# ------------------------------------------------------------------------------------------------- the real one
@pytest.mark.slow
@pytest.mark.torch
def test_pinnacle_serve_runs_infer_and_gives_the_cold_answer(sock: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from engine.bundle import write_bundle
    from engine.config import ModelConfig, RunConfig
    from engine.dataset import load_dataset
    from engine.scaling import compute_scales
    from engine.weights import init_weights

    ds = load_dataset(TEST)
    cfg = RunConfig(model=ModelConfig(n_filters_scale=1))
    bundle = tmp_path / "bundle"
    write_bundle(bundle, weights=init_weights(cfg.model, 0), run_config=cfg,
                 scales=compute_scales(ds.measured, ds.probe), probe=ds.probe, history=[{"epoch": 1}],
                 dataset_fingerprint="x", backend="torch")
    runs = tmp_path / "runs"
    serve = subprocess.Popen([sys.executable, "-m", "console.cli", "serve", "--backend", "torch", "--socket",
                              str(sock)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stdout.readline().startswith(f"worker ready: {sock} (torch;"), serve.stderr.read()
        args = ("infer", str(bundle), str(TEST), "--backend", "torch", "--runs", str(runs), "--no-progress")
        warm = _client(sock, *args)
        warm.communicate(timeout=120)
        cold = _client(sock, *args, "--worker", "off")
        cold.communicate(timeout=300)
        assert warm.returncode == 0 and cold.returncode == 0
    finally:
        _stop(serve)
    warm_dir, cold_dir = sorted(d for d in runs.iterdir() if d.is_dir())  # run ids sort by start time
    warm_run, cold_run = (json.loads((d / "run.json").read_text()) for d in (warm_dir, cold_dir))
    assert warm_run["status"] == cold_run["status"] == "ok"
    assert warm_run["pid"] not in (warm.pid, serve.pid) and cold_run["pid"] == cold.pid
    a = np.load(warm_dir / "recon.npz")["object"]
    b = np.load(cold_dir / "recon.npz")["object"]
    # the same code on the same machine; only thread scheduling may differ: float32 round-off of the stitch sums
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b))
