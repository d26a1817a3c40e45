"""The bundled fixtures: their exact simulation configs, where they live, and how to check them.

``scripts/make_fixtures.py`` regenerates them bit for bit from ``FIXTURES``; the console and the demo read
``fixture_path("train.npz")``. Definitions live here (not in the script) so tests and tools share one source.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from engine.config import SimulationConfig

#: Held-out pair: the same recipe, different seeds (so a different lines object, scan jitter and noise).
#: 14×14 raster keeps each NPZ under 10 MB (each pattern costs 48 KiB: amplitude + ground-truth patch).
_COMMON = dict(object_kind="lines", probe_kind="disk", scan_kind="raster", N=64, n_positions=196,
               object_size=152, nphotons=1e9, probe_radius=10.0, probe_defocus=3.0, scan_step=6.0, jitter=0.5)
FIXTURES: dict[str, SimulationConfig] = {
    "train.npz": SimulationConfig(**_COMMON, seed=1),
    "test.npz": SimulationConfig(**_COMMON, seed=2),
}


def fixtures_dir() -> Path:
    """The repository's ``fixtures/`` folder."""
    return Path(__file__).resolve().parent.parent / "fixtures"


def fixture_path(name: str = "train.npz") -> Path:
    return fixtures_dir() / name


def check_fixture(path: str | Path, cfg: SimulationConfig | None = None) -> list[str]:
    """Problems with an NPZ and its sidecar (empty list: file and every array match the recorded sha256)."""
    import dataclasses

    import numpy as np

    from engine.simulate import array_sha256, sha256_file, sidecar_path

    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file() or not side.is_file():
        return [f"{path.name}: missing {'file' if not path.is_file() else 'sidecar ' + side.name}"]
    meta = json.loads(side.read_text(encoding="utf-8"))
    problems = []
    if sha256_file(path) != meta.get("sha256"):
        problems.append(f"{path.name}: sha256 differs from {side.name}")
    recorded = meta.get("arrays", {})
    try:
        with np.load(path, allow_pickle=False) as npz:
            if sorted(npz.files) != sorted(recorded):
                problems.append(f"{path.name}: arrays {sorted(npz.files)} but sidecar lists {sorted(recorded)}")
            for key in npz.files:
                try:
                    digest = array_sha256(npz[key])
                except (ValueError, OSError, zipfile.BadZipFile) as exc:  # e.g. a zip CRC mismatch
                    problems.append(f"{path.name}: array {key} unreadable ({exc})")
                    continue
                if key in recorded and digest != recorded[key]["sha256"]:
                    problems.append(f"{path.name}: array {key} sha256 differs from {side.name}")
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        problems.append(f"{path.name}: not a readable NPZ ({exc})")
    if cfg is not None and meta.get("parameters") != dataclasses.asdict(cfg):
        problems.append(f"{path.name}: sidecar parameters differ from the fixture definition")
    return problems
