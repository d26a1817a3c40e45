"""What the console's screens share: titled panels, and drawing the app's state again whenever it may have changed.

Why a base class: the Run, Results, Parity, History and Launch screens each titled their panels on mount and drew
themselves on mount and on every return to the screen (the three run screens also on ``RunsChanged``), the same
handlers written five times; only what they draw differs. Textual calls a handler of every class in the MRO, so a
subclass overrides ``set_up``, ``redraw`` and ``shows`` — never the handlers themselves.
"""
from __future__ import annotations

from textual.screen import Screen

from console.messages import RunsChanged


def title_panels(screen: Screen, titles: dict[str, str]) -> None:
    """Set each panel's border title (CSS selector → title)."""
    for selector, title in titles.items():
        screen.query_one(selector).border_title = title


class StateScreen(Screen):
    """A screen drawn from the app's state: on mount (after titling ``TITLES`` and ``set_up``), each time it is
    shown again, and on ``RunsChanged`` when ``shows`` says the changed run is on it."""

    #: CSS selector → border title, set once mounted.
    TITLES: dict[str, str] = {}

    def on_mount(self) -> None:
        title_panels(self, self.TITLES)
        self.set_up()
        self.redraw()

    def on_screen_resume(self) -> None:
        self.redraw()

    def on_runs_changed(self, message: RunsChanged) -> None:
        if self.shows(message.key):
            self.redraw()

    def set_up(self) -> None:
        """Once, before the first draw (e.g. table columns)."""

    def redraw(self) -> None:
        """Draw the screen from the app's state."""
        raise NotImplementedError

    def shows(self, key: str) -> bool:
        """Whether a change of run view ``key`` changes what this screen shows (default: any run does)."""
        return True
