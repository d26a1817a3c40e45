"""Console reducer: pure, no terminal. ETA/throughput must come from event fields only."""
import pytest

from console.state import (CANCELLED, FAILED, INTERRUPTED, OK, RUNNING, STAGE_ORDER, RunView, coalesce, fmt_duration,
                           planned_stages, reduce, reduce_batch)
from engine.events import STAGES
from tests.console_canned import hybrid_stream, training_stream


def ev(type_, seq, t, **kw):
    return {"v": 1, "type": type_, "run_id": "r1", "seq": seq, "t": t, **kw}


def test_progress_rate_and_eta_from_event_fields():
    v = RunView("k", kind="selftest")
    v = reduce(v, ev("run_started", 1, 0.0))
    v = reduce(v, ev("stage", 2, 0.5, stage="inference"))
    v = reduce(v, ev("progress", 3, 1.0, done=0, total=100, unit="pattern", stage="inference"))
    v = reduce(v, ev("progress", 4, 3.0, done=40, total=100, unit="pattern", stage="inference"))
    assert v.status == RUNNING and v.stage == "inference"
    assert v.rate == (20.0, "patterns/s")  # 40 patterns in 2 s of event time, in the unit the engine names
    assert v.eta_s == 3.0  # 60 left at 20/s
    assert abs(v.progress.fraction - 0.4) < 1e-12


def test_per_epoch_windows_eta_adds_remaining_epochs():
    """A job that counts progress per epoch (selftest): ETA = this window + remaining epochs × mean epoch time."""
    v = RunView("k", kind="selftest")
    v = reduce(v, ev("stage", 1, 0.0, stage="training"))
    v = reduce(v, ev("epoch", 2, 10.0, epoch=1, epochs=5, train_loss=2.0, val_loss=3.0, seconds=10.0, samples_per_s=50.0))
    assert v.eta_s == 40.0 and v.rate == (50.0, "groups/s")
    v = reduce(v, ev("progress", 3, 10.0, done=0, total=10))
    v = reduce(v, ev("progress", 4, 12.0, done=5, total=10))
    # 5 left at 2.5/s = 2 s in this epoch, then epochs 3..5 at 10 s each
    assert v.eta_s == 2.0 + 30.0
    assert abs(v.overall_fraction - 1.5 / 5) < 1e-12 and abs(v.epoch_fraction - 0.5) < 1e-12
    assert v.train_loss == (2.0,) and v.val_loss == (3.0,) and v.loss_epochs == (1,)


def test_engine_progress_over_all_epochs_gives_overall_and_epoch_bars():
    """The engine counts batches over the whole training (total = epochs × batches): the overall bar is that
    fraction (not 96 % inside epoch 1 of 2), the epoch bar the share of the epoch in flight."""
    v = RunView("k", kind="train", epochs=2)
    v = reduce(v, ev("stage", 1, 0.0, stage="training"))
    v = reduce(v, ev("progress", 2, 0.0, done=0, total=100, unit="batch", stage="training"))
    v = reduce(v, ev("progress", 3, 4.8, done=48, total=100, unit="batch", stage="training"))
    assert abs(v.overall_fraction - 0.48) < 1e-12 and abs(v.epoch_fraction - 0.96) < 1e-12
    assert v.eta_s == pytest.approx(52 / 10)
    v = reduce(v, ev("progress", 4, 5.0, done=50, total=100, unit="batch", stage="training"))
    v = reduce(v, ev("epoch", 5, 5.0, epoch=1, epochs=2, train_loss=1.0, val_loss=1.1, seconds=5.0, samples_per_s=75.9))
    assert v.scope == "run"
    v = reduce(v, ev("progress", 6, 6.0, done=60, total=100, unit="batch", stage="training"))
    assert abs(v.overall_fraction - 0.6) < 1e-12 and abs(v.epoch_fraction - 0.2) < 1e-12
    # throughput is the engine's figure, in groups/s, and does not switch to the batch rate between epochs
    assert v.rate == (75.9, "groups/s")


def test_canned_training_stream_matches_engine_semantics():
    v = reduce_batch(RunView("k", kind="train", epochs=8), training_stream(3))
    assert v.scope == "run" and v.epoch == 3
    assert abs(v.overall_fraction - (3 * 16 + 6) / 128) < 1e-12
    assert abs(v.epoch_fraction - 6 / 16) < 1e-12
    assert v.rate == (38.4, "groups/s")


def test_finish_error_and_warning():
    v = reduce_batch(RunView("k"), [
        ev("run_started", 1, 0.0), ev("warning", 2, 0.1, message="low photon count"),
        ev("error", 3, 0.2, kind="ValueError", message="bad", traceback="Traceback...\n  File x, line 3\nValueError: bad"),
        ev("run_finished", 4, 0.3, status="failed", exit_code=1),
    ])
    assert v.status == FAILED and v.warnings == 1 and v.errors == ("ValueError: bad",)
    assert v.error == ("ValueError", "bad") and v.cause == "ValueError: bad" and v.exit_code == 1
    assert v.traceback_tail == ("Traceback...", "  File x, line 3")  # the failing frame (the last line is the cause)
    assert [ln.level for ln in v.logs].count("error") >= 2


def test_exit_code_decides_status_when_no_run_finished():
    crashed = reduce_batch(RunView("k"), [ev("run_started", 1, 0.0), {"type": "output", "message": "RuntimeError: boom"},
                                          {"type": "exited", "returncode": 1}])
    assert crashed.status == FAILED and "RuntimeError: boom" in crashed.errors[0]
    assert crashed.cause.startswith("process exited with code 1") and crashed.last_output == ("RuntimeError: boom",)
    cancelled = reduce(reduce(RunView("k"), ev("run_started", 1, 0.0)), {"type": "exited", "returncode": 130})
    assert cancelled.status == CANCELLED and cancelled.cause is None
    ok = reduce(reduce(RunView("k"), ev("run_finished", 1, 0.0, status="ok", exit_code=0)), {"type": "exited", "returncode": 0})
    assert ok.status == OK and ok.exit_code == 0


def test_followed_run_whose_writer_died_is_interrupted():
    v = reduce_batch(RunView("k"), [ev("run_started", 1, 0.0), {"type": "exited", "returncode": None}])
    assert v.status == INTERRUPTED and v.finished and "killed" in v.cause


def test_cancelled_run_finished_carries_exit_code():
    v = reduce_batch(RunView("k"), training_stream(2, finish="cancelled"))
    assert v.status == CANCELLED and v.exit_code == 130 and v.cause is None


def test_previews_and_heldout_metrics():
    v = reduce_batch(RunView("k"), training_stream(4, previews_every=2))
    assert v.previews == ((2, "previews/epoch_0002.npz"), (4, "previews/epoch_0004.npz"))
    assert v.latest_preview == (4, "previews/epoch_0004.npz")
    assert v.heldout_at(4)["phase_ssim"] == pytest.approx(0.3 + 0.5 * 4 / 8)
    assert "frc50" not in v.heldout_at(4)  # a null metric (no ring) is not a number to show
    previews = [ln.text for ln in v.logs if "held-out" in ln.text]  # one line per preview, not one per metric
    assert previews == ["held-out preview, epoch 2: phase ssim 0.425, amplitude ssim 0.35, nrmse 0.775",
                        "held-out preview, epoch 4: phase ssim 0.55, amplitude ssim 0.45, nrmse 0.65"]


def test_refinement_epochs_are_their_own_curve_in_patterns_per_second():
    v = reduce_batch(RunView("k", kind="reconstruct", method="hybrid"), hybrid_stream(5))
    assert v.stage == "refining" and v.method == "hybrid" and v.train_loss == ()
    assert [e for e, _ in v.refine_loss] == [1, 2, 3, 4, 5]
    assert v.rate == (426.7, "patterns/s")
    assert v.scope == "epoch" and abs(v.overall_fraction - 5.5 / 30) < 1e-12


def test_planned_stages_follow_the_engine_order():
    assert STAGE_ORDER[:len(STAGES)] == STAGES or "refining" not in STAGES
    assert planned_stages("train") == ("loading", "grouping", "training", "saving")
    assert planned_stages("train", held_out=True) == ("loading", "grouping", "training", "inference", "stitching",
                                                      "evaluating", "saving")
    assert "refining" in planned_stages("reconstruct", method="iterative")
    assert "inference" not in planned_stages("reconstruct", method="iterative")
    assert "refining" not in planned_stages("reconstruct", method="pinn")
    assert set(planned_stages("reconstruct", method="hybrid")) <= set(STAGE_ORDER)


def test_coalesce_keeps_window_anchor_and_last():
    events = [ev("progress", i, i * 0.1, done=i, total=100) for i in range(1, 101)]
    events += [ev("progress", 101, 10.2, done=1, total=50), ev("progress", 102, 10.3, done=2, total=50)]
    kept = coalesce(events)
    assert [(e["done"], e["total"]) for e in kept] == [(1, 100), (100, 100), (1, 50), (2, 50)]
    # coalescing must not change what the reducer derives
    full = RunView("k")
    for e in events[:100]:
        full = reduce(full, e)
    assert reduce_batch(RunView("k"), events[:100]).progress == full.progress


def test_bad_and_unknown_events_become_logs():
    v = reduce(RunView("k"), {"type": "log", "level": "warning", "message": "unparsable event line: {"})
    v = reduce(v, ev("mystery", 2, 0.0, message="hello"))
    assert [ln.text for ln in v.logs] == ["unparsable event line: {", "hello"]


def test_fmt_duration():
    assert fmt_duration(None) == "--:--" and fmt_duration(65) == "01:05" and fmt_duration(3725) == "1:02:05"


def test_epochs_read_as_refinement_epochs_once_a_run_has_refined():
    """The run screen's rate line: a training run's epochs are "epochs"; once it refines (a reconstruct run, or
    train --test-refine after its training) they are the refinement's, also after it moves on to evaluating."""
    from console.screens.run import rate_line
    from tests.console_canned import ev

    training = reduce_batch(RunView("k"), training_stream(3, epochs=8))
    assert "3/8 epochs" in rate_line(training)
    refining = reduce_batch(RunView("k", kind="reconstruct", method="hybrid"), hybrid_stream(5))
    assert "5/30 refinement epochs" in rate_line(refining)
    after = reduce_batch(refining, [ev("stage", 999, 9.0, run_id="20260101-121000-0abc-reconstruct",
                                       stage="evaluating")])
    assert after.stage == "evaluating" and "5/30 refinement epochs" in rate_line(after)
