"""PNG previews of a reconstruction (``amplitude.png``, ``phase.png``) for the run directory.

Display scaling lives in engine/display.py (the same rules as the console's screens): amplitude on its own
1st–99th percentile range of the covered pixels; phase with its global offset removed, on its own range with a
sequential map (cyclic on [-π, π] only when it spans the circle). Titles name the run, the method and who trained
the bundle, so a PNG on its own says what it shows. matplotlib is imported lazily with the Agg backend.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine import display


FIGSIZE = (5.4, 4.6)  # inches, at 100 dpi
# Fixed margins in inches around the image: tick labels and the axis label on the left and below, one or two title
# lines above, the colour bar and its label on the right. Why fixed: matplotlib's constrained layout measured every
# text's extent twice per PNG — 40 % of writing the two previews (0.19 s against 0.11 s per figure here), paid by
# every `infer` and `reconstruct` before the process may exit.
MARGINS = {"left": 0.80, "bottom": 0.55, "top": 0.62, "right": 1.05}  # right: gap + bar + its ticks and label
BAR = (0.12, 0.15)  # gap between the image and the colour bar, and the bar's width (inches)
TITLE_CHARS = 72  # what fits across FIGSIZE's width at the title's 9 pt, with room to spare


def wrap_title(line: str, width: int = TITLE_CHARS) -> str:
    """``line`` broken at its " · " separators into lines of at most ``width`` characters where it can be (a part
    longer than that stays whole): a run id, the method, the backend and the bundle stay readable, none clipped."""
    lines: list[str] = []
    for part in line.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += f" · {part}"
        else:
            lines.append(part)
    return "\n".join(lines)


def layout(shape: tuple[int, int], figsize: tuple[float, float] = FIGSIZE) -> tuple[tuple, tuple]:
    """(image axes, colour-bar axes) rectangles in figure fractions for an image of ``shape`` (rows, cols) drawn
    with square pixels: the image as large as the margins allow, the bar beside it and exactly as tall."""
    fw, fh = figsize
    room_w = fw - MARGINS["left"] - MARGINS["right"]
    room_h = fh - MARGINS["bottom"] - MARGINS["top"]
    rows, cols = max(int(shape[0]), 1), max(int(shape[1]), 1)
    scale = min(room_w / cols, room_h / rows)
    w, h = cols * scale, rows * scale
    left = MARGINS["left"] + (room_w - w) / 2
    bottom = MARGINS["bottom"] + (room_h - h) / 2
    image = (left / fw, bottom / fh, w / fw, h / fh)
    bar = ((left + w + BAR[0]) / fw, bottom / fh, BAR[1] / fw, h / fh)
    return image, bar


def _figure(image: np.ndarray, scale: display.Scale, title: str, label: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global figure registry

    fig = Figure(figsize=FIGSIZE, dpi=100)
    image_rect, bar_rect = layout(image.shape)
    ax = fig.add_axes(image_rect)
    cmap = matplotlib.colormaps[scale.cmap].with_extremes(bad="0.85")  # uncovered pixels: light grey
    im = ax.imshow(image, cmap=cmap, vmin=scale.vmin, vmax=scale.vmax, origin="upper", interpolation="nearest",
                   aspect="equal")
    fig.suptitle(title, fontsize=9, y=0.985, va="top")  # centred on the figure: a long run-id line is not clipped
    ax.set_xlabel("x (object pixels)")
    ax.set_ylabel("y (object pixels)")
    fig.colorbar(im, cax=fig.add_axes(bar_rect), label=label)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
    return path


def write_previews(directory: str | Path, obj: np.ndarray, covered: np.ndarray | None = None,
                   metrics: dict | None = None, title: str = "") -> dict[str, Path]:
    """Write ``amplitude.png`` and ``phase.png``; titles carry ``title`` and the SSIM when ``metrics`` is given."""
    directory = Path(directory)
    obj = np.asarray(obj)
    mask = covered if covered is not None and np.any(covered) else np.ones(obj.shape, bool)
    amp = display.amplitude(obj, mask)
    phase = display.remove_phase_offset(obj, mask)

    def tag(part: str) -> str:
        ssim = ((metrics or {}).get(part) or {}).get("ssim")
        return f" — SSIM {ssim:.3f}" if isinstance(ssim, (int, float)) else ""

    head = f"{wrap_title(title)}\n" if title else ""
    pscale = display.phase_scale(phase)
    return {
        "amplitude": _figure(amp, display.amplitude_scale(amp), f"{head}amplitude{tag('amplitude')}",
                             "|O| (display: 1–99 %)", directory / "amplitude.png"),
        "phase": _figure(phase, pscale, f"{head}phase, offset removed{tag('phase')}",
                         "phase (rad)" + (", 1–99 %" if pscale.cmap != "twilight" else ""), directory / "phase.png"),
    }
