"""Train/validation loss curves as two textual Sparklines, with first/last/min figures beside them."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline


def _summary(name: str, values: tuple[float, ...]) -> str:
    if not values:
        return f"{name}: –"
    return f"{name}: last {values[-1]:.4g}  min {min(values):.4g}  ({len(values)} epochs)"


class LossCurve(Vertical):
    DEFAULT_CSS = """
    LossCurve { height: auto; border: round $primary; padding: 0 1; }
    LossCurve Sparkline { height: 3; margin-bottom: 1; }
    LossCurve #val-spark > .sparkline--max-color { color: $warning; }
    LossCurve #val-spark > .sparkline--min-color { color: $warning 30%; }
    """

    def compose(self) -> ComposeResult:
        self.border_title = "loss"
        yield Label(_summary("train", ()), id="train-label")
        yield Sparkline([], id="train-spark")
        yield Label(_summary("val", ()), id="val-label")
        yield Sparkline([], id="val-spark")

    def update_losses(self, train: tuple[float, ...], val: tuple[float, ...]) -> None:
        self.query_one("#train-label", Label).update(_summary("train", train))
        self.query_one("#train-spark", Sparkline).data = list(train)
        self.query_one("#val-label", Label).update(_summary("val", val))
        self.query_one("#val-spark", Sparkline).data = list(val)
