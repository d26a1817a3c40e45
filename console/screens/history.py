"""History screen: the runs of the run store — status, kind, backend, dataset, age, duration, key metric or, for a
failed run, its error — and the highlighted run's details. Enter opens a live run on the Run screen (followed, with
cancel) and a finished one in Results (its whole event history is then on the Run screen too)."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from console.messages import OpenRun
from console.readers import RunRecord, failure_context, list_runs
from console.screens.common import StateScreen
from console.screens.run import status_text
from console.state import fmt_duration
from engine.events import CANCELLED, FAILED, INTERRUPTED

WIDE_COLUMNS = ("run", "kind", "status", "backend", "started", "duration", "key metric / error")  # dataset: below
NARROW_COLUMNS = ("run", "status", "backend", "key metric / error")


def age(started: float | None, now: float) -> str:
    if started is None:
        return "?"
    s = max(0.0, now - started)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{int(s // size)} {unit} ago"
    return f"{int(s)} s ago"


def outcome(r: RunRecord, width: int = 40) -> Text:
    """Key metric of a run, or the error that ended it (cut to ``width``; the detail panel has all of it)."""
    if r.status in (FAILED, INTERRUPTED) and r.cause:
        cause = r.cause if len(r.cause) <= width else r.cause[:width - 1] + "…"
        return Text(cause, style="red")
    if r.status == INTERRUPTED:
        return Text("writer died without finishing", style="magenta")
    if r.key_metric:
        return Text(f"{r.key_metric[0]} {r.key_metric[1]:.4g}")
    return Text("–", style="dim")


class HistoryScreen(StateScreen):
    BINDINGS = [Binding("enter", "open", "Open"), Binding("g", "reload", "Reload")]
    DEFAULT_CSS = """
    HistoryScreen #hist-note { height: 1; padding: 0 1; color: $text-muted; }
    HistoryScreen DataTable { height: 1fr; border: round $primary; }
    HistoryScreen #hist-detail { height: auto; max-height: 7; border: round $primary; padding: 0 1; }
    HistoryScreen #hist-detail.failed { border: round $error; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.records: list[RunRecord] = []
        self._columns: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="hist-note")
        yield DataTable(id="hist-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="hist-detail")
        yield Footer(compact=True, show_command_palette=False)

    TITLES = {"DataTable": "runs", "#hist-detail": "run"}

    def shows(self, key: str) -> bool:
        """The listing is read from the run store when shown or asked (g), not redrawn as a live run goes."""
        return False

    def on_resize(self) -> None:
        if self._wanted_columns() != self._columns:
            self.redraw()

    def _wanted_columns(self) -> tuple[str, ...]:
        return NARROW_COLUMNS if self.app.narrow else WIDE_COLUMNS

    def action_reload(self) -> None:
        """g: read the run store again."""
        self.redraw()

    def redraw(self) -> None:
        self.records = list_runs(self.app.runs_root)
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        self._columns = self._wanted_columns()
        table.clear(columns=True)
        table.add_columns(*self._columns)
        now = self.app.clock()
        for r in self.records:
            cells = {"run": r.run_id, "kind": r.kind, "status": status_text(r.status), "backend": r.backend,
                     "dataset": r.dataset or "–", "started": age(r.created, now), "duration": fmt_duration(r.duration),
                     "key metric / error": outcome(r, 28)}
            table.add_row(*(cells[c] for c in self._columns), key=r.run_dir)
        if self.records and cursor is not None:
            table.move_cursor(row=min(cursor, len(self.records) - 1))
        note = f"{len(self.records)} run(s) in {self.app.runs_root}" if self.records else f"No runs in {self.app.runs_root} yet."
        self.query_one("#hist-note", Static).update(note + "   enter: open   g: reload")
        self._detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def _selected(self) -> RunRecord | None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        return self.records[row] if self.records and row is not None and 0 <= row < len(self.records) else None

    def _detail(self) -> None:
        r = self._selected()
        detail = self.query_one("#hist-detail", Static)
        detail.set_class(r is not None and r.status in (FAILED, INTERRUPTED), "failed")
        if r is None:
            detail.update("")
            return
        text = Text.assemble((r.run_id, "bold"), "  ", status_text(r.status), f"  {r.kind} · {r.backend}",
                             f" · {r.dataset}" if r.dataset else "", f" · {fmt_duration(r.duration)}")
        if r.live:
            text.append(f"\nrunning (pid {r.pid}, stage {r.stage or '?'}): enter follows it live, c there cancels it",
                        style="green")
        elif r.cause or r.status == INTERRUPTED:
            failed = r.status != CANCELLED
            text.append(f"\n{'✘' if failed else '■'} {r.cause or 'the writer died without finishing'}",
                        style="bold red" if failed else "yellow")
            if failed:
                for line in failure_context(r.run_dir):
                    text.append("\n  " + line.strip(), style="dim")
        if not r.live:
            text.append("\nenter: results; the run's whole event history is then on Run (r)", style="dim")
        detail.update(text)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        r = self._selected()
        if r is None:
            return
        screen = "run" if r.live else ("parity" if r.kind == "parity" else "results")
        self.post_message(OpenRun(r.run_dir, screen))
