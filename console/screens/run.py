"""Run screen: live panels of the followed run, fed only by its RunView (stage, progress, ETA, loss, log)."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from console.state import CANCELLED, FAILED, OK, RUNNING, RunView, fmt_duration
from console.widgets.log_tail import LogTail
from console.widgets.loss_curve import LossCurve

ICONS = {RUNNING: ("●", "green"), OK: ("✔", "green"), FAILED: ("✘", "red"), CANCELLED: ("■", "yellow")}
STAGES = ("loading", "grouping", "training", "inference", "stitching", "evaluating")


def status_text(status: str) -> Text:
    icon, style = ICONS.get(status, ("○", "dim"))
    return Text(f"{icon} {status}", style=style)


def stage_line(view: RunView) -> Text:
    seen = [s for s, _ in view.stages]
    text = Text("stage  ")
    for i, name in enumerate(dict.fromkeys([*STAGES, *seen])):
        if i:
            text.append(" ▸ ", style="dim")
        style = "bold reverse" if name == view.stage and not view.finished else ("" if name in seen else "dim")
        text.append(name, style=style)
    return text


def progress_line(view: RunView) -> str:
    parts = []
    if view.epochs:
        parts.append(f"epoch {view.epoch}/{view.epochs}")
    if view.progress.total:
        parts.append(f"step {view.progress.done}/{view.progress.total}")
    rate = view.throughput
    parts.append(f"{rate:,.1f} items/s" if rate is not None else "– items/s")
    parts.append(f"ETA {fmt_duration(view.eta_s)}")
    parts.append(f"t {fmt_duration(view.t)}")
    return "  ·  ".join(parts)


class RunScreen(Screen):
    BINDINGS = [Binding("c", "app.cancel_run", "Cancel run"), Binding("n", "app.next_run", "Next run")]
    DEFAULT_CSS = """
    RunScreen #run-list { width: 32; border: round $primary; }
    RunScreen #run-main { width: 1fr; }
    RunScreen #run-header { height: auto; border: round $primary; padding: 0 1; }
    RunScreen #run-progress-row { height: 1; margin: 0 1; }
    RunScreen #run-progress { width: 1fr; }
    RunScreen #run-rate { height: 1; margin: 0 1; }
    RunScreen #run-errors { height: auto; max-height: 8; border: round $error; color: $error; padding: 0 1; display: none; }
    RunScreen #run-errors.has-errors { display: block; }
    RunScreen LossCurve { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield OptionList(id="run-list")
            with Vertical(id="run-main"):
                yield Static("No run yet — start one from Launch (l).", id="run-header")
                with Horizontal(id="run-progress-row"):
                    yield ProgressBar(total=1000, show_eta=False, id="run-progress")
                yield Static("", id="run-rate")
                yield Static("", id="run-errors")
                yield LossCurve()
                yield LogTail(id="run-log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#run-list").border_title = "runs"
        self.query_one("#run-header").border_title = "run"
        self.query_one("#run-errors").border_title = "errors"
        self.render_runs()

    def on_screen_resume(self) -> None:
        self.render_runs()

    def on_runs_changed(self, message) -> None:
        self.render_runs()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.app.select_run(event.option.id)

    def render_runs(self) -> None:
        app = self.app
        runs = self.query_one("#run-list", OptionList)
        options = [Option(Text.assemble(status_text(v.status), " ", v.label or k), id=k) for k, v in app.views.items()]
        runs.clear_options()
        runs.add_options(options)
        if app.current_run in app.views:
            runs.highlighted = list(app.views).index(app.current_run)
            self.render_view(app.views[app.current_run])

    def render_view(self, view: RunView) -> None:
        head = Text.assemble((view.label or view.key, "bold"), "   ", status_text(view.status))
        if view.backend:
            head.append(f"   backend {view.backend}")
        if view.run_id:
            head.append(f"   run {view.run_id}", style="dim")
        head.append("\n")
        head.append_text(stage_line(view))
        if view.warnings:
            head.append(f"   ⚠ {view.warnings} warning(s)", style="bold yellow")
        self.query_one("#run-header", Static).update(head)
        self.query_one("#run-progress", ProgressBar).update(total=1000, progress=round(1000 * view.overall_fraction))
        self.query_one("#run-rate", Static).update(progress_line(view))
        errors = self.query_one("#run-errors", Static)
        errors.set_class(bool(view.errors), "has-errors")
        errors.update("\n".join(view.errors[-5:]))
        self.query_one(LossCurve).update_losses(view.train_loss, view.val_loss)
        self.query_one(LogTail).show(view.logs)
