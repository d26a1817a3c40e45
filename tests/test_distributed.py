"""Data-parallel training (engine/distributed.py, docs/scaling.md): 2 processes on this CPU machine, both backends.

Fast tests pin the backend-neutral pieces (batch split, topology, refusals). The ``slow`` ones start real ranks —
gloo for torch, TensorFlow workers on localhost ports — and check: one step of 2 replicas × b is one step of 2b in
one process (level-2 style, tolerances from engine.parity); a 2-process training of the fixture is one run with one
bundle and one event stream, whose bundle the other backend infers with; a killed rank fails the run in bounded
time; SIGINT to the launcher cancels every rank. Every child imports one framework.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from engine import distributed
from engine.errors import InputError

try:  # the tolerances' module: engine/parity/checks.py on main since the parity package split, engine/parity.py before
    from engine.parity import checks as parity
except ImportError:
    from engine import parity

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "fixtures" / "train.npz"
TEST = ROOT / "fixtures" / "test.npz"
INSTALLED = [b for b, mod in (("tensorflow", "tensorflow"), ("torch", "lightning")) if importlib.util.find_spec(mod)]
#: A killed rank must fail the run within this many seconds: gloo sees the closed socket at once, TensorFlow's
#: peer health check within ~10 s; the rest is the launcher's grace and writing the run's end.
DEAD_RANK_BOUND_S = 60.0


# ------------------------------------------------------------------------------------------------- fast
def test_shard_splits_every_global_batch_into_contiguous_slices_with_their_share():
    sel = np.arange(100, 108)
    parts = [distributed.shard(sel, r, 2) for r in range(2)]
    assert [p.tolist() for p, _ in parts] == [[100, 101, 102, 103], [104, 105, 106, 107]]
    assert [s for _, s in parts] == [0.5, 0.5]
    short = [distributed.shard(np.arange(3), r, 2) for r in range(2)]  # a short last batch
    assert sum(len(p) * (s > 0) for p, s in short) == 3 and sum(s for _, s in short) == pytest.approx(1.0)
    lone = [distributed.shard(np.array([7]), r, 2) for r in range(2)]  # one group, two replicas
    assert sorted(s for _, s in lone) == [0.0, 1.0] and all(p.tolist() == [7] for p, _ in lone)  # stand-in, share 0


def test_the_global_batch_must_divide_across_replicas():
    distributed.check_batch(16, 2)
    distributed.check_batch(15, 1)
    with pytest.raises(InputError, match="multiple of the 2 replicas"):
        distributed.check_batch(15, 2)


def test_plan_one_process_spawned_ranks_and_outside_launchers():
    assert distributed.plan(1, 1, env={}) is None
    spawned = distributed.plan(2, 1, env={})
    assert (spawned.world, spawned.rank, spawned.spawned, len(set(spawned.ports))) == (2, 0, True, 3)
    child = distributed.from_env(spawned.worker_env(1))
    assert (child.rank, child.world, child.local_rank, child.ports, child.spawned) == (1, 2, 1, spawned.ports, True)
    with pytest.raises(InputError, match="srun or torchrun"):
        distributed.plan(2, 2, env={})
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1",
                "MASTER_ADDR": "node0", "MASTER_PORT": "29400"}
    t = distributed.plan(2, 2, env=torchrun)
    assert (t.rank, t.node_rank, t.local_rank, t.address, t.ports, t.spawned) == (3, 1, 1, "node0", (29400,), False)
    with pytest.raises(InputError, match="4 processes"):
        distributed.plan(1, 2, env=torchrun)
    slurm = {"SLURM_PROCID": "2", "SLURM_STEP_NUM_TASKS": "4", "SLURM_LOCALID": "0", "SLURM_NODEID": "1",
             "SLURM_STEP_NUM_NODES": "2", "MASTER_ADDR": "node0"}
    s = distributed.plan(2, 2, env=slurm)
    assert (s.rank, s.node_rank, s.per_node, s.ports) == (2, 1, 2, (29500,))
    with pytest.raises(InputError, match="MASTER_ADDR"):
        distributed.from_env({k: v for k, v in slurm.items() if k != "MASTER_ADDR"})
    assert distributed.from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) is None  # the batch script itself
    with pytest.raises(InputError, match="TIMEOUT"):
        distributed.plan(2, 1, env={"PINNACLE_COLLECTIVE_TIMEOUT_S": "0"})


@pytest.fixture
def fake(monkeypatch):
    """A backend that refuses nothing and must not be asked to train or predict: the refusals come first."""
    def train(*args, **kw):
        raise AssertionError("ran despite bad input")

    backend = SimpleNamespace(train=train, predict=train, check_devices=lambda accelerator, devices, num_nodes=1: None,
                              replica_processes=lambda accelerator, devices: distributed.device_count(devices))
    monkeypatch.setattr("engine.backends.load_backend", lambda name: backend)


@pytest.mark.parametrize("args, match", [
    (["--devices", "2", "--batch-size", "15"], "--batch-size: 15: a multiple of the 2 replicas"),
    (["--devices", "2", "--num-nodes", "2"], "--num-nodes: 2: a launcher that starts the ranks"),
    (["--num-nodes", "0"], "--num-nodes: 0: a node count >= 1"),
])
def test_bad_replica_options_exit_2_with_one_line_and_no_run(fake, tmp_path, capsys, args, match):
    from console.cli import main

    runs = tmp_path / "runs"
    assert main(["train", str(TRAIN), "--runs", str(runs), "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
    assert not runs.exists() or not any(runs.iterdir())


# ------------------------------------------------------------------------------------------------- slow
def _env(extra: dict | None = None) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
            **(extra or {})}


def _step(backend: str, out: Path, topology: distributed.Topology | None = None) -> subprocess.Popen:
    env = _env(topology.worker_env(topology.rank) if topology else None)
    return subprocess.Popen([sys.executable, "-m", "tests.dp_step_probe", backend, str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> None:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("backend", INSTALLED)
def test_one_step_of_two_replicas_is_one_step_of_the_whole_batch(backend, tmp_path):
    """2 replicas × b = 4 groups against one process at 2b = 8, through each backend's real ``train``.

    The applied gradient is Adam's first moment m = (1 − β₁)·g read from the checkpoint. The two runs differ only in
    the float32 summation order (one mean over K = 2b·N² pixels against two means over b·N², averaged), so per
    parameter tensor ‖Δg‖/‖g‖ ≤ engine.parity.gradient_tolerance(K) = 2·CANCELLATION·γ_K (Higham's bound for any
    order, on any CPU), 9.8e-3 at K = 8192; the floor γ_K·‖g_all‖ stands in for a tensor whose whole gradient is
    round-off (the phase head's bias). A gradient summed instead of averaged, or a replica on the wrong slice, is
    an error of order 1. The step itself is compared as level 2 does (engine.parity.STEP_AGREE): over components
    whose gradients agree to 1 %, Adam's first update lr·g/(|g| + ε̂) agrees to 1 % of lr.
    """
    topology = distributed.plan(2, 1, env={})
    ranks = [_step(backend, tmp_path / "two.npz", replace(topology, rank=r, local_rank=r)) for r in (1, 0)]
    _finish(_step(backend, tmp_path / "one.npz"))
    for proc in ranks:
        _finish(proc)
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    names = sorted(k[2:] for k in one.files if k.startswith("m/"))
    K = 8 * 32 * 32  # 2b patterns of N² pixels: the longest reduction (a first-layer parameter's gradient)
    tol, g_all = parity.gradient_tolerance(K), np.sqrt(sum(np.sum(one[f"m/{k}"].astype(float) ** 2) for k in names))
    errors = {}
    for k in names:
        a, b = one[f"m/{k}"].astype(float), two[f"m/{k}"].astype(float)
        errors[k] = np.linalg.norm(a - b) / max(np.linalg.norm(a), parity.gamma(K) * g_all)
    assert max(errors.values()) <= tol, {k: e for k, e in errors.items() if e > tol}
    assert int(two["samples"]) == 8 and float(two["loss"]) == pytest.approx(float(one["loss"]), rel=2 * parity.gamma(K))
    m1 = np.concatenate([one[f"m/{k}"].ravel() for k in names]).astype(float)
    m2 = np.concatenate([two[f"m/{k}"].ravel() for k in names]).astype(float)
    agree = np.abs(m1 - m2) <= parity.STEP_AGREE * np.abs(m1)
    w1 = np.concatenate([one[f"w/{k}"].ravel() for k in names]).astype(float)
    w2 = np.concatenate([two[f"w/{k}"].ravel() for k in names]).astype(float)
    lr = 1e-3  # tests/backend_cases.setup
    assert agree.mean() > 0.9 and np.max(np.abs(w1 - w2)[agree]) / lr <= parity.STEP_AGREE


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _runs(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("backend", INSTALLED)
def test_two_process_training_is_one_run_one_bundle_one_event_stream(backend, tmp_path):
    runs, ev = tmp_path / "runs", tmp_path / "events.jsonl"
    proc = _cli("train", str(TRAIN), "--backend", backend, "--devices", "2", "--epochs", "1", "--batch-size", "16",
                "--runs", str(runs), "--events", str(ev), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = _runs(runs)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "ok" and record["config"]["training"]["batch_size"] == 16
    events = _events(ev)
    groups = next(int(e["message"].split()[0]) for e in events if e["type"] == "log" and "training and" in e["message"])
    assert [e["type"] for e in events].count("run_started") == 1 and events[-1]["type"] == "run_finished"
    assert len({e["run_id"] for e in events}) == 1 and _events(run / "events.jsonl") == events
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1]
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == -(-groups // 16)  # one epoch of global batches of 16
    assert {p.name for p in run.iterdir()} >= {"bundle", "checkpoints", "events.jsonl", "run.json"}
    from engine.bundle import load_bundle

    bundle = load_bundle(run / "bundle")
    assert bundle.backend == backend and len(bundle.history) == 1
    other = next((b for b in INSTALLED if b != backend), backend)  # one device, the other backend when it is here
    proc = _cli("infer", str(run / "bundle"), str(TEST), "--backend", other, "--runs", str(tmp_path / "infer"),
                "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (inferred,) = _runs(tmp_path / "infer")
    assert json.loads((inferred / "run.json").read_text())["status"] == "ok"


def _launch(backend: str, runs: Path, ev: Path, epochs: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "console.cli", "train", str(TRAIN), "--backend", backend,
                             "--devices", "2", "--epochs", str(epochs), "--runs", str(runs), "--events", str(ev),
                             "--no-progress"], cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_steps(proc: subprocess.Popen, ev: Path, steps: int, timeout: float = 240) -> None:
    """Until the run has reported ``steps`` training batches (every rank is in the training loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        if ev.exists() and any(e["type"] == "progress" and e["done"] >= steps for e in _events(ev)):
            return
        time.sleep(0.2)
    raise AssertionError("training did not start")


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def ranks_through_proc(test):
    """The marks of a slow test, per installed backend, that finds a launcher's ranks through /proc."""
    marks = (pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the ranks "
             "through /proc"), pytest.mark.parametrize("backend", INSTALLED))
    for mark in marks:
        test = mark(test)
    return test


@contextlib.contextmanager
def _two_ranks_training(backend: str, runs: Path, ev: Path):
    """A 2-rank training two steps in: (launcher process, rank 1's pid); the launcher is killed if still alive."""
    proc = _launch(backend, runs, ev, epochs=50)
    try:
        _wait_for_steps(proc, ev, 2)
        (rank1,) = _children(proc.pid)
        yield proc, rank1
    finally:
        if proc.poll() is None:
            proc.kill()


@ranks_through_proc
def test_a_killed_rank_fails_the_run_in_bounded_time(backend, tmp_path):
    runs, ev = tmp_path / "runs", tmp_path / "events.jsonl"
    with _two_ranks_training(backend, runs, ev) as (proc, rank1):
        os.kill(rank1, signal.SIGKILL)
        t0 = time.monotonic()
        proc.wait(timeout=DEAD_RANK_BOUND_S)
        assert time.monotonic() - t0 <= DEAD_RANK_BOUND_S
    assert proc.returncode == 1
    (run,) = _runs(runs)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "rank 1 failed (killed by SIGKILL)" in record["error"]["message"]
    assert _events(ev)[-1]["type"] == "run_finished"


@ranks_through_proc
def test_sigint_to_the_launcher_cancels_every_rank(backend, tmp_path):
    runs, ev = tmp_path / "runs", tmp_path / "events.jsonl"
    with _two_ranks_training(backend, runs, ev) as (proc, rank1):
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=DEAD_RANK_BOUND_S)
    assert proc.returncode == 130
    (run,) = _runs(runs)
    assert json.loads((run / "run.json").read_text())["status"] == "cancelled"
    assert not Path(f"/proc/{rank1}").exists() or "zombie" in Path(f"/proc/{rank1}/status").read_text()


def test_a_rank_that_dies_before_training_ends_the_run_from_the_watchdog(tmp_path):
    """A child that fails at once (here: an empty spec) while rank 0 would wait in a native call: the watchdog
    calls ``abort`` with the rank's exit code and its last lines, after the grace period."""
    from engine.launcher import LocalRanks, RankFailed

    aborted = []
    t0 = time.monotonic()
    with LocalRanks(distributed.plan(2, 1, env={}), {}, abort=aborted.append, grace_s=0.5) as ranks:
        while not aborted and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        assert ranks.procs[1].poll() not in (None, 0)
    (exc,) = aborted
    assert isinstance(exc, RankFailed) and "rank 1 failed (exit code 1)" in str(exc) and "KeyError" in str(exc)


def test_barrier_meets_every_rank_and_names_the_missing_ones():
    import threading

    topology = replace(distributed.plan(3, 1, env={}), timeout_s=20.0)
    others = [threading.Thread(target=distributed.barrier, args=(replace(topology, rank=r),)) for r in (1, 2)]
    for t in others:
        t.start()
    distributed.barrier(topology)
    for t in others:
        t.join(timeout=20)
        assert not t.is_alive()
    with pytest.raises(TimeoutError, match=r"ranks \[1, 2\] did not start within 0.5 s"):
        distributed.barrier(replace(distributed.plan(3, 1, env={}), timeout_s=0.5))
