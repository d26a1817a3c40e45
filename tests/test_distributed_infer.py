"""Inference across ranks (engine/inference.py, engine/shards.py, docs/scaling.md "Distributed inference").

Fast tests pin the gather (threads stand in for ranks: shards land in order, a rank that dies or never comes fails
the gather in bounded time) and the refusals. The ``slow`` ones run ``pinnacle infer --devices 2`` on the fixture
with each backend: the same recon.npz as one process within float32 round-off, one run; a killed rank fails the run
in bounded time; SIGINT to rank 0 cancels every rank.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine import distributed
from engine.launcher import RankFailed
from engine.shards import ShardGather, ShardSender
from tests.test_distributed import (DEAD_RANK_BOUND_S, INSTALLED, ROOT, TEST, TRAIN, _children, _env, _events, _runs,
                                   fake, ranks_through_proc)  # noqa: F401  (fake: the fixture, used by name)

try:  # the tolerances' module (see tests/test_distributed.py)
    from engine.parity import checks as parity
except ImportError:
    from engine import parity


# ------------------------------------------------------------------------------------------------- fast
def _fake_predict(cfg, weights, consts, x, offsets, batch_size, *, progress=None, **kw):
    """A 'network' whose patch says which group it came from (x holds the group index), batch by batch."""
    out = np.empty((len(x), 1, 2, 2), np.complex64)
    for s in range(0, len(x), batch_size):
        out[s:s + batch_size] = x[s:s + batch_size] * (1 + 1j)
        if progress is not None:
            progress(min(s + batch_size, len(x)), len(x))
    return out


def _rank(topology: distributed.Topology, x: np.ndarray, crash: bool = False) -> None:
    """What engine.replica.infer_replica does with a shard, minus the network; ``crash``: die after one batch."""
    sender = ShardSender(topology)
    part = x[distributed.span(len(x), topology.rank, topology.world)]
    if crash:
        sender.progress(1)
        sender.close()
        return
    sender.send(_fake_predict(None, None, None, part, None, 3, progress=sender.progress))
    sender.close()


def test_rank_0_gathers_every_shard_in_the_original_order():
    topology = replace(distributed.plan(3, 1, env={}), timeout_s=20.0)
    x = np.broadcast_to(np.arange(10, dtype=np.float32)[:, None, None, None], (10, 1, 2, 2)).copy()
    others = [threading.Thread(target=_rank, args=(replace(topology, rank=r), x)) for r in (1, 2)]
    for t in others:
        t.start()
    seen = []
    with ShardGather(topology) as gather:
        out = gather.sharded(_fake_predict)(None, None, None, x, None, 3, progress=lambda d, t: seen.append(d))
    for t in others:
        t.join(timeout=20)
    assert np.array_equal(out, x * (1 + 1j)) and out.dtype == np.complex64
    assert seen == sorted(seen) and seen[-1] == 10  # progress counts every rank's groups, up to all of them


def test_a_rank_that_dies_or_never_comes_fails_the_gather_in_bounded_time():
    topology = replace(distributed.plan(2, 1, env={}), timeout_s=20.0)
    x = np.zeros((6, 1, 2, 2), np.float32)
    crashed = threading.Thread(target=_rank, args=(replace(topology, rank=1), x, True))
    crashed.start()
    with pytest.raises(RankFailed, match="rank 1 closed its connection after 1 groups"), ShardGather(topology) as g:
        g.sharded(_fake_predict)(None, None, None, x, None, 3)
    crashed.join(timeout=20)
    alone = replace(distributed.plan(2, 1, env={}), timeout_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(RankFailed, match=r"ranks \[1\] did not connect to rank 0 within 0.5 s"), \
            ShardGather(alone) as g:
        g.sharded(_fake_predict)(None, None, None, x, None, 3)
    assert time.monotonic() - t0 < 5
    with pytest.raises(RankFailed, match="rank 1 failed"), ShardGather(topology, failed=lambda: ["rank 1 failed"]) as g:
        g.sharded(_fake_predict)(None, None, None, x, None, 3)  # a local rank's death, seen by the launcher


@pytest.mark.parametrize("args, match", [
    (["--devices", "0"], "--devices: 0: a device count >= 1"),
    (["--devices", "0,1"], "--devices: 0,1: a count for infer"),
    (["--devices", "500"], "--devices: 500 x --num-nodes 1: at most 196 ranks"),  # the fixture has 196 groups
    (["--devices", "2", "--num-nodes", "2"], "--num-nodes: 2: a launcher that starts the ranks"),
])
def test_bad_rank_options_exit_2_with_one_line_and_no_run(fake, tmp_path, capsys, args, match):
    from console.cli import main

    runs = tmp_path / "runs"
    assert main(["infer", str(_bundle(tmp_path, "torch")), str(TEST), "--runs", str(runs), "--no-progress",
                 *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
    assert not runs.exists() or not any(runs.iterdir())


# ------------------------------------------------------------------------------------------------- slow
def _bundle(tmp_path: Path, backend: str) -> Path:
    """The CI-size network at its seeded initial weights, as a bundle: it predicts a different patch for every
    pattern (the input differs), so a shard gathered out of order shows; no training needed to compare ranks."""
    from engine.bundle import write_bundle
    from engine.config import ModelConfig, RunConfig, TrainingConfig
    from engine.pipeline import load_data
    from engine.scaling import compute_scales
    from engine.weights import init_weights

    path = tmp_path / f"bundle-{backend}"
    if not path.exists():
        ds = load_data(TRAIN, require_probe=True)
        cfg = RunConfig(model=ModelConfig(N=ds.N, n_filters_scale=1), training=TrainingConfig(), backend=backend)
        write_bundle(path, weights=init_weights(cfg.model, 0), run_config=cfg,
                     scales=compute_scales(ds.measured, ds.probe), probe=ds.probe,
                     history=[{"epoch": 0, "train_loss": 1.0}], dataset_fingerprint="fixture", backend=backend)
    return path


def _infer(bundle: Path, backend: str, runs: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "console.cli", "infer", str(bundle), str(TEST), "--backend",
                             backend, "--runs", str(runs), "--no-progress", "--worker", "off", *extra], cwd=ROOT,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def round_off_tolerance(weights: dict[str, np.ndarray]) -> float:
    """‖O₂ − O₁‖ / ‖O₁‖ allowed between the objects of 1 and 2 processes.

    The two runs feed every pattern through the same weights; only the float32 summation order inside each
    convolution can differ (other batch boundaries: rank 1's shard starts mid-scan; one thread per process instead
    of two: the libraries block their reductions by shape and thread count). A convolution output sums
    K = c_in·3·3 products, and in ANY order its float32 value is within γ_K·Σ|terms| of the exact one (Higham);
    parity.CANCELLATION turns Σ|terms| into |output|. To first order these relative errors add up along the
    network (ReLU, pooling, upsampling and the heads' sigmoid/tanh are 1-Lipschitz; their own round-off is a few u),
    so each run's patch is within CANCELLATION·Σ_l γ_{K_l} of the exact one — summed over every kernel of the
    bundle, a bound for the longest path — and two runs within twice that. Stitching is the same numpy code on
    both: a weighted average of the patches, which cannot raise a relative error. A shard placed at the wrong
    groups is an error of order 1.
    """
    return 2 * parity.CANCELLATION * sum(parity.gamma(w[0].size) for w in weights.values() if w.ndim == 4)


@pytest.mark.slow
@pytest.mark.parametrize("backend", INSTALLED)
def test_two_process_infer_is_one_run_with_the_one_process_object(backend, tmp_path):
    from engine.bundle import load_bundle

    bundle = _bundle(tmp_path, backend)
    one, two = _infer(bundle, backend, tmp_path / "one"), _infer(bundle, backend, tmp_path / "two", "--devices", "2")
    for proc in (one, two):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    (run1,), (run2,) = _runs(tmp_path / "one"), _runs(tmp_path / "two")
    record = json.loads((run2 / "run.json").read_text())
    assert record["status"] == "ok" and record["config"]["ranks"] == 2
    events = _events(run2 / "events.jsonl")
    assert [e["type"] for e in events].count("run_started") == 1 and events[-1]["type"] == "run_finished"
    assert any("inference on 2 ranks" in e.get("message", "") for e in events)
    assert {p.name for p in run2.iterdir()} >= {"recon.npz", "metrics.json", "product.h5", "amplitude.png"}
    o1, o2 = np.load(run1 / "recon.npz")["object"], np.load(run2 / "recon.npz")["object"]
    tol = round_off_tolerance(load_bundle(bundle).weights)
    assert o1.shape == o2.shape and np.linalg.norm(o2 - o1) / np.linalg.norm(o1) <= tol


def _wait_for_rank_1(proc: subprocess.Popen, runs: Path, timeout: float = 120) -> int:
    """Rank 1's pid, once rank 0 has started the run and it (timing: before it could have finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        kids = _children(proc.pid) if _runs(runs) else []
        if kids:
            return kids[0]
        time.sleep(0.05)
    raise AssertionError("rank 1 did not start")


@ranks_through_proc
def test_a_killed_rank_fails_the_infer_run_and_sigint_cancels_every_rank(backend, tmp_path):
    bundle = _bundle(tmp_path, backend)
    proc = _infer(bundle, backend, tmp_path / "killed", "--devices", "2")
    rank1 = _wait_for_rank_1(proc, tmp_path / "killed")
    os.kill(rank1, signal.SIGKILL)  # while it still imports its framework: rank 0 must not wait for its shard
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=DEAD_RANK_BOUND_S)
    assert time.monotonic() - t0 <= DEAD_RANK_BOUND_S and proc.returncode == 1, err[-3000:]
    (run,) = _runs(tmp_path / "killed")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "rank 1 failed (killed by SIGKILL)" in record["error"]["message"]

    proc = _infer(bundle, backend, tmp_path / "cancelled", "--devices", "2")
    rank1 = _wait_for_rank_1(proc, tmp_path / "cancelled")
    proc.send_signal(signal.SIGINT)  # rank 1 is still starting: rank 0 waits for its shard when the signal lands
    proc.communicate(timeout=DEAD_RANK_BOUND_S)
    assert proc.returncode == 130
    (run,) = _runs(tmp_path / "cancelled")
    assert json.loads((run / "run.json").read_text())["status"] == "cancelled"
    assert not Path(f"/proc/{rank1}").exists() or "zombie" in Path(f"/proc/{rank1}/status").read_text()
