"""SVG snapshots of every console screen in its typical states, fed by canned event streams and runs on disk.

Fixed size, pinned theme, mock clock, NO_COLOR/TEXTUAL_THEME unset; paths are relative to a temp working dir so
the pictures do not depend on where the tests run. Update with ``pytest --snapshot-update`` and LOOK at them.
"""
import pytest
from syrupy.extensions.image import SVGImageSnapshotExtension

from console.app import PinnacleApp
from tests.console_canned import clock, make_dataset, make_parity_run, make_run, training_stream

SIZE = (120, 40)


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
    """``await snap(app, setup)``: run the app headless, apply ``setup(app, pilot)``, compare the SVG."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)
    monkeypatch.chdir(tmp_path)

    async def take(app: PinnacleApp, setup=None):
        async with app.run_test(size=SIZE) as pilot:
            app.theme = "textual-dark"
            await pilot.pause()
            if setup is not None:
                await setup(app, pilot)
            svg = await settled_screenshot(app, pilot)
        assert svg == snapshot(extension_class=SVGImageSnapshotExtension)

    return take


@pytest.fixture
def world(tmp_path):
    """A dataset, a broken file, two finished training runs and a parity run, all under relative paths."""
    (tmp_path / "data").mkdir()
    make_dataset(tmp_path / "data" / "train.npz")
    (tmp_path / "data" / "broken.npz").write_bytes(b"not a zip")
    runs = tmp_path / "runs"
    make_run(runs, "20260101-110000-aaaa-train", metrics={"phase_ssim": 0.81, "amplitude_mae": 0.04}, minutes_ago=70)
    make_run(runs, "20260101-113000-bbbb-train", status="failed", backend="torch", recon=False, minutes_ago=30, duration=5)
    make_parity_run(runs)
    return tmp_path


def app_for(data="data/train.npz") -> PinnacleApp:
    return PinnacleApp(data=data, runs="runs", clock=clock, fixtures="no-fixtures")


async def show(app, name):
    app.action_show(name)


async def test_datasets_valid(snap, world):
    await snap(app_for())


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
    await snap(app_for(), setup)


def run_setup(*streams, current=0):
    async def setup(app, pilot):
        for i, (label, stream) in enumerate(streams):
            app.add_run(f"job{i + 1}", label, backend="tensorflow")
            app.ingest(f"job{i + 1}", stream)
        app.current_run = f"job{current + 1}"
        app.action_show("run")
    return setup


async def test_run_empty(snap, world):
    await snap(app_for(), lambda app, pilot: show(app, "run"))


async def test_run_training_in_progress(snap, world):
    await snap(app_for(), run_setup(("train tensorflow train.npz", training_stream(3)),
                                    ("train torch train.npz", training_stream(1))))


async def test_run_failed(snap, world):
    await snap(app_for(), run_setup(("train tensorflow train.npz", training_stream(3, finish="failed"))))


async def test_run_cancelled_among_several(snap, world):
    await snap(app_for(), run_setup(("ok run", training_stream(8, finish="ok")),
                                    ("cancelled run", training_stream(2, finish="cancelled")), current=1))


async def test_results(snap, world):
    async def setup(app, pilot):
        app.results_dir = "runs/20260101-110000-aaaa-train"
        app.action_show("results")
    await snap(app_for(), setup)


async def test_results_missing_recon(snap, world):
    async def setup(app, pilot):
        app.results_dir = "runs/20260101-113000-bbbb-train"
        app.action_show("results")
    await snap(app_for(), setup)


async def test_parity_pass(snap, world):
    await snap(app_for(), lambda app, pilot: show(app, "parity"))


async def test_parity_fail(snap, world):
    make_parity_run(world / "runs", "20260101-120100-dead-parity", fail=True)

    async def setup(app, pilot):
        app.results_dir = "runs/20260101-120100-dead-parity"
        app.action_show("parity")
    await snap(app_for(), setup)


async def test_history(snap, world):
    await snap(app_for(), lambda app, pilot: show(app, "history"))


async def test_help(snap, world):
    async def setup(app, pilot):
        app.action_help()
    await snap(app_for(), setup)
