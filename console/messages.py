"""Typed messages between the console's screens and its app.

Why messages: screens render and say what the operator asked for; the app (console/app.py) owns the run views, the
runner and the followers and decides what happens. A screen never sets an app attribute or calls an app method that
changes state; it posts one of these and the message bubbles up to the app.
"""
from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


class EventsBatch(Message):
    """A batch of parsed events of one run (a child's pipe or a followed events.jsonl), at most one per interval."""

    def __init__(self, key: str, events: list[dict]) -> None:
        super().__init__()
        self.key, self.events = key, events


class RunsChanged(Message):
    """Posted to the visible screen after run views changed (``key``) so it re-renders."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class ShowScreen(Message):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class DatasetChosen(Message):
    """The operator picked a valid dataset on the Datasets screen (Launch pre-fills it)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


@dataclass(frozen=True)
class JobRequest:
    """A headless job to start: ``pinnacle <args> --runs ROOT`` (built by console/launching.py)."""

    kind: str
    args: tuple[str, ...]
    label: str
    backend: str
    held_out: bool = False
    method: str = ""
    epochs: int = 0


class StartJob(Message):
    def __init__(self, request: JobRequest) -> None:
        super().__init__()
        self.request = request


class OpenRun(Message):
    """Open a run of the store: follow it live when its writer is alive, else replay its history; then show
    ``screen`` (results | run | parity)."""

    def __init__(self, run_dir: str, screen: str = "results") -> None:
        super().__init__()
        self.run_dir, self.screen = run_dir, screen


class SelectRun(Message):
    """Make ``key`` the run the Run screen follows."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class CancelRun(Message):
    """Cancel a run (after the operator confirms): a child of the console or a run started elsewhere."""

    def __init__(self, key: str | None = None) -> None:
        super().__init__()
        self.key = key
