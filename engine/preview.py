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


def _figure(image: np.ndarray, scale: display.Scale, title: str, label: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global figure registry

    fig = Figure(figsize=(5.4, 4.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[scale.cmap].with_extremes(bad="0.85")  # uncovered pixels: light grey
    im = ax.imshow(image, cmap=cmap, vmin=scale.vmin, vmax=scale.vmax, origin="upper", interpolation="nearest")
    fig.suptitle(title, fontsize=9)  # centred on the figure, not the axes: a long run-id line is not clipped
    ax.set_xlabel("x (object pixels)")
    ax.set_ylabel("y (object pixels)")
    fig.colorbar(im, ax=ax, label=label)
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

    head = f"{title}\n" if title else ""
    pscale = display.phase_scale(phase)
    return {
        "amplitude": _figure(amp, display.amplitude_scale(amp), f"{head}amplitude{tag('amplitude')}",
                             "|O| (display: 1–99 %)", directory / "amplitude.png"),
        "phase": _figure(phase, pscale, f"{head}phase, offset removed{tag('phase')}",
                         "phase (rad)" + (", 1–99 %" if pscale.cmap != "twilight" else ""), directory / "phase.png"),
    }
