"""Render a numpy array in the terminal with half-block characters (two pixels per cell, deterministic).

Why not an image protocol: snapshots must be deterministic and work in any terminal; ``▀`` with the upper pixel
as foreground and the lower as background doubles the vertical resolution.
"""
from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

COLORMAPS = {"amplitude": "viridis", "phase": "twilight", "intensity": "magma", "gray": "gray", "difference": "coolwarm"}


def colorize(values: np.ndarray, cmap: str, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Map a real 2-D array to uint8 RGB with a matplotlib colormap (imported lazily: not needed at startup)."""
    import matplotlib

    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    lo = float(np.min(v[finite])) if vmin is None and finite.any() else (vmin or 0.0)
    hi = float(np.max(v[finite])) if vmax is None and finite.any() else (vmax if vmax is not None else 1.0)
    norm = np.clip((np.where(finite, v, lo) - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    return matplotlib.colormaps[cmap](norm, bytes=True)[..., :3]


def fit(shape: tuple[int, int], width: int, height_px: int) -> tuple[int, int]:
    """Largest (rows_px, cols) that fits width × height_px and keeps the aspect ratio (a cell is 1 × 2 pixels)."""
    h, w = shape
    scale = min(width / w, height_px / h)
    return max(2, int(h * scale) // 2 * 2), max(1, int(w * scale))


def resample(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Area-average down or nearest up: cheap, deterministic, no interpolation artefacts on phase wraps."""
    h, w = a.shape[:2]
    yi = (np.arange(rows) * h / rows).astype(int)
    xi = (np.arange(cols) * w / cols).astype(int)
    if h >= 2 * rows and w >= 2 * cols:  # block mean over the source pixels of each cell
        ye = ((np.arange(rows) + 1) * h / rows).astype(int)
        xe = ((np.arange(cols) + 1) * w / cols).astype(int)
        c = np.cumsum(np.cumsum(np.pad(a, ((1, 0), (1, 0))), 0), 1)
        s = c[ye][:, xe] - c[yi][:, xe] - c[ye][:, xi] + c[yi][:, xi]
        return s / ((ye - yi)[:, None] * (xe - xi)[None, :])
    return a[yi][:, xi]


def to_lines(rgb: np.ndarray) -> list[list[Segment]]:
    """RGB image (even number of rows) -> one list of half-block segments per terminal row."""
    lines = []
    for top, bottom in zip(rgb[0::2], rgb[1::2]):
        lines.append([Segment("▀", Style(color=f"rgb({t[0]},{t[1]},{t[2]})", bgcolor=f"rgb({b[0]},{b[1]},{b[2]})"))
                      for t, b in zip(top.tolist(), bottom.tolist())])
    return lines


class ImageView(Widget):
    """A titled array image. ``kind`` picks the colormap: viridis for amplitude, cyclic twilight for phase."""

    DEFAULT_CSS = """
    ImageView { width: 1fr; height: 1fr; min-height: 4; }
    """

    def __init__(self, array: np.ndarray | None = None, kind: str = "amplitude", title: str = "", *,
                 vmin: float | None = None, vmax: float | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.kind, self.vmin, self.vmax = kind, vmin, vmax
        self._array = None if array is None else np.asarray(array)
        self._cache: tuple[tuple[int, int], list[Strip]] | None = None
        self.border_title = title

    def set_array(self, array: np.ndarray | None, title: str | None = None, *, vmin=None, vmax=None) -> None:
        self._array = None if array is None else np.asarray(array)
        self.vmin, self.vmax = vmin, vmax
        if title is not None:
            self.border_title = title
        self._cache = None
        self.refresh()

    def _strips(self, width: int, height: int) -> list[Strip]:
        if self._cache and self._cache[0] == (width, height):
            return self._cache[1]
        strips: list[Strip] = []
        a = self._array
        if a is not None and a.ndim == 2 and a.size and width > 0 and height > 0:
            rows, cols = fit(a.shape, width, 2 * height)
            vmin, vmax = self.vmin, self.vmax
            if self.kind == "phase" and vmin is None and vmax is None:
                # cyclic map, symmetric about 0: the full circle when the phase wraps, else its own span for contrast
                span = float(np.nanmax(np.abs(a))) if a.size else np.pi
                vmin, vmax = (-np.pi, np.pi) if not 0 < span < np.pi / 2 else (-span, span)
            rgb = colorize(resample(a.astype(np.float64), rows, cols), COLORMAPS.get(self.kind, self.kind), vmin, vmax)
            pad = (width - cols) // 2
            strips = [Strip([Segment(" " * pad), *line]).extend_cell_length(width) for line in to_lines(rgb)]
        self._cache = ((width, height), strips)
        return strips

    def render_line(self, y: int) -> Strip:
        strips = self._strips(self.content_size.width, self.content_size.height)
        if y < len(strips):
            return strips[y]
        if y == 0 and self._array is None:
            return Strip([Segment("(no image)", Style(dim=True))]).extend_cell_length(self.content_size.width)
        return Strip.blank(self.content_size.width)
