"""SVG snapshots of every console screen in its typical states, fed by canned event streams and runs on disk.

Fixed sizes (120×40, and 80×24 for every screen), pinned theme, mock clock, NO_COLOR/TEXTUAL_THEME unset; paths are
relative to a temp working dir so the pictures do not depend on where the tests run. Update with
``pytest --snapshot-update`` and LOOK at them (convert an SVG to PNG to see it).
"""
import shutil

import pytest
from syrupy.extensions.image import SVGImageSnapshotExtension

from console.app import PinnacleApp
from console.state import OUTSIDE, STORED
from tests.console_canned import (RUN_ID, clock, hybrid_stream, make_dataset, make_hybrid_run, make_parity_run,
                                  make_run, metrics_block, training_stream)

SIZE = (120, 40)
SMALL = (80, 24)


async def settled_screenshot(app: PinnacleApp, pilot, max_rounds: int = 50) -> str:
    """The screenshot once two consecutive renders agree: a busy machine can deliver a late refresh (a resize, a
    deferred update) after the first pause, and a snapshot taken before it flakes."""
    await pilot.pause()
    svg = app.export_screenshot()
    for _ in range(max_rounds):
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        again = app.export_screenshot()
        if again == svg:
            return svg
        svg = again
    return svg


@pytest.fixture
def snap(snapshot, monkeypatch, tmp_path):
    """``await snap(app, setup, size)``: run the app headless, apply ``setup(app, pilot)``, compare the SVG."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)
    monkeypatch.chdir(tmp_path)

    async def take(app: PinnacleApp, setup=None, size=SIZE):
        async with app.run_test(size=size) as pilot:
            app.theme = "textual-dark"
            await pilot.pause()
            if setup is not None:
                await setup(app, pilot)
            svg = await settled_screenshot(app, pilot)
        assert svg == snapshot(extension_class=SVGImageSnapshotExtension)

    return take


@pytest.fixture
def world(tmp_path):
    """Datasets (one broken), finished runs (ok with a bundle, failed with its cause, a hybrid reconstruction with
    ground truth) and a parity run, all under relative paths."""
    data = tmp_path / "data"
    data.mkdir()
    make_dataset(data / "train.npz")
    shutil.copy(data / "train.npz", data / "test.npz")
    (data / "broken.npz").write_bytes(b"not a zip")
    runs = tmp_path / "runs"
    make_hybrid_run(runs, data / "scan.npz")
    make_run(runs, "20260101-110000-aaaa-train", metrics=metrics_block(0.81), minutes_ago=70, bundle=True,
             scan="data/scan.npz")
    make_run(runs, "20260101-113000-bbbb-train", status="failed", backend="torch", recon=False, minutes_ago=30,
             duration=5, error={"kind": "FloatingPointError", "message": "loss is NaN at epoch 4"},
             events=training_stream(3, finish="failed", run_id="20260101-113000-bbbb-train", backend="torch"))
    make_parity_run(runs)
    return tmp_path


def app_for(data="data/train.npz") -> PinnacleApp:
    return PinnacleApp(data=data, runs="runs", clock=clock, fixtures="no-fixtures", watch=None)


async def show(app, name):
    app.action_show(name)


def results_of(run_dir: str):
    async def setup(app, pilot):
        app.results_dir = run_dir
        app.action_show("results")
    return setup


# ---- Datasets, Launch ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x40", "80x24"])
async def test_datasets_valid(snap, world, size):
    await snap(app_for(), size=size)


async def test_datasets_invalid(snap, world):
    async def setup(app, pilot):
        app.screen.show("data/broken.npz")
    await snap(app_for(), setup)


async def test_launch_with_invalid_field(snap, world):
    async def setup(app, pilot):
        app.action_show("launch")
        await pilot.pause()
        app.screen.query_one("#in-epochs").value = "0"
        app.screen.query_one("#in-learning-rate").value = "fast"
        await app.screen.action_train()
    await snap(app_for(), setup)


@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x40", "80x24"])
async def test_launch_train_with_held_out(snap, world, size):
    """The held-out scan is filled in from the dataset's sibling; the command line says --test."""
    await snap(app_for(), lambda app, pilot: show(app, "launch"), size=size)


@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x40", "80x24"])
async def test_launch_reconstruct_with_bundle_list(snap, world, size):
    async def setup(app, pilot):
        app.action_show("launch")
        await pilot.pause()
        app.screen.query_one("TabbedContent").active = "tab-reconstruct"
    await snap(app_for(), setup, size=size)


# ---- Run -------------------------------------------------------------------------------------------------------

def run_setup(*streams, current=0, source=None, previews=False):
    async def setup(app, pilot):
        for i, (label, stream) in enumerate(streams):
            app.add_run(f"job{i + 1}", label, backend="tensorflow", epochs=8, held_out=previews)
            app.ingest(f"job{i + 1}", stream(app) if callable(stream) else stream)
            if source is not None:
                from dataclasses import replace
                app.views[f"job{i + 1}"] = replace(app.views[f"job{i + 1}"], source=source)
        app.current_run = f"job{current + 1}"
        app.action_show("run")
    return setup


async def test_run_empty(snap, world):
    await snap(app_for(), lambda app, pilot: show(app, "run"))


async def test_run_training_in_progress(snap, world):
    await snap(app_for(), run_setup(("train tensorflow train.npz", training_stream(3)),
                                    ("train torch train.npz", training_stream(1))))


def with_previews(epochs_done):
    def stream(app):
        from pathlib import Path
        run_dir = Path("runs") / RUN_ID
        run_dir.mkdir(parents=True, exist_ok=True)
        return training_stream(epochs_done, run_dir=str(run_dir), previews_every=2)
    return stream


@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x40", "80x24"])
async def test_run_preview_updating(snap, world, size):
    """Training with a held-out scan: the loss plot and the latest held-out preview (epoch 4 of 8)."""
    await snap(app_for(), run_setup(("train tensorflow train.npz → test.npz", with_previews(5)), previews=True),
               size=size)


async def test_run_preview_later_epoch(snap, world):
    """The same run three epochs later: a newer, sharper preview replaced the first."""
    await snap(app_for(), run_setup(("train tensorflow train.npz → test.npz", with_previews(8)), previews=True))


@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x40", "80x24"])
async def test_run_failed_with_cause(snap, world, size):
    await snap(app_for(), run_setup(("train tensorflow train.npz", training_stream(3, finish="failed"))), size=size)


async def test_run_cancelled_among_several(snap, world):
    await snap(app_for(), run_setup(("ok run", training_stream(8, finish="ok")),
                                    ("cancelled run", training_stream(2, finish="cancelled")), current=1))


@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x40", "80x24"])
async def test_run_attached_outside_run(snap, world, size):
    """A run started elsewhere, followed live from its events.jsonl (pid from run.json)."""
    async def setup(app, pilot):
        await run_setup(("train torch train.npz (outside)", training_stream(4)), source=OUTSIDE)(app, pilot)
        from dataclasses import replace
        app.views["job1"] = replace(app.views["job1"], pid=4242)
        app.select_run("job1")
    await snap(app_for(), setup, size=size)


async def test_run_hybrid_refinement(snap, world):
    async def setup(app, pilot):
        app.add_run("job1", "reconstruct hybrid scan.npz", kind="reconstruct", backend="torch", method="hybrid",
                    epochs=30)
        app.ingest("job1", hybrid_stream(12))
        app.action_show("run")
    await snap(app_for(), setup)


async def test_run_history_of_a_stored_failed_run(snap, world):
    """A failed run opened from History: its whole event history, replayed, on the Run screen."""
    async def setup(app, pilot):
        key = app.open_run("runs/20260101-113000-bbbb-train")
        assert app.views[key].source == STORED
        app.select_run(key)
        app.action_show("run")
    await snap(app_for(), setup)


async def test_run_parity_losses_of_both_trainings(snap, world):
    """A parity run's loss plot: the epoch losses of its two trainings (its own run store), not an empty panel."""
    async def setup(app, pilot):
        key = app.open_run("runs/20260101-120000-beef-parity")
        app.select_run(key)
        app.action_show("run")
    await snap(app_for(), setup)


async def test_confirm_cancel(snap, world):
    async def setup(app, pilot):
        await run_setup(("train tensorflow train.npz", training_stream(3)))(app, pilot)
        await pilot.pause()
        app.action_cancel_run()
    await snap(app_for(), setup, size=SMALL)


# ---- Results, Parity, History, Help -----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x40", "80x24"])
async def test_results(snap, world, size):
    await snap(app_for(), results_of("runs/20260101-110000-aaaa-train"), size=size)


@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x40", "80x24"])
async def test_results_hybrid_with_truth_and_difference(snap, world, size):
    await snap(app_for(), results_of("runs/20260101-115000-d00d-reconstruct"), size=size)


async def test_results_hybrid_amplitude_row(snap, world):
    async def setup(app, pilot):
        await results_of("runs/20260101-115000-d00d-reconstruct")(app, pilot)
        await pilot.pause()
        await pilot.press("a")
    await snap(app_for(), setup, size=SMALL)


@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x40", "80x24"])
async def test_results_failed_with_cause(snap, world, size):
    await snap(app_for(), results_of("runs/20260101-113000-bbbb-train"), size=size)


@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x40", "80x24"])
async def test_parity_pass(snap, world, size):
    await snap(app_for(), lambda app, pilot: show(app, "parity"), size=size)


async def test_parity_fail(snap, world):
    make_parity_run(world / "runs", "20260101-120100-dead-parity", fail=True)

    async def setup(app, pilot):
        app.results_dir = "runs/20260101-120100-dead-parity"
        app.action_show("parity")
    await snap(app_for(), setup)


@pytest.mark.parametrize("size", [SIZE, SMALL], ids=["120x40", "80x24"])
async def test_history_failed_run_selected(snap, world, size):
    async def setup(app, pilot):
        app.action_show("history")
        await pilot.pause()
        await pilot.press("down")  # the failed run (newest first: parity, then it)
    await snap(app_for(), setup, size=size)


async def test_help(snap, world):
    async def setup(app, pilot):
        app.action_help()
    await snap(app_for(), setup)
