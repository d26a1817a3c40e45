"""Typed messages between the console's screens and its app.

Why messages: screens render and say what the operator asked for; the app (console/app.py) owns the run views, the
runner and the followers and decides what happens. A screen never sets an app attribute or calls an app method that
changes state; it posts one of these and the message bubbles up to the app. Each message is a dataclass (as
Textual's own widget messages are): its fields are what it carries.
"""
from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class EventsBatch(Message):
    """A batch of parsed events of one run (a child's pipe or a followed events.jsonl), at most one per interval."""

    key: str
    events: list[dict]


@dataclass
class RunsChanged(Message):
    """Posted to the visible screen after run views changed (``key``) so it re-renders."""

    key: str


@dataclass
class ShowScreen(Message):
    """Switch to the named screen."""

    name: str


@dataclass
class DatasetChosen(Message):
    """The operator picked a valid dataset on the Datasets screen (Launch pre-fills it)."""

    path: str


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


@dataclass
class StartJob(Message):
    """Start the job the Launch screen built."""

    request: JobRequest


@dataclass
class OpenRun(Message):
    """Open a run of the store: follow it live when its writer is alive, else replay its history; then show
    ``screen`` (results | run | parity)."""

    run_dir: str
    screen: str = "results"


@dataclass
class SelectRun(Message):
    """Make ``key`` the run the Run screen follows."""

    key: str


@dataclass
class CancelRun(Message):
    """Cancel a run (after the operator confirms): a child of the console or a run started elsewhere."""

    key: str | None = None
