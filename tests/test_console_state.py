"""Console reducer: pure, no terminal. ETA/throughput must come from event fields only."""
from console.state import CANCELLED, FAILED, OK, RUNNING, RunView, coalesce, fmt_duration, reduce, reduce_batch


def ev(type_, seq, t, **kw):
    return {"v": 1, "type": type_, "run_id": "r1", "seq": seq, "t": t, **kw}


def test_progress_rate_and_eta_from_event_fields():
    v = RunView("k")
    v = reduce(v, ev("run_started", 1, 0.0))
    v = reduce(v, ev("stage", 2, 0.5, stage="training"))
    v = reduce(v, ev("progress", 3, 1.0, done=0, total=100))
    v = reduce(v, ev("progress", 4, 3.0, done=40, total=100))
    assert v.status == RUNNING and v.stage == "training"
    assert v.throughput == 20.0  # 40 items in 2 s of event time
    assert v.eta_s == 3.0  # 60 left at 20/s
    assert abs(v.progress.fraction - 0.4) < 1e-12


def test_eta_adds_remaining_epochs_from_epoch_seconds():
    v = RunView("k")
    v = reduce(v, ev("stage", 1, 0.0, stage="training"))
    v = reduce(v, ev("epoch", 2, 10.0, epoch=1, epochs=5, train_loss=2.0, val_loss=3.0, seconds=10.0, samples_per_s=50.0))
    assert v.eta_s == 40.0 and v.throughput == 50.0
    v = reduce(v, ev("progress", 3, 10.0, done=0, total=10))
    v = reduce(v, ev("progress", 4, 12.0, done=5, total=10))
    # 5 left at 2.5/s = 2 s in this epoch, then epochs 3..5 at 10 s each
    assert v.eta_s == 2.0 + 30.0
    assert abs(v.overall_fraction - 1.5 / 5) < 1e-12
    assert v.train_loss == (2.0,) and v.val_loss == (3.0,)


def test_finish_error_and_warning():
    v = reduce_batch(RunView("k"), [
        ev("run_started", 1, 0.0), ev("warning", 2, 0.1, message="low photon count"),
        ev("error", 3, 0.2, kind="ValueError", message="bad", traceback="Traceback...\nValueError: bad"),
        ev("run_finished", 4, 0.3, status="failed"),
    ])
    assert v.status == FAILED and v.warnings == 1 and v.errors == ("ValueError: bad",)
    assert [ln.level for ln in v.logs].count("error") >= 2


def test_exit_code_decides_status_when_no_run_finished():
    crashed = reduce_batch(RunView("k"), [ev("run_started", 1, 0.0), {"type": "output", "message": "RuntimeError: boom"},
                                          {"type": "exited", "returncode": 1}])
    assert crashed.status == FAILED and "RuntimeError: boom" in crashed.errors[0]
    cancelled = reduce(reduce(RunView("k"), ev("run_started", 1, 0.0)), {"type": "exited", "returncode": 130})
    assert cancelled.status == CANCELLED
    ok = reduce(reduce(RunView("k"), ev("run_finished", 1, 0.0, status="ok")), {"type": "exited", "returncode": 0})
    assert ok.status == OK and ok.exit_code == 0


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
