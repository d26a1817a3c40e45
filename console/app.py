"""The operator console: a Textual app over the pure run state (console.state), the job runner and the followers.

The app owns the run views (one ``RunView`` per run), the runner (children it started) and the followers (runs
started elsewhere, tailed from their events.jsonl). Screens only render and post typed messages
(console/messages.py); every change of state happens here. It never imports tensorflow or torch: jobs are
``python -m console ...`` children that speak the event protocol.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding

from console.follow import Follower, StoreWatcher, replay
from console.messages import (CancelRun, DatasetChosen, EventsBatch, JobRequest, OpenRun, RunsChanged, SelectRun,
                              ShowScreen, StartJob)
from console.readers import FIXTURES, RunRecord, read_run, same_path
from console.runner import JobSpec, Runner, console_command
from console.worker.keeper import KINDS as WORKER_KINDS, WorkerKeeper
from console.state import CHILD, OUTSIDE, STORED, RunView, planned_stages, reduce_batch

SCREEN_KEYS = (  # (name, key, label) — one app-level binding and one palette entry each
    ("datasets", "d", "Data"), ("launch", "l", "Launch"), ("run", "r", "Run"),
    ("results", "s", "Results"), ("parity", "p", "Parity"), ("history", "h", "History"),
)
WATCH_S = 1.0
"""How often the run store is checked for live runs the console does not follow yet."""


class PinnacleApp(App):
    TITLE = "Pinnacle"
    SUB_TITLE = "ptychography PINN console"
    CSS = """
    Screen { layout: vertical; }
    .panel { border: round $primary; padding: 0 1; }
    .muted { color: $text-muted; }
    """
    WIDE, TALL = 110, 34
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (TALL, "-tall")]
    BINDINGS = [
        *(Binding(key, f"show('{name}')", label) for name, key, label in SCREEN_KEYS),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, data: str | None = None, runs: str = "runs", clock: Callable[[], float] = time.time,
                 batch_interval: float = 0.05, grace: float = 5.0, fixtures: str | Path | None = None,
                 watch: float | None = WATCH_S, follow_interval: float = 0.2, worker: WorkerKeeper | None = None):
        super().__init__()
        self.worker = worker  # the warm reconstruction worker (console/worker/keeper.py); None: jobs run cold
        self.fixtures = Path(fixtures) if fixtures is not None else FIXTURES
        self.data = data
        self.runs_root = runs
        self.clock = clock
        self.views: dict[str, RunView] = {}
        self.current_run: str | None = None
        self._results_dir: str | None = None
        self.selected_dataset: str | None = data
        self.runner = Runner(self._deliver, interval=batch_interval, grace=grace)
        self.followers: dict[str, Follower] = {}
        self.watch_interval = watch
        self.follow_interval = follow_interval
        self.watcher = StoreWatcher(Path(runs))

    @property
    def narrow(self) -> bool:
        """Below the wide breakpoint (what screens deciding content, not just CSS, ask)."""
        return self.size.width < self.WIDE

    @property
    def short(self) -> bool:
        return self.size.height < self.TALL

    @property
    def results_dir(self) -> str | None:
        """The run the Results (and Parity) screen shows."""
        return self._results_dir

    @results_dir.setter
    def results_dir(self, run_dir: str | None) -> None:
        changed = run_dir != self._results_dir
        self._results_dir = run_dir
        if changed and self.is_running and self._installed_screens:
            self._changed("")

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
        self.set_interval(self.watch_interval or WATCH_S, self.poll)

    def poll(self) -> None:
        """Once a second: live runs that appeared in the store, and the training runs inside parity runs."""
        if self.watch_interval:
            self.watch_store()
        self.watch_parity_runs()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """The key of the screen already shown is left out of the footer (an 80-column footer has no room)."""
        if action == "show" and parameters and parameters[0] in self._installed_screens:
            return self.screen is not self.get_screen(parameters[0])
        return True

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
            yield SystemCommand(f"Show {name.title()}", f"Switch to the {name.title()} screen ({key})",
                                lambda n=name: self.action_show(n))
        yield SystemCommand("Cancel run", "Cancel the run shown on the Run screen (c)", self.action_cancel_run)
        yield SystemCommand("Next run", "Follow the next run (n)", self.action_next_run)
        yield SystemCommand("Help", "Keys and screens (? or F1)", self.action_help)

    def _changed(self, key: str) -> None:
        try:
            screen = self.screen
        except ScreenStackError:  # shutting down: a follower or the runner delivered after the last screen went
            return
        screen.post_message(RunsChanged(key))

    def on_unmount(self) -> None:
        """However the app ends, stop tailing (the followed runs themselves go on: they are not ours)."""
        for follower in self.followers.values():
            follower.stop()
        if self.worker is not None:
            self.worker.stop()

    # ---- messages from screens -------------------------------------------------------------------------------
    def on_show_screen(self, message: ShowScreen) -> None:
        self.action_show(message.name)

    def on_dataset_chosen(self, message: DatasetChosen) -> None:
        """Kept relative to the working directory when it lies under it: shorter in fields and command lines."""
        rel = os.path.relpath(message.path)
        self.selected_dataset = message.path if rel.startswith("..") else rel

    async def on_start_job(self, message: StartJob) -> None:
        await self.launch(message.request)

    def on_open_run(self, message: OpenRun) -> None:
        key = self.open_run(message.run_dir)
        if key is not None:
            self.current_run = key
        self.results_dir = message.run_dir
        self.action_show(message.screen)

    def on_select_run(self, message: SelectRun) -> None:
        self.select_run(message.key)

    def on_cancel_run(self, message: CancelRun) -> None:
        self.action_cancel_run(message.key)

    # ---- run views -------------------------------------------------------------------------------------------
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
        if view.finished and not was_finished and view.run_dir and view.source != STORED and not view.parent:
            if view.source == CHILD or key == self.current_run:
                self.results_dir = view.run_dir
            self.notify(f"{view.label or view.run_id}: {view.status}" +
                        (f" — {view.cause}" if view.cause else " — results on s"),
                        severity="error" if view.cause else "information", timeout=3)
        self._changed(key)

    def add_run(self, key: str, label: str, kind: str = "train", backend: str = "", *, held_out: bool = False,
                method: str = "", epochs: int = 0, source: str = CHILD) -> None:
        self.views[key] = RunView(key, label=label, kind=kind, backend=backend, source=source, epochs=epochs,
                                  method=method, plan=planned_stages(kind, held_out, method))
        self.current_run = key

    async def start_job(self, spec: JobSpec, backend: str = "", **plan) -> None:
        self.add_run(spec.key, spec.label, spec.kind, backend, **plan)
        self.action_show("run")
        await self.runner.start(spec)

    async def launch(self, request: JobRequest) -> str:
        """Start ``pinnacle <args> --runs ROOT`` as a child; returns the run key."""
        key = f"job{len(self.views) + 1}"
        argv = console_command([*request.args, "--runs", self.runs_root])
        env: tuple[tuple[str, str], ...] = ()
        if self.worker is not None and request.kind in WORKER_KINDS:
            if self.worker.ensure() == "restarted":
                self.notify("the reconstruction worker had stopped: restarted it", timeout=4)
            env = (("PINNACLE_WORKER_SOCKET", str(self.worker.path)),)
        await self.start_job(JobSpec(key, tuple(argv), label=request.label, kind=request.kind, env=env),
                             request.backend,
                             held_out=request.held_out, method=request.method, epochs=request.epochs)
        return key

    def key_for(self, run_dir: str) -> str | None:
        """The view already showing this run directory (a child of ours, or one followed/replayed)."""
        for key, view in self.views.items():
            if view.run_dir and same_path(view.run_dir, run_dir):
                return key
        return None

    def open_run(self, run_dir: str) -> str | None:
        """A view of a run of the store: the existing one, a live follower, or the replayed history."""
        key = self.key_for(run_dir)
        if key is not None:
            return key
        rec = read_run(run_dir)
        if rec is None:
            return None
        key = f"run:{rec.run_id}"
        self._add_record_view(key, rec, OUTSIDE if rec.live else STORED)
        if rec.live:
            self.follow(key, run_dir)
        else:
            self.ingest(key, replay(run_dir))
        if rec.kind == "parity":
            self.watch_parity_runs()
        return key

    def _add_record_view(self, key: str, rec: RunRecord, source: str) -> None:
        method = str(rec.config.get("method") or "")
        held_out = bool(rec.config.get("test") or rec.config.get("held_out"))
        where = " (outside)" if source == OUTSIDE else ""
        self.views[key] = RunView(key, label=f"{rec.kind} {rec.backend} {rec.dataset}{where}".strip(), kind=rec.kind,
                                  backend=rec.backend, source=source, run_dir=rec.run_dir, run_id=rec.run_id,
                                  pid=rec.pid, epochs=rec.planned_epochs or 0, method=method,
                                  plan=planned_stages(rec.kind, held_out, method))

    def follow(self, key: str, run_dir: str) -> None:
        follower = Follower(key, Path(run_dir), self._deliver, interval=self.follow_interval)
        self.followers[key] = follower
        follower.start()

    def watch_store(self) -> None:
        """Follow live runs that appeared in the store (started by a script or a colleague)."""
        ours = {job.pid for job in self.runner.jobs.values() if job.pid}
        for run_dir in self.watcher.live_runs():
            if self.key_for(str(run_dir)) is not None:
                continue
            rec = read_run(run_dir)
            if rec is None or rec.pid in ours:
                continue
            key = f"run:{rec.run_id}"
            self._add_record_view(key, rec, OUTSIDE)
            self.follow(key, str(run_dir))
            current = self.views.get(self.current_run) if self.current_run else None
            if current is None or current.finished:
                self.current_run = key
            self.notify(f"following {rec.run_id}, started elsewhere (r)", timeout=3)
            self._changed(key)

    def watch_parity_runs(self) -> None:
        """A parity run trains both backends as runs of its own store (RUN_DIR/runs); their events.jsonl carry the
        epoch losses the parity stream only logs. Follow (or replay) them as hidden views of the parity run."""
        for key, view in list(self.views.items()):
            if view.kind != "parity" or view.parent or not view.run_dir:
                continue
            nested = Path(view.run_dir) / "runs"
            try:
                dirs = sorted(p for p in nested.iterdir() if p.is_dir() and p.name.endswith("-train"))
            except OSError:
                continue
            for run_dir in dirs:
                sub = f"{key}/{run_dir.name}"
                if sub in self.views:
                    continue
                rec = read_run(run_dir)
                if rec is None:
                    continue
                self.views[sub] = RunView(sub, label=f"{rec.kind} {rec.backend}", kind=rec.kind, backend=rec.backend,
                                          source=OUTSIDE if rec.live else STORED, run_dir=str(run_dir),
                                          run_id=rec.run_id, epochs=rec.planned_epochs or 0, parent=key)
                if rec.live:
                    self.follow(sub, str(run_dir))
                else:
                    self.ingest(sub, replay(run_dir))

    def run_keys(self) -> list[str]:
        """The runs the Run screen lists (a parity run's own trainings are shown inside it)."""
        return [k for k, v in self.views.items() if not v.parent]

    def action_next_run(self) -> None:
        keys = self.run_keys()
        if keys:
            i = keys.index(self.current_run) if self.current_run in keys else -1
            self.select_run(keys[(i + 1) % len(keys)])

    def select_run(self, key: str) -> None:
        self.current_run = key
        view = self.views.get(key)
        if view is not None and view.finished and view.run_dir:
            self.results_dir = view.run_dir
        self._changed(key)

    # ---- cancel and quit -------------------------------------------------------------------------------------
    def action_cancel_run(self, key: str | None = None) -> None:
        """Ask, then cancel: SIGINT to a child's process group, or to an outside run's writer (as Ctrl-C)."""
        from console.screens.confirm import ConfirmScreen

        key = key or self.current_run
        view = self.views.get(key) if key else None
        if view is None:
            self.notify("no run to cancel", severity="warning")
            return
        if not view.live:
            self.notify(f"{view.label or view.key} is not running ({view.status})", severity="warning")
            return
        where = "started elsewhere: its process (pid %s) gets SIGINT, as Ctrl-C" % view.pid \
            if view.source == OUTSIDE else "its process group gets SIGINT, as Ctrl-C"
        question = f"Cancel {view.label or view.run_id}?\n{where}; it saves what it has and ends with exit 130."
        self.push_screen(ConfirmScreen(question, yes="Cancel run (y)", no="Keep running (n)"),
                         lambda yes: self._cancel(key) if yes else None)

    def _cancel(self, key: str) -> None:
        view = self.views[key]
        if view.source == CHILD:
            self.runner.cancel(key)
        elif key in self.followers and not self.followers[key].cancel():
            self.notify(f"{view.run_id}: its writer is gone; nothing to cancel", severity="warning")
            return
        self.views[key] = replace(view, cancel_requested=True)
        self.notify(f"cancelling {view.label or view.key}", timeout=3)
        self._changed(key)

    async def action_quit(self) -> None:
        """Ask before quitting with runs of ours alive; quitting cancels them and waits (no orphans). Runs started
        elsewhere are only followed: they keep running."""
        from console.screens.confirm import ConfirmScreen

        alive = self.runner.running
        if not alive:
            await self._quit()
            return
        outside = sum(1 for v in self.views.values() if v.source == OUTSIDE and v.live)
        question = (f"{len(alive)} run(s) started here are still running. Quit and cancel them (SIGINT, then wait)?"
                    + (f"\n{outside} run(s) started elsewhere keep running." if outside else ""))

        async def answer(yes: bool | None) -> None:
            if yes:
                await self._quit()

        self.push_screen(ConfirmScreen(question, yes="Cancel runs and quit (y)", no="Stay (n)"), answer)

    async def _quit(self) -> None:
        if self.runner.running:
            self.notify(f"cancelling {len(self.runner.running)} running job(s)…")
            await self.runner.shutdown()
        for follower in self.followers.values():
            follower.stop()
        self.exit()


def run_app(data: str | None = None, runs: str = "runs", clock: Callable[[], float] = time.time) -> None:
    """Open the console (``pinnacle`` / ``pinnacle console``); the bundled fixture is selected by default."""
    if data is None:
        default = FIXTURES / "train.npz"
        data = str(default) if default.exists() else None
    worker = WorkerKeeper(console_command(["serve"]), log=Path(runs) / ".worker.log")
    app = PinnacleApp(data=data, runs=runs, clock=clock, worker=worker)
    try:
        app.run()
    finally:  # belt and braces: if the loop died, no child outlives the console
        for job in app.runner.running:
            job.kill_group(signal.SIGKILL)
