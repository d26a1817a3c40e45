"""Which Lightning checkpoint ``--resume`` names (engine.pipeline.resolve_resume). Light: imports no torch/Lightning,
so that bad input is found before the job starts and the framework loads."""
from __future__ import annotations

from pathlib import Path

from engine.errors import InputError


def find_checkpoint(path: Path, given: str) -> Path:
    """The ``.ckpt`` file to resume from: ``path`` itself, or in directory ``path`` its ``last.ckpt``, else its newest.

    ``given`` is what the user passed to ``--resume`` (for the message). What ``backend.train`` takes as ``resume``.
    """
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.ckpt"), key=lambda c: (c.name == "last.ckpt", c.stat().st_mtime))
        if not found:
            raise InputError("--resume", given, "expected a run or directory holding a Lightning .ckpt")
        p = found[-1]
    if p.suffix != ".ckpt":
        raise InputError("--resume", given, "expected a Lightning checkpoint (.ckpt) written by Pinnacle")
    return p
