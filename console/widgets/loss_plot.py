"""Loss curves with axes: epochs on x, loss on a log scale on y, train / validation / refinement as labelled lines.

Built on ``textual-plot`` (PlotWidget): a maintained, native Textual plotting widget (numpy + Textual only) with
real axes, "nice" tick placement, axis labels, a legend and braille-resolution lines. ``textual-plotext`` was the
alternative, but it pins plotext < 6, the 5.x line that stopped being updated in 2024. textual-plot has no log
axis, so the curves are drawn as log10(loss) and ``LogTicks`` labels the y axis with the losses themselves at
1-2-5 steps of each decade.
"""
from __future__ import annotations

from math import ceil, floor, log10
from typing import Sequence

import numpy as np
from textual_plot import HiResMode, PlotWidget
from textual_plot.axis_formatter import AxisFormatter, NumericAxisFormatter

from engine.backends import BACKENDS, SHORT_LABELS  # the registry: stdlib only

#: Per backend, in registry order: (train, val) colours of its curves when two backends share a plot.
_BACKEND_STYLES = (("bold #4fc3f7", "bold #81d4fa"), ("bold #ff8a65", "bold #ffcc80"))
SERIES_STYLES = {"train": "bold #4fc3f7", "val": "bold #ffb74d", "refine": "bold #ce93d8",
                 **{f"{SHORT_LABELS[name]} {split}": style for name, styles in zip(BACKENDS, _BACKEND_STYLES)
                    for split, style in zip(("train", "val"), styles)}}
_MANTISSAS = ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), tuple(range(1, 10)))


def _fmt(value: float) -> str:
    """Short tick labels: 0.05, 1.5, 20, 3k, 50k, 2M (a Poisson NLL is in the tens of thousands)."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}" if abs(value) >= 1e-3 else f"{value:.0e}"


def epoch_ticks(last: int, room: int) -> list[float]:
    """Whole epochs only, every 1, 2, 5, 10, 20, 50, ... epochs, at most ``room`` ticks (never "1.2 epochs")."""
    step, factors = 1, (2, 2.5, 2)
    for i in range(60):
        if last / step <= room:
            break
        step = int(step * factors[i % 3])
    return [1.0] + [float(x) for x in range(step, last + 1, step) if x > 1]


class LogTicks(AxisFormatter):
    """Ticks for an axis that holds log10 of the values: at 1-2-5 (or denser) steps of each decade, labelled
    with the value itself; inside one narrow band, evenly spaced nice values. ``rows`` (the plot's height) keeps
    ticks at least two rows apart, so labels never overwrite each other."""

    def __init__(self) -> None:
        self.rows = 16

    def get_ticks(self, min_: float, max_: float, max_ticks: int = 8) -> list[float]:
        if not (np.isfinite(min_) and np.isfinite(max_)) or max_ <= min_:
            return []
        room = max(2, min(max_ticks, self.rows // 2))
        min_gap = (max_ - min_) / room  # in log10 units: two rows of the plot
        best: list[float] = []
        for mantissas in _MANTISSAS:
            ticks = [log10(m) + d for d in range(floor(min_) - 1, ceil(max_) + 1) for m in mantissas
                     if min_ <= log10(m) + d <= max_]
            gaps = np.diff(ticks) if len(ticks) > 1 else np.array([np.inf])
            if len(ticks) > room or gaps.min() < 0.999 * min_gap:
                break
            best = ticks
        if len(best) >= 2:
            return best
        lo, hi = 10 ** min_, 10 ** max_
        return [log10(v) for v in NumericAxisFormatter().get_ticks(lo, hi, room) if v > 0 and lo <= v <= hi]

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        return [_fmt(10 ** t) for t in ticks]


class EpochTicks(AxisFormatter):
    """Whole-epoch ticks, about eight columns apart (``cols``: the plot's width, set before each redraw)."""

    def __init__(self) -> None:
        self.cols = 64

    def get_ticks(self, min_: float, max_: float, max_ticks: int = 8) -> list[float]:
        return [t for t in epoch_ticks(max(1, int(max_)), max(2, self.cols // 8)) if min_ <= t <= max_]

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        return [str(int(t)) for t in ticks]


class LossPlot(PlotWidget):
    """The Run screen's loss panel. Not focusable: it must not take the screen's keys."""

    can_focus = False
    DEFAULT_CSS = """
    LossPlot { height: 1fr; min-height: 8; border: round $primary; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes, allow_pan_and_zoom=False)
        self._key: tuple | None = None

    def on_mount(self) -> None:
        self.margin_top, self.margin_bottom, self.margin_left = 0, 1, 7  # the axis names are in the title
        self._ticks, self._epochs = LogTicks(), EpochTicks()
        self.set_y_formatter(self._ticks)
        self.set_x_formatter(self._epochs)
        self.border_title = "loss (log) vs epoch"

    def render(self):
        """Tell the tick makers the plot area's size before each redraw (labels apart, whole epochs)."""
        plot = self.query_one("#plot").size
        self._ticks.rows, self._epochs.cols = max(2, plot.height - 2), max(16, plot.width)
        return super().render()

    def show_losses(self, series: dict[str, tuple[Sequence[int], Sequence[float]]], epochs: int = 0,
                    unit: str = "") -> None:
        """``series``: name -> (epochs, losses). Redrawn only when something changed (renders are not free)."""
        key = (tuple((k, tuple(x), tuple(y)) for k, (x, y) in series.items()), epochs, unit)
        if key == self._key:
            return
        self._key = key
        self.clear()
        shown = {k: (np.asarray(x, float), np.asarray(y, float)) for k, (x, y) in series.items() if len(y)}
        last = 1
        lo, hi = np.inf, -np.inf
        for name, (x, y) in shown.items():
            ok = np.isfinite(y) & (y > 0)
            if not ok.any():
                continue
            ly = np.log10(y[ok])
            lo, hi = min(lo, float(ly.min())), max(hi, float(ly.max()))
            last = max(last, int(x[ok].max()))
            style = SERIES_STYLES.get(name, "bold white")
            if ok.sum() == 1:
                self.scatter(x[ok], ly, marker="●", marker_style=style, label=name)
            else:
                self.plot(x[ok], ly, line_style=style, hires_mode=HiResMode.BRAILLE, label=name)
        x_max = max(2, epochs or 0, last)
        pad = 0.03 * (x_max - 1)  # keep the first and last points off the frame
        self.set_xlimits(1 - pad, x_max + pad)
        if np.isfinite(lo):
            pad = max(0.05, 0.08 * (hi - lo))
            self.set_ylimits(lo - pad, hi + pad)
            self.set_yticks(None)
        else:  # no loss yet: no made-up scale
            self.set_ylimits(0, 1)
            self.set_yticks([])
        # the legend lives in the border title: a legend box would cover a third of a small plot
        names = " ".join(f"[{SERIES_STYLES.get(k, 'white')}]━ {k}[/]" for k in shown)
        self.border_title = "loss (log) vs epoch" + (f", {unit}" if unit else "") + (f" {names}" if names else "")
        self.border_subtitle = "" if shown else "no finished epoch yet"
