"""The operator console: a Textual app over the pure run state (console.state) and the job runner.

The app owns the run views (one ``RunView`` per job) and the runner; screens only render and send intents.
It never imports tensorflow or torch: jobs are ``python -m console ...`` children that speak the event protocol.
"""
from __future__ import annotations

import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message

from console.runner import JobSpec, Runner, console_command
from console.state import RunView, reduce_batch

SCREEN_KEYS = (  # (name, key, label) — one app-level binding and one palette entry each
    ("datasets", "d", "Datasets"), ("launch", "l", "Launch"), ("run", "r", "Run"),
    ("results", "s", "Results"), ("parity", "p", "Parity"), ("history", "h", "History"),
)


class EventsBatch(Message):
    """A batch of parsed events of one job (the runner delivers at most one per interval per job)."""

    def __init__(self, key: str, events: list[dict]) -> None:
        super().__init__()
        self.key, self.events = key, events


class RunsChanged(Message):
    """Posted to screens after run views changed (``key``) so the visible one re-renders."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class PinnacleApp(App):
    TITLE = "Pinnacle"
    SUB_TITLE = "ptychography PINN console"
    CSS = """
    Screen { layout: vertical; }
    .panel { border: round $primary; padding: 0 1; }
    .muted { color: $text-muted; }
    """
    BINDINGS = [
        *(Binding(key, f"show('{name}')", label) for name, key, label in SCREEN_KEYS),
        Binding("f1,question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, data: str | None = None, runs: str = "runs", clock: Callable[[], float] = time.time,
                 batch_interval: float = 0.05, grace: float = 5.0, fixtures: str | Path | None = None):
        super().__init__()
        from console.inspect import FIXTURES

        self.fixtures = Path(fixtures) if fixtures is not None else FIXTURES
        self.data = data
        self.runs_root = runs
        self.clock = clock
        self.views: dict[str, RunView] = {}
        self.current_run: str | None = None
        self.results_dir: str | None = None
        self.selected_dataset: str | None = data
        self.runner = Runner(self._deliver, interval=batch_interval, grace=grace)

    # ---- screens ---------------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        from console.screens.datasets import DatasetsScreen
        from console.screens.history import HistoryScreen
        from console.screens.launch import LaunchScreen
        from console.screens.parity import ParityScreen
        from console.screens.results import ResultsScreen
        from console.screens.run import RunScreen

        for name, cls in (("datasets", DatasetsScreen), ("launch", LaunchScreen), ("run", RunScreen),
                          ("results", ResultsScreen), ("parity", ParityScreen), ("history", HistoryScreen)):
            self.install_screen(cls(), name)
        self.push_screen("datasets")

    def action_show(self, name: str) -> None:
        if self.screen is not self.get_screen(name):
            self.switch_screen(name)

    def action_help(self) -> None:
        from console.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name, key, label in SCREEN_KEYS:
            yield SystemCommand(f"Show {label}", f"Switch to the {label} screen ({key})", lambda n=name: self.action_show(n))
        yield SystemCommand("Cancel run", "Cancel the run shown on the Run screen (c)", self.action_cancel_run)
        yield SystemCommand("Next run", "Follow the next run (n)", self.action_next_run)
        yield SystemCommand("Help", "Keys and screens (? or F1)", self.action_help)

    # ---- jobs ------------------------------------------------------------------------------------------------
    def _deliver(self, key: str, events: list[dict]) -> None:
        self.post_message(EventsBatch(key, events))

    def on_events_batch(self, message: EventsBatch) -> None:
        self.ingest(message.key, message.events)

    def ingest(self, key: str, events: Sequence[dict]) -> None:
        """Fold events into the run's view and tell the visible screen (also how tests feed canned streams)."""
        view = self.views.get(key) or RunView(key)
        was_finished = view.finished
        view = reduce_batch(view, events)
        self.views[key] = view
        if view.finished and not was_finished and view.run_dir:
            self.results_dir = view.run_dir
        self.screen.post_message(RunsChanged(key))

    def add_run(self, key: str, label: str, kind: str = "train", backend: str = "") -> None:
        self.views[key] = RunView(key, label=label, kind=kind, backend=backend)
        self.current_run = key

    async def start_job(self, spec: JobSpec, backend: str = "") -> None:
        self.add_run(spec.key, spec.label, spec.kind, backend)
        self.action_show("run")
        await self.runner.start(spec)

    async def launch(self, kind: str, args: Sequence[str], label: str, backend: str = "") -> str:
        """Start ``pinnacle <args> --runs ROOT`` as a child; returns the run key."""
        key = f"job{len(self.views) + 1}"
        argv = console_command([*args, "--runs", self.runs_root])
        await self.start_job(JobSpec(key, tuple(argv), label=label, kind=kind), backend)
        return key

    def action_cancel_run(self) -> None:
        if self.current_run is None:
            return
        view = self.views[self.current_run]
        if not view.finished:
            self.views[self.current_run] = replace(view, cancel_requested=True)
            self.runner.cancel(self.current_run)
            self.notify(f"cancelling {view.label or view.key}")
            self.screen.post_message(RunsChanged(self.current_run))

    def action_next_run(self) -> None:
        keys = list(self.views)
        if keys:
            i = keys.index(self.current_run) if self.current_run in keys else -1
            self.select_run(keys[(i + 1) % len(keys)])

    def select_run(self, key: str) -> None:
        self.current_run = key
        self.screen.post_message(RunsChanged(key))

    async def action_quit(self) -> None:
        """Cancel every running child and wait for it before leaving: no orphans."""
        if self.runner.running:
            self.notify(f"cancelling {len(self.runner.running)} running job(s)…")
            await self.runner.shutdown()
        self.exit()


def run_app(data: str | None = None, runs: str = "runs", clock: Callable[[], float] = time.time) -> None:
    """Open the console (``pinnacle`` / ``pinnacle console``); the bundled fixture is selected by default."""
    if data is None:
        from console.inspect import FIXTURES

        default = FIXTURES / "train.npz"
        data = str(default) if default.exists() else None
    app = PinnacleApp(data=data, runs=runs, clock=clock)
    try:
        app.run()
    finally:  # belt and braces: if the loop died, no child outlives the console
        for job in app.runner.running:
            job._kill_group(signal.SIGKILL)
