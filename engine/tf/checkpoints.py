"""Which TensorFlow checkpoint directory ``--resume`` names (engine.pipeline.resolve_resume). Light: imports no
TensorFlow, so that bad input is found before the job starts and the framework loads."""
from __future__ import annotations

from pathlib import Path

from engine.errors import InputError


def find_checkpoint(path: Path, given: str) -> Path:
    """The directory holding the checkpoint (its ``checkpoint`` index file): ``path`` itself, or the directory of a
    checkpoint file. ``given`` is what the user passed to ``--resume`` (for the message). What ``backend.train``
    takes as ``resume`` (it restores the newest checkpoint there)."""
    p = Path(path)
    directory = p if p.is_dir() else p.parent
    if not (directory / "checkpoint").is_file():
        raise InputError("--resume", given, "expected a run or directory holding a TensorFlow checkpoint")
    return directory
