"""Run screen: the followed run — a child of the console, a run started elsewhere, or a finished run's history —
rendered from its RunView only: status, stages, overall and epoch progress, throughput, ETA, the cause of a failure,
the loss plot, the held-out preview (amplitude and phase, updating every few epochs) and the log."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from console import imaging
from console.messages import CancelRun, SelectRun
from console.readers import Preview, load_preview
from console.screens.common import StateScreen
from console.state import OUTSIDE, STAGE_ORDER, STORED, RunView, fmt_duration
from console.widgets.image import ImageView
from console.widgets.log_tail import LogTail
from console.widgets.loss_plot import LossPlot
from engine.backends import SHORT_LABELS
from engine.events import CANCELLED, FAILED, INFERENCE, INTERRUPTED, OK, REFINING, RUNNING, TRAINING

ICONS = {RUNNING: ("●", "green"), OK: ("✔", "green"), FAILED: ("✘", "red"), CANCELLED: ("■", "yellow"),
         INTERRUPTED: ("✘", "magenta")}
SOURCES = {OUTSIDE: "started elsewhere", STORED: "from the run store"}


def status_text(status: str) -> Text:
    icon, style = ICONS.get(status, ("○", "dim"))
    return Text(f"{icon} {status}", style=style)


def stage_line(view: RunView) -> Text:
    """The run's own stages in engine order (engine.events.STAGES): done plain, current highlighted, to come dim."""
    seen = [s for s, _ in view.stages]
    names = [s for s in STAGE_ORDER if s in view.plan or s in seen] + [s for s in dict.fromkeys(seen) if s not in STAGE_ORDER]
    text = Text()
    for i, name in enumerate(names):
        if i:
            text.append(" ▸ ", style="dim")
        style = "bold reverse" if name == view.stage and not view.finished else ("" if name in seen else "dim")
        text.append(name, style=style)
    return text


def rate_line(view: RunView) -> str:
    """Epochs done, throughput in named units, ETA, time — each only where the run has such a thing."""
    parts = []
    looping = view.stage in (TRAINING, REFINING)
    if view.epochs and (view.epoch or looping):
        # once a run has refined (reconstruct, or train --test-refine after its training), its epochs are those
        refined = view.stage == REFINING or any(name == REFINING for name, _ in view.stages)
        label = "refinement epochs" if refined else "epochs"
        parts.append(f"{view.epoch}/{view.epochs} {label}")
    value, unit = view.rate
    if value is not None or looping or view.stage == INFERENCE:
        parts.append(f"{value:,.1f} {unit}" if value is not None else f"– {unit}")
    if view.finished:
        parts.append(f"ran {fmt_duration(view.t)}")
    else:
        parts.append(f"ETA {fmt_duration(view.eta_s)}")
        parts.append(f"elapsed {fmt_duration(view.t)}")
    return "  ·  ".join(parts)


def failure_text(view: RunView) -> Text | None:
    """Why the run failed: error kind and message, then the last lines it printed (or its traceback's end)."""
    cause = view.cause
    if cause is None:
        return None
    text = Text(cause, style="bold red")
    if view.exit_code is not None:
        text.append(f"   (exit {view.exit_code})", style="red")
    context = view.traceback_tail[-2:] or view.last_output[-2:]  # the failing frame, or what it printed last
    for line in context:
        text.append("\n" + line.strip(), style="dim")
    return text


class RunScreen(StateScreen):
    BINDINGS = [Binding("c", "cancel", "Cancel"), Binding("n", "next_run", "Next")]
    DEFAULT_CSS = """
    RunScreen #run-list { width: 28; border: round $primary; }
    RunScreen.-empty #run-bars, RunScreen.-empty #run-rate, RunScreen.-empty #run-middle,
    RunScreen.-empty LogTail { display: none; }
    RunScreen.-narrow #run-list { display: none; }
    RunScreen #run-main { width: 1fr; }
    RunScreen #run-header { height: auto; padding: 0 1; }
    RunScreen #run-bars { height: 1; margin: 0 1; }
    RunScreen #run-bars Static { width: auto; margin-right: 1; }
    RunScreen #run-bars #run-epoch-label { margin-left: 2; }
    RunScreen #run-bars .pct { width: 5; margin: 0; text-align: right; }
    RunScreen #run-bars ProgressBar { width: 1fr; }
    RunScreen #run-bars Bar { width: 1fr; }
    RunScreen #run-rate { height: 1; margin: 0 1; }
    RunScreen #run-failure { height: auto; max-height: 5; border: round $error; padding: 0 1; display: none; }
    RunScreen.-short #run-failure { max-height: 4; }
    RunScreen #run-failure.failed { display: block; }
    RunScreen #run-middle { height: 2fr; min-height: 8; }
    RunScreen.-short #run-middle { min-height: 6; }
    RunScreen #run-preview { width: 1fr; display: none; }
    RunScreen #run-preview.shown { display: block; }
    RunScreen LossPlot { width: 1fr; }
    RunScreen #run-preview ImageView { min-height: 4; }
    RunScreen #run-preview-title { height: 1; padding: 0 1; color: $primary; text-style: bold; }
    RunScreen LogTail { height: 1fr; min-height: 5; }
    RunScreen.-short LogTail { min-height: 4; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._preview_path: str | None = None
        self._preview: Preview | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield OptionList(id="run-list")
            with Vertical(id="run-main"):
                yield Static("No run yet — start one from Launch (l), or open one from History (h). Runs started "
                             "elsewhere in the run store appear here by themselves.", id="run-header")
                with Horizontal(id="run-bars"):  # percentages are ours: fr widths squeezed ProgressBar's own
                    yield Static("overall", id="run-overall-label")
                    yield ProgressBar(total=1000, show_eta=False, show_percentage=False, id="run-overall")
                    yield Static("", id="run-overall-pct", classes="pct")
                    yield Static("epoch", id="run-epoch-label")
                    yield ProgressBar(total=1000, show_eta=False, show_percentage=False, id="run-epoch")
                    yield Static("", id="run-epoch-pct", classes="pct")
                yield Static("", id="run-rate")
                yield Static("", id="run-failure")
                with Horizontal(id="run-middle"):
                    yield LossPlot()
                    with Vertical(id="run-preview"):
                        yield Static("", id="run-preview-title")
                        with Horizontal():
                            yield ImageView("amplitude", id="run-preview-amplitude")
                            yield ImageView("phase", id="run-preview-phase")
                yield LogTail(id="run-log")
        yield Footer(compact=True, show_command_palette=False)

    TITLES = {"#run-list": "runs (enter: follow)", "#run-failure": "why it failed"}

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Cancel is offered only while the followed run is alive (a child, or a run started elsewhere)."""
        if action == "cancel":
            view = self.app.views.get(self.app.current_run) if self.app.current_run else None
            return view is not None and view.live
        if action == "next_run":
            return len(self.app.run_keys()) > 1
        return True

    def action_next_run(self) -> None:
        keys = self.app.run_keys()
        if keys:
            i = keys.index(self.app.current_run) if self.app.current_run in keys else -1
            self.post_message(SelectRun(keys[(i + 1) % len(keys)]))

    def action_cancel(self) -> None:
        self.post_message(CancelRun(self.app.current_run))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.post_message(SelectRun(event.option.id))

    def redraw(self) -> None:
        app = self.app
        runs = self.query_one("#run-list", OptionList)
        keys = app.run_keys()
        options = [Option(Text.assemble(status_text(app.views[k].status), " ", app.views[k].label or k), id=k)
                   for k in keys]
        runs.clear_options()
        runs.add_options(options)
        self.set_class(app.current_run not in keys, "-empty")
        if app.current_run in keys:
            runs.highlighted = keys.index(app.current_run)
            self.render_view(app.views[app.current_run], keys.index(app.current_run), len(keys))

    def render_view(self, view: RunView, index: int = 0, count: int = 1) -> None:
        head = Text.assemble((view.label or view.key, "bold"), "  ", status_text(view.status))
        if view.backend:
            head.append(f"  {view.backend}")
        if view.exit_code is not None:
            head.append(f"  exit {view.exit_code}", style="bold" if view.exit_code else "dim")
        if view.cancel_requested and not view.finished:
            head.append("  cancelling…", style="bold yellow")
        if view.warnings:
            head.append(f"  ⚠ {view.warnings} warning(s)", style="bold yellow")
        head.append("\n")
        head.append(view.run_id or "(no run id yet)", style="dim")
        if view.source in SOURCES:
            head.append(f" · {SOURCES[view.source]}" + (f", pid {view.pid}" if view.pid and view.source == OUTSIDE else ""),
                        style="italic")
        if count > 1:
            head.append(f" · run {index + 1}/{count}", style="dim")
        head.append("\n")
        head.append_text(stage_line(view))
        self.query_one("#run-header", Static).update(head)
        self.query_one("#run-overall", ProgressBar).update(total=1000, progress=round(1000 * view.overall_fraction))
        self.query_one("#run-overall-pct", Static).update(f"{round(100 * view.overall_fraction)}%")
        epoch_fraction = None if view.finished else view.epoch_fraction
        for wid in ("#run-epoch", "#run-epoch-label", "#run-epoch-pct"):
            self.query_one(wid).display = epoch_fraction is not None
        if epoch_fraction is not None:
            self.query_one("#run-epoch-label", Static).update(f"epoch {min(view.epoch + 1, view.epochs)}")
            self.query_one("#run-epoch", ProgressBar).update(total=1000, progress=round(1000 * epoch_fraction))
            self.query_one("#run-epoch-pct", Static).update(f"{round(100 * epoch_fraction)}%")
        self.query_one("#run-rate", Static).update(rate_line(view))
        failure = failure_text(view)
        panel = self.query_one("#run-failure", Static)
        panel.set_class(failure is not None, "failed")
        panel.update(failure or "")
        self._render_losses(view)
        self._render_preview(view)
        self.query_one(LogTail).show(view.logs)
        self.refresh_bindings()

    def _render_losses(self, view: RunView) -> None:
        series = {}
        if view.train_loss:
            series["train"] = (view.loss_epochs, view.train_loss)
        if view.val_loss:
            series["val"] = (view.val_epochs, view.val_loss)
        if view.refine_loss:
            series["refine"] = (tuple(e for e, _ in view.refine_loss), tuple(v for _, v in view.refine_loss))
        for sub in self.app.views.values():  # a parity run: the losses of its two trainings
            if sub.parent == view.key and sub.train_loss:
                short = SHORT_LABELS.get(sub.backend, sub.backend)
                series[f"{short} train"] = (sub.loss_epochs, sub.train_loss)
                if sub.val_loss:
                    series[f"{short} val"] = (sub.val_epochs, sub.val_loss)
        unit = "refinement: Poisson deviance per pixel" if view.refine_loss and not view.train_loss else ""
        self.query_one(LossPlot).show_losses(series, view.epochs, unit)

    def _render_preview(self, view: RunView) -> None:
        """The latest held-out preview: read once per new file (the engine writes a new one every few epochs)."""
        latest = view.latest_preview
        box = self.query_one("#run-preview")
        box.set_class(latest is not None, "shown")
        if latest is None:
            self._preview_path, self._preview = None, None
            return
        path = str(Path(view.run_dir) / latest[1]) if view.run_dir else latest[1]
        if path != self._preview_path:
            loaded = load_preview(path)
            if loaded is not None:
                self._preview_path, self._preview = path, loaded
        p = self._preview
        amp_view = self.query_one("#run-preview-amplitude", ImageView)
        phase_view = self.query_one("#run-preview-phase", ImageView)
        if p is None:
            amp_view.set_array(None, placeholder="preview not readable yet")
            phase_view.set_array(None, placeholder="")
            return
        metrics = view.heldout_at(p.epoch) or {k.removeprefix("heldout_"): v for k, v in p.metrics.items()}
        ssim = metrics.get("phase_ssim")
        self.query_one("#run-preview-title", Static).update(
            f"held-out, epoch {p.epoch}" + (f" · phase SSIM {ssim:.3f}" if ssim is not None else ""))
        amp_view.set_array(p.amplitude, imaging.amplitude_scale(p.amplitude), title="amplitude")
        phase_view.set_array(p.phase, imaging.phase_scale(p.phase), title="phase")
