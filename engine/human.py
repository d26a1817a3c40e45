"""Human progress on stderr for headless jobs: rich bars for stage, epoch, ETA and throughput.

Why it listens to events instead of being called directly: the human view then shows exactly what the event
channel says, and the channel itself (a file, stdout or a pipe) is never touched. Only used when stderr is a TTY.
"""
from __future__ import annotations

from typing import Any, TextIO


class HumanView:
    """Turns events into a rich ``Progress`` display; ``close()`` stops it."""

    def __init__(self, stream: TextIO):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        from rich.text import Text

        class Rate(ProgressColumn):
            """Throughput from rich's own smoothing of task updates."""

            def render(self, task: Any) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:,.1f}/s" if speed else "", style="progress.data.speed")

        self.console = Console(file=stream, stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            console=self.console, transient=False,
        )
        self.progress.start()
        self._stage_task = None
        self._epoch_task = None
        self._stage = ""

    def _bar(self, task_id: Any, description: str, total: float | None) -> Any:
        if task_id is None:
            return self.progress.add_task(description, total=total, info="")
        self.progress.update(task_id, description=description, total=total)
        return task_id

    def on_event(self, ev: dict) -> None:
        kind = ev.get("type")
        if kind == "stage":
            self._stage = str(ev.get("stage", ""))
            if self._stage_task is not None:  # a fresh bar per stage: no stale total or rate
                self.progress.remove_task(self._stage_task)
            self._stage_task = self._bar(None, self._stage, None)
        elif kind == "progress":
            self._stage_task = self._bar(self._stage_task, str(ev.get("stage") or self._stage), ev.get("total"))
            self.progress.update(self._stage_task, completed=ev.get("done", 0))
        elif kind == "epoch":
            self._epoch_task = self._bar(self._epoch_task, "epochs", ev.get("epochs"))
            loss = ev.get("train_loss")
            val = ev.get("val_loss")
            info = (f"loss {loss:.4g}" if isinstance(loss, (int, float)) else "") + (
                f" val {val:.4g}" if isinstance(val, (int, float)) else "")
            self.progress.update(self._epoch_task, completed=ev.get("epoch", 0), info=info)
        elif kind in ("warning", "error"):
            self.progress.console.print(f"[yellow]{kind}[/]: {ev.get('message', '')}", markup=True, highlight=False)
        elif kind == "log" and ev.get("level") in ("warning", "error"):
            self.progress.console.print(f"{ev.get('level')}: {ev.get('message', '')}", markup=False)
        elif kind == "run_finished":
            self.progress.console.print(f"run {ev.get('run_id', '')}: {ev.get('status')}", markup=False,
                                        highlight=False)

    def close(self) -> None:
        self.progress.stop()
