"""PNG previews of a reconstruction (amplitude: viridis, phase: twilight) for the run directory.

Display scaling lives here and only here (SPEC §2): amplitude is shown on its own 1st–99th percentile range of the
covered pixels, phase on [-π, π] (twilight is cyclic, so the wrap is not a visible edge). matplotlib is imported
lazily with the Agg backend, so importing this module costs nothing and no display is ever needed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _figure(image: np.ndarray, cmap: str, title: str, label: str, vmin: float, vmax: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global figure registry

    fig = Figure(figsize=(5.2, 4.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, origin="upper", interpolation="nearest")
    ax.set_title(title, fontsize=10)
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
    """Write ``amplitude.png`` and ``phase.png``; titles carry the SSIM when ``metrics`` (engine.metrics) is given."""
    directory = Path(directory)
    obj = np.asarray(obj)
    amp = np.abs(obj)
    phase = np.angle(obj)
    mask = covered if covered is not None and np.any(covered) else np.ones(amp.shape, bool)
    lo, hi = np.percentile(amp[mask], [1, 99]) if amp[mask].size else (0.0, 1.0)
    if not hi > lo:
        lo, hi = float(amp.min()), float(amp.max()) + 1e-12

    def tag(part: str) -> str:
        ssim = ((metrics or {}).get(part) or {}).get("ssim")
        return f" — SSIM {ssim:.3f}" if isinstance(ssim, (int, float)) else ""

    prefix = f"{title}: " if title else ""
    return {
        "amplitude": _figure(amp, "viridis", f"{prefix}amplitude{tag('amplitude')}", "|O| (display: 1–99 %)",
                             float(lo), float(hi), directory / "amplitude.png"),
        "phase": _figure(np.where(mask, phase, 0.0), "twilight", f"{prefix}phase{tag('phase')}", "phase (rad)",
                         -np.pi, np.pi, directory / "phase.png"),
    }
