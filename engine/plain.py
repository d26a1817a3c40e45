"""Plain progress lines on stdout for headless jobs whose stdout is a file or a pipe (batch jobs, `> log.txt`).

Why: with no terminal there are no progress bars, and a log file should still say what happened — the run and
its directory, each stage, each epoch with its loss, metrics, warnings, errors and how the run ended. It listens to
events like the rich view (engine/human.py), so it shows exactly what the event channel says.
"""
from __future__ import annotations

from typing import Any, TextIO


def _num(v: Any, spec: str = ".6g") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def format_event(ev: dict) -> str | None:
    """One line for an event worth a line in a log file; None for the rest (progress, debug logs)."""
    kind = ev.get("type")
    if kind == "run_started":
        return f"run {ev.get('run_id')} started: {ev.get('kind')}" + (
            f" ({ev.get('backend')})" if ev.get("backend") else "") + f" in {ev.get('run_dir')}"
    if kind == "stage":
        return f"stage {ev.get('stage')}"
    if kind == "epoch":
        rate = ev.get("samples_per_s")
        line = f"epoch {ev.get('epoch')}/{ev.get('epochs')}: train loss {_num(ev.get('train_loss'))}"
        if ev.get("val_loss") is not None:
            line += f", val loss {_num(ev.get('val_loss'))}"
        if isinstance(ev.get("seconds"), (int, float)):
            unit = f" {ev['unit']}s" if ev.get("unit") else ""
            line += f" ({ev['seconds']:.1f} s" + (f", {rate:.1f}{unit}/s" if isinstance(rate, (int, float)) else "") + ")"
        return line
    if kind == "metric":
        return f"metric {ev.get('name')} = {_num(ev.get('value'))}"
    if kind == "artifact":
        return f"wrote {ev.get('kind')}: {ev.get('path')}"
    if kind in ("warning", "error"):
        return f"{kind}: " + (f"{ev.get('kind')}: " if kind == "error" and ev.get("kind") else "") + str(ev.get("message"))
    if kind == "log" and ev.get("level") in ("info", "warning", "error") and not ev.get("raw"):
        return str(ev.get("message"))
    if kind == "run_finished":
        return (f"run {ev.get('run_id')} finished: {ev.get('status')} (exit {ev.get('exit_code')}, "
                f"{_num(ev.get('seconds'), '.1f')} s)")
    return None


class PlainView:
    """Prints ``format_event`` lines to ``stream`` (flushed, so a follower of the log file sees them live)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def on_event(self, ev: dict) -> None:
        line = format_event(ev)
        if line is not None:
            try:
                print(line, file=self.stream, flush=True)
            except (OSError, ValueError):  # a closed pipe must not break the job
                pass
