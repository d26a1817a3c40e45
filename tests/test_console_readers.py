"""The console's pure parts without a terminal: readers of the run store and results, display rules, command
lines Launch builds, path completion, log-scale ticks, the tailing follower."""
import asyncio
import json
import math
from pathlib import Path

import numpy as np
import pytest

from console import imaging
from console.follow import Follower, StoreWatcher, replay
from console.launching import TRAIN_CHOICES, Problem, command_line, reconstruct_request, train_request
from console.readers import (failure_context, list_bundles, list_runs, load_preview, load_results, metric_rows,
                             read_events, read_run, why_no_reconstruction)
from console.state import FAILED, INTERRUPTED, RunView, reduce_batch
from console.widgets.loss_plot import LogTicks
from console.widgets.path_suggester import complete_path
from tests.console_canned import (make_hybrid_run, make_run, metrics_block, training_stream, truth, write_preview)

FIELDS = {"epochs": "20", "gridsize": "1", "n-groups": "", "batch-size": "4", "filters-scale": "1",
          "learning-rate": "0.001", "seed": "0", "eval-every": ""}


# ---- run store -------------------------------------------------------------------------------------------------

def test_run_records_use_the_run_store_fields(tmp_path):
    make_run(tmp_path, "20260101-110000-aaaa-train", metrics=metrics_block(0.81), bundle=True, epochs=12)
    make_run(tmp_path, "20260101-113000-bbbb-train", status="failed", recon=False, minutes_ago=5,
             error={"kind": "FloatingPointError", "message": "loss is NaN at epoch 4"})
    newest, oldest = list_runs(tmp_path)
    assert newest.run_id.endswith("bbbb-train") and newest.status == FAILED
    assert newest.cause == "FloatingPointError: loss is NaN at epoch 4"
    assert oldest.key_metric == ("phase_ssim", 0.81) and oldest.epochs == 12 and oldest.planned_epochs == 12
    assert oldest.dataset == "train.npz" and oldest.pid == 4242 and oldest.duration == pytest.approx(62.0)
    # a "running" record whose writer holds no lock is interrupted (the run store decides, not a stale pid)
    make_run(tmp_path, "20260101-120000-cccc-train", status="running", recon=False)
    assert read_run(tmp_path / "20260101-120000-cccc-train").status == INTERRUPTED


def test_bundles_are_listed_with_what_one_picks_them_by(tmp_path):
    make_run(tmp_path, "20260101-110000-aaaa-train", metrics=metrics_block(0.81), bundle=True, epochs=12)
    make_run(tmp_path, "20260101-111000-abab-train", backend="torch", bundle=True, epochs=3)
    make_run(tmp_path, "20260101-112000-dddd-train", bundle=False)  # no manifest: not a bundle
    make_run(tmp_path, "20260101-113000-bbbb-train", status="failed", bundle=True)  # failed: not offered
    bundles = list_bundles(tmp_path)
    assert [b.run_id for b in bundles] == ["20260101-111000-abab-train", "20260101-110000-aaaa-train"]
    torch, tf = bundles
    assert tf.backend == "tensorflow" and tf.epochs == 12 and tf.metric == ("phase_ssim", 0.81)
    assert torch.metric == ("val_loss", 0.36) and Path(torch.path).name == "bundle"


def test_hybrid_results_pair_pinn_and_refined_with_truth(tmp_path):
    d = make_hybrid_run(tmp_path / "runs", tmp_path / "scan.npz")
    res = load_results(d)
    assert [o.label for o in res.objects] == ["PINN", "hybrid"]
    assert res.truth is not None and res.truth.shape == res.objects[-1].object.shape
    assert np.allclose(res.truth, truth())
    assert res.region == (4, 44, 4, 44)
    rows = dict(metric_rows(res.objects))
    assert rows["phase SSIM"] == ["0.58", "0.88"]
    assert [r for r, _ in metric_rows(res.objects, compact=True)] == ["phase SSIM", "amplitude SSIM",
                                                                       "phase PSNR dB", "phase FRC50 px"]


def test_a_training_runs_held_out_refinement_shows_beside_its_pinn_object(tmp_path):
    """train --test --test-refine: recon.npz is the network's, recon_hybrid.npz the refined one (Results: both)."""
    import shutil

    d = make_hybrid_run(tmp_path / "runs", tmp_path / "scan.npz")  # recon_pinn.npz + recon.npz: rename to that layout
    shutil.move(d / "recon.npz", d / "recon_hybrid.npz")
    shutil.move(d / "metrics.json", d / "metrics_hybrid.json")
    shutil.move(d / "recon_pinn.npz", d / "recon.npz")
    shutil.move(d / "metrics_pinn.json", d / "metrics.json")
    res = load_results(d)
    assert [o.label for o in res.objects] == ["PINN", "hybrid"]
    assert dict(metric_rows(res.objects))["phase SSIM"] == ["0.58", "0.88"]
    assert res.truth is not None


def test_no_reconstruction_says_why(tmp_path):
    ok = make_run(tmp_path, "20260101-110000-aaaa-train", recon=False)
    failed = make_run(tmp_path, "20260101-113000-bbbb-train", status="failed", recon=False,
                      error={"kind": "ValueError", "message": "bad"},
                      events=training_stream(2, finish="failed", run_id="20260101-113000-bbbb-train"))
    assert "without a held-out scan" in why_no_reconstruction(read_run(ok))
    assert "failed" in why_no_reconstruction(read_run(failed))
    assert load_results(ok).objects == ()
    # the failing frame of the traceback, read from the tail of events.jsonl
    assert failure_context(failed) == ('File "engine/tf/backend.py", line 197, in train', "raise FloatingPointError(...)")


def test_preview_files_and_events_tail(tmp_path):
    rel = write_preview(tmp_path, 4, 0.5)
    p = load_preview(tmp_path / rel)
    assert p.epoch == 4 and p.amplitude.shape == p.phase.shape == (40, 40) and p.metrics["phase_ssim"] == 0.55
    assert load_preview(tmp_path / "missing.npz") is None
    events = tmp_path / "events.jsonl"
    events.write_text('{"a": 1}\n{"b": 2}\n{"c": ')  # the last line is still being written
    lines, offset = read_events(events)
    assert lines == ['{"a": 1}', '{"b": 2}'] and offset == 18
    assert read_events(events, offset) == ([], 18)


# ---- following runs --------------------------------------------------------------------------------------------

def test_replay_of_a_finished_run_and_of_a_dead_writer(tmp_path):
    d = make_run(tmp_path, "20260101-113000-bbbb-train", status="failed", recon=False,
                 events=training_stream(3, finish="failed", run_id="20260101-113000-bbbb-train"))
    view = reduce_batch(RunView("k"), replay(d))
    assert view.status == FAILED and view.epoch == 3 and view.error[0] == "FloatingPointError"
    dead = make_run(tmp_path, "20260101-114000-eeee-train", status="running", recon=False,
                    events=training_stream(2, run_id="20260101-114000-eeee-train"))
    view = reduce_batch(RunView("k"), replay(dead))
    assert view.status == INTERRUPTED and view.epoch == 2


async def test_follower_tails_new_lines_until_run_finished(tmp_path):
    d = make_run(tmp_path, "20260101-113000-ffff-train", status="running", recon=False)
    stream = training_stream(2, finish="ok", run_id="20260101-113000-ffff-train")
    events = d / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in stream[:5]))
    got: list[list[dict]] = []
    lock = open(d / "run.lock", "a+")  # a live writer holds the lock
    import fcntl
    fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
    try:
        f = Follower("k", d, lambda key, batch: got.append(batch), interval=0.02)
        f.start()
        await asyncio.sleep(0.1)
        assert sum(len(b) for b in got) == 5 and f.following
        with open(events, "a") as fh:
            fh.write("".join(json.dumps(e) + "\n" for e in stream[5:]))
        await asyncio.wait_for(f.wait(), 5)
    finally:
        lock.close()
    assert [e for b in got for e in b] == stream and f.finished  # every line once, in order, then it stopped
    assert reduce_batch(RunView("k"), stream).status == "ok"


def test_store_watcher_finds_live_runs_only(tmp_path):
    import fcntl
    live = make_run(tmp_path, "20260101-113000-1111-train", status="running", recon=False)
    make_run(tmp_path, "20260101-110000-2222-train")
    dead = make_run(tmp_path, "20260101-110000-3333-train", status="running", recon=False)
    lock = open(live / "run.lock", "a+")
    fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
    try:
        w = StoreWatcher(tmp_path)
        assert w.live_runs() == [live]
        assert w.settled == {"20260101-110000-2222-train", dead.name}  # not read again
    finally:
        lock.close()


def test_cancel_signals_only_a_live_writer(tmp_path):
    d = make_run(tmp_path, "20260101-113000-1111-train", status="running", recon=False, pid=1)
    assert Follower("k", d, lambda *_: None).cancel() is False  # no lock held: pid 1 is never signalled


# ---- launch ----------------------------------------------------------------------------------------------------

def test_train_with_held_out_scan_reconstructs_in_the_same_run(tmp_path):
    (tmp_path / "train.npz").write_bytes(b"")
    (tmp_path / "test.npz").write_bytes(b"")
    req = train_request("torch", str(tmp_path / "train.npz"), str(tmp_path / "test.npz"), {**FIELDS, "epochs": "2"})
    assert req.kind == "train" and req.held_out and req.epochs == 2 and req.backend == "torch"
    assert req.args[:4] == ("train", str(tmp_path / "train.npz"), "--backend", "torch")
    assert req.args[-2:] == ("--test", str(tmp_path / "test.npz"))
    assert "--n-groups" not in req.args and "--eval-every" not in req.args  # empty optional fields are left out
    no_test = train_request("tensorflow", str(tmp_path / "train.npz"), "", FIELDS)
    assert "--test" not in no_test.args and not no_test.held_out
    parity = train_request("both", str(tmp_path / "train.npz"), str(tmp_path / "test.npz"), FIELDS)
    assert parity.kind == "parity" and parity.args[:4] == ("parity", str(tmp_path / "train.npz"), "--test",
                                                            str(tmp_path / "test.npz"))


def test_training_choices_add_their_flags_and_the_defaults_add_none(tmp_path):
    (tmp_path / "train.npz").write_bytes(b"")
    data = str(tmp_path / "train.npz")
    plain = train_request("torch", data, "", FIELDS)
    assert plain.args == train_request("torch", data, "", FIELDS, {"lr-schedule": "constant", "augment": "on"}).args
    assert "--lr-schedule" not in plain.args and "--no-augment" not in plain.args
    chosen = train_request("torch", data, "", FIELDS, {"lr-schedule": "cosine", "augment": "off"})
    assert chosen.args[-3:] == ("--lr-schedule", "cosine", "--no-augment")
    # every schedule the engine knows is offered, the CLI's default first
    from engine.schedule import SCHEDULES
    assert TRAIN_CHOICES[0].values == SCHEDULES and TRAIN_CHOICES[0].default == "constant"
    with pytest.raises(ValueError, match="lr schedule"):
        train_request("torch", data, "", FIELDS, {"lr-schedule": "step"})
    # and `pinnacle train` takes every flag a choice adds
    import typer.main

    from console.cli import app

    train = typer.main.get_command(app).commands["train"]
    options = {o for p in train.params for o in (*p.opts, *p.secondary_opts)}
    flags = {f for c in TRAIN_CHOICES for v in c.values for f in c.args(v) if f.startswith("--")}
    assert flags == {"--lr-schedule", "--no-augment"} and flags <= options


def test_refining_the_held_out_scan_needs_one(tmp_path):
    (tmp_path / "train.npz").write_bytes(b"")
    (tmp_path / "test.npz").write_bytes(b"")
    data, test = str(tmp_path / "train.npz"), str(tmp_path / "test.npz")
    refused = train_request("torch", data, "", {**FIELDS, "test-refine": "10"})
    assert isinstance(refused, Problem) and refused.field == "test" and "refine" in refused.message
    req = train_request("torch", data, test, {**FIELDS, "test-refine": "10"})
    assert req.args[-4:] == ("--test-refine", "10", "--test", test)


def test_bad_fields_are_all_named(tmp_path):
    bad = train_request("tensorflow", str(tmp_path / "nope.npz"), "", {**FIELDS, "epochs": "0", "learning-rate": "x"})
    assert isinstance(bad, Problem) and bad.field == "data"
    assert "no such file" in bad.message and "epochs: an integer in [1, 100000]" in bad.message and "lr:" in bad.message
    assert command_line(bad).startswith("✘ ")
    (tmp_path / "train.npz").write_bytes(b"")
    assert train_request("both", str(tmp_path / "train.npz"), "", FIELDS).field == "test"


def test_reconstruct_command_lines_follow_the_contract(tmp_path):
    scan = tmp_path / "scan.npz"
    scan.write_bytes(b"")
    hybrid = reconstruct_request("hybrid", str(scan), "runs/r/bundle", "torch", "30")
    assert hybrid.args == ("reconstruct", str(scan), "--method", "hybrid", "--bundle", "runs/r/bundle", "--epochs",
                           "30", "--backend", "torch")
    pinn = reconstruct_request("pinn", str(scan), "runs/r/bundle", "tensorflow", "30")
    assert "--epochs" not in pinn.args and "--bundle" in pinn.args
    iterative = reconstruct_request("iterative", str(scan), "runs/r/bundle", "tensorflow", "")
    assert "--bundle" not in iterative.args
    assert reconstruct_request("pinn", str(scan), None, "tensorflow", "").field == "bundle"
    assert command_line(hybrid) == f"pinnacle reconstruct {scan} --method hybrid --bundle runs/r/bundle --epochs 30 " \
                                   "--backend torch"


def test_path_completion(tmp_path):
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "train.npz").write_bytes(b"")
    (tmp_path / "fixtures" / "test.npz").write_bytes(b"")
    (tmp_path / "fixtures" / "notes.txt").write_bytes(b"")
    assert complete_path(str(tmp_path / "fix")) == str(tmp_path / "fixtures") + "/"
    assert complete_path(str(tmp_path / "fixtures" / "tr")) == str(tmp_path / "fixtures" / "train.npz")
    assert complete_path(str(tmp_path / "fixtures" / "t")) is None  # train/test: nothing longer in common
    assert complete_path(str(tmp_path / "fixtures" / "no")) is None  # .txt is not a scan


# ---- display rules ---------------------------------------------------------------------------------------------

def test_phase_is_shown_offset_free_on_its_own_range():
    obj = truth() * np.exp(2.5j)  # a global offset near π would wrap without the removal
    phase = imaging.remove_phase_offset(obj)
    assert np.nanmax(np.abs(phase - np.angle(truth()))) < 0.05
    scale = imaging.phase_scale(phase)
    assert scale.cmap == "cividis" and -1.3 < scale.vmin < -1.0 and 1.0 < scale.vmax < 1.3  # not ±π
    wrapped = imaging.phase_scale(np.linspace(-3.1, 3.1, 100).reshape(10, 10))
    assert (wrapped.vmin, wrapped.vmax, wrapped.cmap) == (-math.pi, math.pi, "twilight")
    diff = imaging.phase_difference(obj, truth())
    assert np.nanmax(np.abs(diff)) < 1e-5  # the offset is matched before subtracting


def test_raster_positions_stay_a_raster():
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(14) * 6.0, np.arange(14) * 6.0), -1).reshape(-1, 2) + 40
    jittered = grid + rng.uniform(-0.4, 0.4, grid.shape)
    img = imaging.scatter_image(jittered)
    assert img.shape == (27, 27) and (img > 0).sum() == 196
    assert np.all(img[::2, ::2] == 1)  # one dot per node, a free cell between neighbours


def test_log_ticks_stay_two_rows_apart():
    ticks = LogTicks()
    ticks.rows = 7
    t, labels = ticks.get_ticks_and_labels(math.log10(0.7), math.log10(2.4))
    assert labels == ["1", "2"]
    ticks.rows = 20
    t, labels = ticks.get_ticks_and_labels(math.log10(0.7), math.log10(2.4))
    assert labels == ["0.7", "1", "1.5", "2"]
    assert all(b - a >= (math.log10(2.4) - math.log10(0.7)) / 10 * 0.999 for a, b in zip(t, t[1:]))
    assert ticks.get_ticks_and_labels(-3, 2)[1] == ["0.001", "0.01", "0.1", "1", "10", "100"]
