"""Help screen: keys and screens (a modal over whatever is shown)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# Pinnacle console

| key | action |
|---|---|
| `d` | **Datasets**: fixtures and a folder; select to validate and preview |
| `l` | **Launch**: backend, parameters, train / parity / inference |
| `r` | **Run**: live progress, loss, log of the followed run |
| `c` | cancel the followed run (its whole process group) |
| `n` | follow the next run |
| `s` | **Results**: amplitude, phase, metrics, artifacts |
| `p` | **Parity**: both backends side by side |
| `h` | **History**: runs in the run store (enter opens one) |
| `ctrl+p` | command palette (every action is there) |
| `?` / `F1` | this help |
| `q` | quit (cancels and waits for running jobs) |

Jobs run as child processes of the same headless CLI; the console only reads their event stream.
Press `escape` to close.
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark,f1", "app.pop_screen", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen VerticalScroll { width: 84; height: 90%; border: thick $primary; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)
