"""History screen: the runs of the run store with status, backend, dataset, duration and key metric."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from console.inspect import RunRecord, list_runs
from console.screens.run import status_text
from console.state import fmt_duration


def age(started: float | None, now: float) -> str:
    if started is None:
        return "?"
    s = max(0.0, now - started)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{int(s // size)} {unit} ago"
    return f"{int(s)} s ago"


class HistoryScreen(Screen):
    BINDINGS = [Binding("enter", "open", "Open"), Binding("g", "reload", "Reload")]
    DEFAULT_CSS = """
    HistoryScreen DataTable { height: 1fr; border: round $primary; }
    HistoryScreen #hist-note { height: auto; padding: 0 1; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="hist-note")
        yield DataTable(id="hist-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.border_title = "runs"
        table.add_columns("run", "kind", "status", "backend", "dataset", "started", "duration", "key metric")
        self.action_reload()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self.records: list[RunRecord] = list_runs(self.app.runs_root)
        table = self.query_one(DataTable)
        table.clear()
        now = self.app.clock()
        for r in self.records:
            metric = f"{r.key_metric[0]} {r.key_metric[1]:.4g}" if r.key_metric else "–"
            table.add_row(r.run_id, r.kind, status_text(r.status), r.backend, r.dataset or "–", age(r.started, now),
                          fmt_duration(r.duration), metric, key=r.run_dir)
        note = f"{len(self.records)} run(s) in {self.app.runs_root}" if self.records else f"No runs in {self.app.runs_root} yet."
        self.query_one("#hist-note", Static).update(note + "   enter: open   g: reload")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.open(event.row_key.value)

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if self.records and table.cursor_row is not None and table.cursor_row < len(self.records):
            self.open(self.records[table.cursor_row].run_dir)

    def open(self, run_dir: str) -> None:
        rec = next((r for r in self.records if r.run_dir == run_dir), None)
        self.app.results_dir = run_dir
        parity = rec is not None and "parity" in rec.kind
        self.app.action_show("parity" if parity else "results")
