"""Parity screen: both backends side by side — checks with pass/fail, metrics and deltas, runtimes per stage,
both reconstructions (phase) and their difference."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Static

from console import imaging
from console.parity_report import load_parity, parity_dir_to_show
from console.screens.common import StateScreen
from console.widgets.image import ImageView
from engine.backends import BACKENDS, LABELS, SHORT_LABELS  # the registry; imports no framework

#: The two backends a parity report compares, in its order (console/parity_report.py), as people read them.
PAIR = tuple(LABELS[b] for b in BACKENDS[:2])
#: The phase-difference panel's title: the second backend's phase subtracted from the first's.
DIFF_TITLE = f"Δφ {SHORT_LABELS[BACKENDS[0]]} − {SHORT_LABELS[BACKENDS[1]]}"
PHASE_PANELS = ("#par-phase-0", "#par-phase-1")


def _f(x: float | None, spec: str = ".4g") -> str:
    return "–" if x is None else format(x, spec)


def _mark(ok: bool | None) -> Text:
    return Text("PASS", style="bold green") if ok else (Text("FAIL", style="bold red") if ok is False else Text("?", style="dim"))


class ParityScreen(StateScreen):
    DEFAULT_CSS = """
    ParityScreen #par-head { height: auto; padding: 0 1; }
    ParityScreen #par-tables { height: auto; max-height: 60%; }
    ParityScreen #par-tables Vertical { height: auto; }
    ParityScreen DataTable { border: round $primary; width: 1fr; height: auto; max-height: 100%; }
    ParityScreen.-short #par-tables Vertical DataTable { max-height: 7; }
    ParityScreen #par-images { height: 1fr; min-height: 8; }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="par-head")
        with Horizontal(id="par-tables"):
            yield DataTable(id="par-checks", show_cursor=False)
            with Vertical():
                yield DataTable(id="par-metrics", show_cursor=False)
                yield DataTable(id="par-runtimes", show_cursor=False)
        with Horizontal(id="par-images"):
            for i, label in enumerate(PAIR):
                yield ImageView(f"{label} φ", id=f"par-phase-{i}")
            yield ImageView(DIFF_TITLE, id="par-diff")
        yield Footer(compact=True, show_command_palette=False)

    TITLES = {"#par-checks": "checks", "#par-metrics": "metrics", "#par-runtimes": "runtimes (s)"}

    def set_up(self) -> None:
        for wid, cols in (("#par-checks", ("level", "check", "value", "tolerance", "")),
                          ("#par-metrics", ("metric", *PAIR, "Δ")), ("#par-runtimes", ("stage", *PAIR, "ratio"))):
            self.query_one(wid, DataTable).add_columns(*cols)

    def redraw(self) -> None:
        run_dir = parity_dir_to_show(self.app.results_dir, self.app.runs_root)
        head = self.query_one("#par-head", Static)
        tables = {w: self.query_one(f"#{w}", DataTable) for w in ("par-checks", "par-metrics", "par-runtimes")}
        for t in tables.values():
            t.clear()
        if run_dir is None:
            head.update("No parity run yet: launch one with backend “Both (parity run)” (l).")
            for wid in (*PHASE_PANELS, "#par-diff"):
                self.query_one(wid, ImageView).set_array(None, placeholder="")
            return
        rep = load_parity(run_dir)
        verdict = {True: "[bold green]all checks pass[/]", False: "[bold red]out of tolerance (exit 3)[/]"}.get(rep.passed, "")
        head.update(f"[b]{Path(run_dir).name}[/b]  {verdict}  {rep.message}")
        for level, name, value, tol, ok in rep.checks:
            tables["par-checks"].add_row(level, name, value, tol, _mark(ok))
        for name, a, b in rep.metrics:
            tables["par-metrics"].add_row(name, _f(a), _f(b), _f(None if a is None or b is None else b - a, "+.2g"))
        runtimes = tables["par-runtimes"]
        doubtful = rep.runtimes_reliable is False  # measured while other processes used the machine
        runtimes.border_title = "runtimes (s), UNRELIABLE" if doubtful else "runtimes (s)"
        runtimes.border_subtitle = rep.runtime_note
        for stage, a, b in rep.runtimes:
            ratio = None if not a or b is None else b / a
            cell = _f(ratio, ".2f") + ("×" if ratio else "")
            runtimes.add_row(stage, _f(a, ".2f"), _f(b, ".2f"),
                             Text(cell + "?", style="dim yellow") if doubtful and ratio else cell)
        self._images(rep)

    def _images(self, rep) -> None:
        """Both phases (offset removed, own range) and their difference after matching the global offset."""
        objects = [None if a is None or p is None else a * np.exp(1j * p) for a, p in zip(rep.amplitudes, rep.phases)]
        why = "no reconstructions in this report (level 3 not run, or its files are gone)"
        for wid, obj in zip(PHASE_PANELS, objects):
            phase = None if obj is None else imaging.remove_phase_offset(obj)
            self.query_one(wid, ImageView).set_array(phase, None if phase is None else imaging.phase_scale(phase),
                                                     placeholder=why)
        diff = None if any(o is None for o in objects) else imaging.phase_difference(objects[0], objects[1])
        title = DIFF_TITLE + (f", max {float(np.nanmax(np.abs(diff))):.2g}" if diff is not None else "")
        self.query_one("#par-diff", ImageView).set_array(
            diff, None if diff is None else imaging.difference_scale(diff), title=title,
            placeholder="no difference: needs both reconstructions on the same grid")
