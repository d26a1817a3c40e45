"""Completion for path inputs: Textual's Suggester over the file system (folders and files of one suffix).

Textual ships list-based suggesters only; this one lists the folder being typed. The suggestion is the longest
unambiguous completion (a folder gets its trailing slash), accepted with → or End like any Textual suggestion.
"""
from __future__ import annotations

import os
from pathlib import Path

from textual.suggester import Suggester


class PathSuggester(Suggester):
    def __init__(self, suffixes: tuple[str, ...] = (".npz",)):
        super().__init__(use_cache=False, case_sensitive=True)  # the folder changes under us
        self.suffixes = suffixes

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value, self.suffixes)


def complete_path(value: str, suffixes: tuple[str, ...] = (".npz",)) -> str | None:
    """The longest completion of ``value`` among folders and files ending in ``suffixes``; None if there is none."""
    if not value:
        return None
    head, _, prefix = value.rpartition("/")
    folder = Path(os.path.expanduser(head or ".")) if head or not value.startswith("/") else Path("/")
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return None
    names = []
    for e in entries:
        if not e.name.startswith(prefix) or (e.name.startswith(".") and not prefix.startswith(".")):
            continue
        try:
            is_dir = e.is_dir()
        except OSError:
            continue
        if is_dir:
            names.append(e.name + "/")
        elif e.name.endswith(suffixes):
            names.append(e.name)
    if not names:
        return None
    common = os.path.commonprefix(names)
    if len(common) <= len(prefix):
        return None
    return (head + "/" if head or value.startswith("/") else "") + common
