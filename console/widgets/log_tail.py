"""The last lines of a run's log, warnings and errors highlighted. Keeps at least three rows at any terminal size."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

STYLES = {"warning": "bold yellow", "error": "bold red", "output": "dim", "info": ""}
PREFIX = {"warning": "WARN  ", "error": "ERROR ", "output": "| "}


class LogTail(Static):
    DEFAULT_CSS = """
    LogTail { height: 1fr; min-height: 5; border: round $primary; padding: 0 1; text-wrap: nowrap;
              text-overflow: ellipsis; }
    """

    def on_mount(self) -> None:
        self.border_title = "log"
        self._logs = ()

    def on_resize(self) -> None:
        self.show(self._logs)  # how many lines fit changed: render the tail again

    def show(self, logs) -> None:
        """Render the tail that fits; ``logs`` are console.state.LogLine."""
        self._logs = logs
        rows = max(1, self.content_size.height or 10)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for i, line in enumerate(logs[-rows:]):
            if i:
                text.append("\n")
            stamp = f"{line.t:7.2f}s " if line.t is not None else " " * 9
            text.append(stamp, style="dim")
            text.append(PREFIX.get(line.level, "") + line.text, style=STYLES.get(line.level, ""))
        self.update(text)
