"""Results screen: a run's reconstructions side by side — the PINN's and the refined one (hybrid), the scan's ground
truth when it has one, and the phase difference — with their metrics; or, for a run without a reconstruction, why
not (a failed run's cause, a training run without a held-out scan, a run still going)."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Static

from console import imaging
from console.readers import RunResults, failure_context, load_results, metric_rows, why_no_reconstruction
from console.screens.common import StateScreen
from console.screens.run import status_text
from console.widgets.image import ImageView
from engine.events import FAILED, INTERRUPTED

PANELS = ("obj0", "obj1", "truth", "diff")


class ResultsScreen(StateScreen):
    BINDINGS = [Binding("a", "toggle_part", "Amplitude/phase")]
    DEFAULT_CSS = """
    ResultsScreen #res-head { height: auto; padding: 0 1; }
    ResultsScreen #res-images { height: 1fr; min-height: 8; }
    ResultsScreen .res-row { height: 1fr; }
    ResultsScreen .res-row.hidden { display: none; }
    ResultsScreen ImageView.hidden { display: none; }
    ResultsScreen #res-bottom { height: auto; max-height: 12; }
    ResultsScreen #res-metrics { width: auto; min-width: 40; height: auto; max-height: 11; border: round $primary; }
    ResultsScreen #res-artifacts { width: 1fr; height: auto; max-height: 10; border: round $primary; padding: 0 1; }
    ResultsScreen.-narrow #res-artifacts { display: none; }
    ResultsScreen.-narrow #res-metrics { width: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.part = "both"  # both | phase | amplitude (a short terminal shows one row of images at a time)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="res-head")
        with Vertical(id="res-images"):
            for part in ("amplitude", "phase"):
                with Horizontal(id=f"res-row-{part}", classes="res-row"):
                    for panel in PANELS:
                        yield ImageView(id=f"res-{panel}-{part}")
        with Horizontal(id="res-bottom"):
            yield DataTable(id="res-metrics", show_cursor=False)
            yield Static("", id="res-artifacts")
        yield Footer(compact=True, show_command_palette=False)

    TITLES = {"#res-metrics": "metrics", "#res-artifacts": "files"}

    def shows(self, key: str) -> bool:
        """Another run shown, or the shown run changed (a live run's files appear as it goes)."""
        view = self.app.views.get(key)
        shown = self.app.results_dir
        return view is None or not shown or bool(view.run_dir and Path(view.run_dir).name == Path(shown).name)

    def on_resize(self) -> None:
        self._show_rows()

    def action_toggle_part(self) -> None:
        order = ("both", "phase", "amplitude") if not self.app.short else ("phase", "amplitude")
        self.part = order[(order.index(self.part) + 1) % len(order)] if self.part in order else order[0]
        self._show_rows()

    def _show_rows(self) -> None:
        part = self.part if not self.app.short or self.part != "both" else "phase"
        for name in ("amplitude", "phase"):
            self.query_one(f"#res-row-{name}").set_class(part not in ("both", name), "hidden")

    def redraw(self) -> None:
        run_dir = self.app.results_dir
        head = self.query_one("#res-head", Static)
        table = self.query_one("#res-metrics", DataTable)
        table.clear(columns=True)
        self._show_rows()
        if not run_dir:
            head.update("No results yet: finish a run, or open one from History (h).")
            self._images(None)
            self.query_one("#res-artifacts", Static).update("")
            return
        res = load_results(run_dir)
        head.update(self._head(res))
        self._images(res)
        rows = metric_rows(res.objects, compact=self.app.short)
        if rows:  # explicit widths: auto widths lagged behind a quick clear-and-refill (values showed cut)
            labels = ["metric", *(o.label for o in res.objects)]
            widths = [max(len(labels[0]), *(len(r) for r, _ in rows))]
            widths += [max(len(labels[i + 1]), *(len(v[i]) for _, v in rows)) for i in range(len(res.objects))]
            for label, width in zip(labels, widths):
                table.add_column(label, width=width)
            for label, values in rows:
                table.add_row(label, *values)
            table.border_subtitle = "scanned region, phase offset and ramp removed"
        else:
            message = self._no_metrics(res)
            table.add_column("metrics", width=len(message))
            table.add_row(message)
            table.border_subtitle = ""
        self.query_one("#res-artifacts", Static).update("\n".join(res.artifacts) or "none")

    def _head(self, res: RunResults) -> Text:
        rec = res.record
        text = Text()
        text.append(Path(res.run_dir).name, style="bold")
        if rec is not None:
            text.append("  ")
            text.append_text(status_text(rec.status))
            text.append(f"  {rec.kind} · {rec.backend}" + (f" · trained on {rec.dataset}" if rec.kind == "train" else ""))
        if res.scan:
            text.append(f"  scan {Path(res.scan).name}", style="dim")
        if rec is not None and rec.status in (FAILED, INTERRUPTED):
            text.append(f"\n✘ {rec.cause or 'the writer died without finishing (killed, out of memory, power)'}",
                        style="bold red")
            for line in failure_context(res.run_dir):
                text.append("\n  " + line.strip(), style="dim")
        if not res.objects:
            text.append("\n" + why_no_reconstruction(rec), style="yellow")
        for note in res.notes:
            text.append("\n" + note, style="yellow")
        return text

    @staticmethod
    def _no_metrics(res: RunResults) -> str:
        if not res.objects:
            return "no reconstruction, so no metrics"
        if res.truth is None:
            return f"the scan {Path(res.scan).name or '?'} has no ground truth (objectGuess): nothing to score against"
        return "no metrics.json in this run"

    def _images(self, res: RunResults | None) -> None:
        """One column per object, then the ground truth, then the phase difference (final − truth, or refined −
        PINN without truth); amplitude row above the phase row. Phase: offset removed, own range."""
        views = {f"{p}-{part}": self.query_one(f"#res-{p}-{part}", ImageView) for p in PANELS for part in ("amplitude", "phase")}
        for v in views.values():
            v.set_class(True, "hidden")
        if res is None or not res.objects:
            first = views["obj0-phase"]
            first.set_class(False, "hidden")
            first.set_array(None, title="reconstruction", placeholder="no reconstruction in this run" if res else "")
            views["obj0-amplitude"].set_class(False, "hidden")
            views["obj0-amplitude"].set_array(None, title="", placeholder="")
            return
        region = res.region
        columns = [(f"obj{i}", o.label, o.object) for i, o in enumerate(res.objects[:2])]
        if res.truth is not None:
            columns.append(("truth", "truth", res.truth))
        for panel, label, obj in columns:  # |O| amplitude, φ phase: titles must fit a quarter of 80 columns
            amp = imaging.crop(imaging.amplitude(obj), region)
            phase = imaging.crop(imaging.remove_phase_offset(obj), region)
            views[f"{panel}-amplitude"].set_array(amp, imaging.amplitude_scale(amp), title=f"{label} |O|")
            views[f"{panel}-phase"].set_array(phase, imaging.phase_scale(phase), title=f"{label} φ")
            views[f"{panel}-amplitude"].set_class(False, "hidden")
            views[f"{panel}-phase"].set_class(False, "hidden")
        ref, what = (res.truth, "vs truth") if res.truth is not None else (
            (res.objects[0].object, f"vs {res.objects[0].label}") if len(res.objects) > 1 else (None, ""))
        diff = imaging.phase_difference(res.objects[-1].object, ref) if ref is not None else None
        if diff is not None:
            diff = imaging.crop(diff, region)
            for part in ("amplitude", "phase"):
                views[f"diff-{part}"].set_class(False, "hidden")
            views["diff-phase"].set_array(diff, imaging.difference_scale(diff), title=f"Δφ {what}")
            amp_diff = self._amplitude_difference(res, ref, region)
            views["diff-amplitude"].set_array(amp_diff, imaging.difference_scale(amp_diff, unit="") if amp_diff is not None else None,
                                              title=f"Δ|O| {what}", placeholder="grids differ")

    @staticmethod
    def _amplitude_difference(res: RunResults, ref, region):
        import numpy as np

        a, b = res.objects[-1].object, ref
        if a.shape != b.shape:
            return None
        m = imaging.covered(a) & imaging.covered(b)
        diff = np.where(m, np.abs(a) - np.abs(b), np.nan)
        return imaging.crop(diff, region)
