"""Run store: sortable filename-safe ids, atomic run.json, writer lock, interrupted detection, lookup."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from engine.errors import InputError
from engine.runstore import RunLocked, RunStore, is_run_id, new_run_id


def test_run_ids_sort_by_time_and_are_filename_safe():
    base = dt.datetime(2026, 11, 23, 19, 4, 12, tzinfo=dt.timezone.utc)
    times = [base + dt.timedelta(microseconds=us) for us in (0, 900, 250_000, 999_999)]
    times += [base + dt.timedelta(seconds=s) for s in (1, 59, 3600, 86400 * 40)]
    ids = [new_run_id("train", now) for now in times]
    assert ids == sorted(ids)
    for run_id in ids:
        assert re.fullmatch(r"[0-9a-z_-]+", run_id) and is_run_id(run_id)
    assert ids[0].startswith("20261123-190412-") and ids[0].endswith("-train")
    assert new_run_id("Parity/Check ../x").endswith("-parity_check_x")
    assert len({new_run_id("infer") for _ in range(50)}) > 1


def test_create_writes_a_complete_run_json(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create("train", config={"epochs": 3}, backend="torch", dataset={"path": "d.npz", "fingerprint": "ab"})
    rec = json.loads((run.dir / "run.json").read_text())
    for key in ("run_id", "kind", "status", "backend", "dataset", "config", "created", "updated", "stage",
                "timings", "metrics", "artifacts", "pid", "exit_code"):
        assert key in rec
    assert rec["status"] == "running" and rec["run_id"] == run.run_id == run.dir.name
    assert rec["config"] == {"epochs": 3} and rec["dataset"]["fingerprint"] == "ab"
    assert run.checkpoints_dir.is_dir() and run.bundle_dir.is_dir()
    run.update(stage="training", timings={"loading": 1.5})
    run.finish("ok", exit_code=0)
    run.close()
    rec = json.loads((run.dir / "run.json").read_text())
    assert rec["status"] == "ok" and rec["stage"] == "training" and rec["timings"] == {"loading": 1.5}
    assert [p.name for p in run.dir.iterdir() if p.name.endswith(".tmp")] == []


def test_finish_rejects_non_final_status(tmp_path):
    run = RunStore(tmp_path).create("x", config={})
    with pytest.raises(ValueError):
        run.finish("running")
    run.close()


def test_second_writer_is_refused_until_the_first_lets_go(tmp_path):
    store = RunStore(tmp_path)
    run = store.create("train", config={})
    with pytest.raises(RunLocked) as err:
        store.attach(run.run_id)
    assert isinstance(err.value, InputError) and "locked" in err.value.one_line()
    run.close()
    second = store.attach(run.run_id)
    assert store.get(run.run_id)["status"] == "running"
    second.close()


def test_list_resolves_dead_writers_as_interrupted(tmp_path):
    store = RunStore(tmp_path)
    live = store.create("train", config={})
    dead = store.create("infer", config={})
    done = store.create("parity", config={})
    done.finish("cancelled", exit_code=130)
    done.close()
    dead.close()  # the process "died": lock gone, run.json still says running
    statuses = {r["run_id"]: r["status"] for r in store.list()}
    assert statuses == {live.run_id: "running", dead.run_id: "interrupted", done.run_id: "cancelled"}
    assert json.loads((dead.dir / "run.json").read_text())["status"] == "running"
    assert [r["run_id"] for r in store.list()] == sorted(statuses)
    live.close()


def test_list_skips_unreadable_and_foreign_directories(tmp_path):
    store = RunStore(tmp_path)
    good = store.create("train", config={})
    good.finish("ok")
    good.close()
    (tmp_path / "junk").mkdir()
    bad = tmp_path / "20260101-000000-0000-broken"
    bad.mkdir()
    (bad / "run.json").write_text("{half a json")
    assert [r["run_id"] for r in store.list()] == [good.run_id]
    assert RunStore(tmp_path / "nowhere").list() == []


def test_get_by_id_or_unique_prefix(tmp_path):
    store = RunStore(tmp_path)
    a = store.create("train", config={})
    b = store.create("train", config={})
    for r in (a, b):
        r.finish("ok")
        r.close()
    assert store.get(a.run_id)["run_id"] == a.run_id
    common = 0
    while a.run_id[common] == b.run_id[common]:
        common += 1
    assert store.get(b.run_id[: common + 1])["run_id"] == b.run_id
    with pytest.raises(InputError, match="unique prefix"):
        store.get(a.run_id[:common])
    with pytest.raises(InputError, match="no match"):
        store.get("1999")
    with pytest.raises(InputError):
        store.get("../etc")
