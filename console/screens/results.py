"""Results screen: amplitude (viridis) and phase (cyclic twilight) of a run, its metrics and artifact paths."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from console.inspect import load_results
from console.widgets.image import ImageView


class ResultsScreen(Screen):
    DEFAULT_CSS = """
    ResultsScreen #res-head { height: auto; padding: 0 1; }
    ResultsScreen #res-images { height: 2fr; }
    ResultsScreen ImageView { border: round $primary-darken-2; }
    ResultsScreen #res-bottom { height: 1fr; }
    ResultsScreen #res-metrics { width: 50; border: round $primary; }
    ResultsScreen #res-artifacts { width: 1fr; border: round $primary; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="res-head")
        with Horizontal(id="res-images"):
            yield ImageView(kind="amplitude", title="amplitude", id="res-amplitude")
            yield ImageView(kind="phase", title="phase (rad)", id="res-phase")
        with Horizontal(id="res-bottom"):
            yield DataTable(id="res-metrics", show_cursor=False)
            yield Static("", id="res-artifacts")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#res-metrics").border_title = "metrics"
        self.query_one("#res-artifacts").border_title = "artifacts"
        self.query_one("#res-metrics", DataTable).add_columns("metric", "value")
        self.render_results()

    def on_screen_resume(self) -> None:
        self.render_results()

    def on_runs_changed(self, message) -> None:
        self.render_results()

    def render_results(self) -> None:
        run_dir = self.app.results_dir
        head = self.query_one("#res-head", Static)
        table = self.query_one("#res-metrics", DataTable)
        table.clear()
        if not run_dir:
            head.update("No results yet: finish a run, or open one from History (h).")
            for wid in ("#res-amplitude", "#res-phase"):
                self.query_one(wid, ImageView).set_array(None)
            self.query_one("#res-artifacts", Static).update("")
            return
        res = load_results(run_dir)
        head.update(f"[b]{Path(run_dir).name}[/b]   [dim]{run_dir}[/]" + (f"\n[yellow]{res.message}[/]" if res.message else ""))
        rng = lambda a: "" if a is None or not a.size else f" [{float(a.min()):.3g}, {float(a.max()):.3g}]"  # noqa: E731
        self.query_one("#res-amplitude", ImageView).set_array(res.amplitude, "amplitude (viridis)" + rng(res.amplitude))
        self.query_one("#res-phase", ImageView).set_array(res.phase, "phase, rad (twilight, cyclic)" + rng(res.phase))
        if res.metrics:
            for k, v in res.metrics:
                table.add_row(k, v)
        else:
            table.add_row("–", "no metrics (no ground truth?)")
        table.border_subtitle = "inside the scanned region; phase offset+ramp removed; PSNR peak 1"
        root = Path(run_dir)
        self.query_one("#res-artifacts", Static).update(
            "\n".join(str(Path(p).relative_to(root)) if Path(p).is_relative_to(root) else p for p in res.artifacts) or "none")
