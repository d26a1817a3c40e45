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
| `l` | **Launch**: train (a held-out scan is reconstructed and scored in the same run), parity, or reconstruct a scan (PINN / hybrid / iterative) with a bundle picked from the list |
| `r` | **Run**: the followed run — progress, loss plot, held-out preview, log, why it failed |
| `c` | cancel the followed run (asks first): a run of this console, or one started elsewhere (SIGINT, as Ctrl-C) |
| `n` | follow the next run |
| `s` | **Results**: reconstructions side by side, ground truth, difference, metrics; `a` switches amplitude/phase |
| `p` | **Parity**: both backends side by side |
| `h` | **History**: the run store; enter follows a live run or opens a finished one (its events are then on Run) |
| `escape` | leave an input field (letters then work as screen keys again) |
| `→` / `End` | accept a path completion in a path field |
| `ctrl+p` | command palette (every action is there) |
| `?` / `F1` | this help |
| `q` | quit (asks first when runs started here are alive: they are cancelled; runs started elsewhere go on) |

Jobs run as child processes of the same headless CLI; the console reads their event stream. Runs started elsewhere
(scripts, colleagues) appear on the Run screen by themselves: the console tails their `events.jsonl`.
Press `escape` to close.
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]  # the screen closes itself
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen VerticalScroll { width: 96; max-width: 100%; height: 90%; border: thick $primary; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)
