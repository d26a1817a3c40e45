"""Render a numpy array in the terminal with half-block characters (two pixels per cell, deterministic).

Why not an image protocol: snapshots must be deterministic and work in any terminal; ``▀`` with the upper pixel
as foreground and the lower as background doubles the vertical resolution. The title names the quantity and the
image size (x to the right, y down, object pixels); the bottom border is the colour bar with its range and unit.
NaN pixels (not covered by the scan) are drawn as background, never as a colour of the scale.
"""
from __future__ import annotations

import textwrap

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from console.imaging import Scale

BACKGROUND = (24, 24, 24)
BAR_CELLS = 8


def colorize(values: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    """Map a real 2-D array to uint8 RGB with a matplotlib colormap (imported lazily: not needed at startup)."""
    import matplotlib

    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    norm = np.clip((np.where(finite, v, vmin) - vmin) / (vmax - vmin if vmax > vmin else 1.0), 0.0, 1.0)
    rgb = matplotlib.colormaps[cmap](norm, bytes=True)[..., :3]
    rgb[~finite] = BACKGROUND
    return rgb


def fit(shape: tuple[int, int], width: int, height_px: int) -> tuple[int, int]:
    """Largest (rows_px, cols) that fits width × height_px and keeps the aspect ratio (a cell is 1 × 2 pixels)."""
    h, w = shape
    scale = min(width / w, height_px / h)
    return max(2, int(h * scale) // 2 * 2), max(1, int(w * scale))


def resample(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Area-average down (NaN-aware) or nearest up: cheap, deterministic, no interpolation across phase wraps."""
    h, w = a.shape[:2]
    yi = (np.arange(rows) * h / rows).astype(int)
    xi = (np.arange(cols) * w / cols).astype(int)
    if h >= 2 * rows and w >= 2 * cols:  # block mean over the source pixels of each cell
        ye = ((np.arange(rows) + 1) * h / rows).astype(int)
        xe = ((np.arange(cols) + 1) * w / cols).astype(int)
        finite = np.isfinite(a)

        def block_sum(x):
            c = np.cumsum(np.cumsum(np.pad(x, ((1, 0), (1, 0))), 0), 1)
            return c[ye][:, xe] - c[yi][:, xe] - c[ye][:, xi] + c[yi][:, xi]

        n = block_sum(finite.astype(np.float64))
        s = block_sum(np.where(finite, a, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / np.maximum(n, 1), np.nan)
    return a[yi][:, xi]


def to_lines(rgb: np.ndarray) -> list[list[Segment]]:
    """RGB image (even number of rows) -> one list of half-block segments per terminal row."""
    lines = []
    for top, bottom in zip(rgb[0::2], rgb[1::2]):
        lines.append([Segment("▀", Style(color=f"rgb({t[0]},{t[1]},{t[2]})", bgcolor=f"rgb({b[0]},{b[1]},{b[2]})"))
                      for t, b in zip(top.tolist(), bottom.tolist())])
    return lines


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.1e}"


def colour_bar(scale: Scale, width: int = 40) -> str:
    """Markup for the bottom border, ``lo ▕gradient▏ hi unit``, fitted to ``width`` cells (the unit goes first,
    then the gradient shrinks; the numbers always stay)."""
    import matplotlib

    lo, hi = _num(scale.vmin), _num(scale.vmax)
    unit = f" {scale.unit}" if scale.unit else ""
    room = width - len(lo) - len(hi) - 2
    if room - len(unit) < 3:
        unit = ""
    cells = max(0, min(BAR_CELLS, room - len(unit)))
    colours = matplotlib.colormaps[scale.cmap](np.linspace(0, 1, max(cells, 1)), bytes=True)[:cells, :3]
    bar = "".join(f"[on #{r:02x}{g:02x}{b:02x}] [/]" for r, g, b in colours.tolist())
    return f"{lo} {bar} {hi}{unit}" if cells else f"{lo}…{hi}{unit}"


class ImageView(Widget):
    """A titled array image on a given colour ``Scale`` (console/imaging.py chooses it)."""

    DEFAULT_CSS = """
    ImageView { width: 1fr; height: 1fr; min-height: 4; border: round $primary-darken-2; }
    """

    def __init__(self, title: str = "", placeholder: str = "(no image)", *, id: str | None = None,
                 classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self._array: np.ndarray | None = None
        self._scale: Scale | None = None
        self._cache: tuple[tuple[int, int], list[Strip]] | None = None
        self.title = title
        self.placeholder = placeholder
        self.border_title = title

    def set_array(self, array: np.ndarray | None, scale: Scale | None = None, title: str | None = None,
                  placeholder: str | None = None) -> None:
        """Show ``array`` on ``scale`` (its own min–max, gray, when None); None shows the placeholder."""
        self._array = None if array is None else np.asarray(array, dtype=np.float64)
        if self._array is not None and (self._array.ndim != 2 or not self._array.size):
            self._array = None
        if self._array is not None and scale is None:
            finite = self._array[np.isfinite(self._array)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            scale = Scale(lo, hi if hi > lo else lo + 1e-12, "gray")
        self._scale = scale
        if title is not None:
            self.title = title
        if placeholder is not None:
            self.placeholder = placeholder
        self._update_borders()
        self._cache = None
        self.refresh()

    def on_resize(self) -> None:
        self._update_borders()

    def _update_borders(self) -> None:
        """Title with the image size (x right, y down, in object pixels) when it fits; colour bar below."""
        a, scale = self._array, self._scale
        room = max(8, self.size.width - 4) if self.size.width else 40
        size = f" · {a.shape[1]}×{a.shape[0]} px" if a is not None else ""
        self.border_title = self.title + size if len(self.title + size) <= room else self.title
        self.border_subtitle = colour_bar(scale, room) if a is not None and scale is not None else ""

    @property
    def array(self) -> np.ndarray | None:
        return self._array

    def _strips(self, width: int, height: int) -> list[Strip]:
        if self._cache and self._cache[0] == (width, height):
            return self._cache[1]
        strips: list[Strip] = []
        a, scale = self._array, self._scale
        if a is not None and scale is not None and width > 0 and height > 0:
            rows, cols = fit(a.shape, width, 2 * height)
            rgb = colorize(resample(a, rows, cols), scale.cmap, scale.vmin, scale.vmax)
            pad = (width - cols) // 2
            top = (height - rows // 2) // 2  # centred both ways
            strips = [Strip.blank(width)] * top + [Strip([Segment(" " * pad), *line]).extend_cell_length(width)
                                                   for line in to_lines(rgb)]
        self._cache = ((width, height), strips)
        return strips

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        strips = self._strips(width, self.content_size.height)
        if y < len(strips):
            return strips[y]
        if self._array is None:
            lines = textwrap.wrap(self.placeholder, max(1, width))
            if y < len(lines):
                return Strip([Segment(lines[y], Style(dim=True))]).extend_cell_length(width)
        return Strip.blank(width)
