"""Datasets screen: bundled fixtures and a chosen folder; selecting a file validates it and shows what is in it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from console import imaging
from console.imaging import Scale
from console.messages import DatasetChosen
from console.readers import DatasetInfo, inspect_dataset, list_datasets
from console.screens.common import title_panels
from console.widgets.image import ImageView
from console.widgets.path_suggester import PathSuggester


class DatasetsScreen(Screen):
    AUTO_FOCUS = "#ds-list"
    DEFAULT_CSS = """
    DatasetsScreen #ds-left { width: 36; }
    DatasetsScreen.-narrow #ds-left { width: 24; }
    DatasetsScreen #ds-list { height: 1fr; border: round $primary; }
    DatasetsScreen #ds-summary { height: auto; border: round $primary; padding: 0 1; }
    DatasetsScreen #ds-summary.invalid { border: round $error; color: $error; }
    DatasetsScreen .row { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="ds-left"):
                yield Input(placeholder="folder of .npz (enter)", id="ds-folder", compact=True,
                            suggester=PathSuggester(suffixes=("/",)))
                yield OptionList(id="ds-list")
            with Vertical():
                yield Static("Select a dataset.", id="ds-summary")
                with Horizontal(classes="row"):
                    yield ImageView("diffraction, log(1+I)", id="ds-diffraction")
                    yield ImageView("probe |P|", id="ds-probe")
                    yield ImageView("scan positions", id="ds-positions")
                with Horizontal(classes="row"):
                    yield ImageView("true amplitude", placeholder="no ground truth (objectGuess)", id="ds-amplitude")
                    yield ImageView("true phase", placeholder="no ground truth (objectGuess)", id="ds-phase")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        title_panels(self, {"#ds-list": "datasets", "#ds-summary": "summary"})
        folder = str(Path(self.app.data).parent) if self.app.data else None
        self.refresh_list(folder)

    def refresh_list(self, folder: str | None) -> None:
        files = list_datasets(folder, self.app.fixtures)
        chosen = self.app.selected_dataset
        if chosen and Path(chosen).exists() and Path(chosen).resolve() not in {f.resolve() for f in files}:
            files.insert(0, Path(chosen))
        listing = self.query_one("#ds-list", OptionList)
        listing.clear_options()
        listing.add_options([Option(f.name, id=str(f)) for f in files])
        if chosen:
            match = [i for i, f in enumerate(files) if f.resolve() == Path(chosen).resolve()]
            if match:
                listing.highlighted = match[0]
                self.show(str(files[match[0]]))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if Path(event.value).expanduser().is_dir():
            self.refresh_list(str(Path(event.value).expanduser()))
        else:
            self.notify(f"{event.value}: not a folder", severity="error")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.show(event.option.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.show(event.option.id)

    def show(self, path: str) -> None:
        info = inspect_dataset(path)
        summary = self.query_one("#ds-summary", Static)
        summary.set_class(info.error is not None, "invalid")
        if info.error is None:
            self.post_message(DatasetChosen(path))
        summary.update(render_summary(info, per_row=2 if self.app.narrow else 3))
        d = info.diffraction
        self._image("ds-diffraction", d, None if d is None else Scale(float(d.min()), float(d.max()) or 1.0, "magma"))
        probe = None if info.probe is None else np.abs(info.probe)
        self._image("ds-probe", probe, None if probe is None else imaging.amplitude_scale(probe))
        pos = None if info.positions is None or not len(info.positions) else imaging.scatter_image(info.positions)
        self._image("ds-positions", pos, None if pos is None else Scale(0.0, float(pos.max()) or 1.0, "gray"),
                    title=f"scan positions ({len(info.positions)})" if pos is not None else None)
        obj = info.object
        amp = None if obj is None else imaging.amplitude(obj, np.ones(obj.shape, bool))
        phase = None if obj is None else imaging.remove_phase_offset(obj, np.ones(obj.shape, bool))
        self._image("ds-amplitude", amp, None if amp is None else imaging.amplitude_scale(amp))
        self._image("ds-phase", phase, None if phase is None else imaging.phase_scale(phase))

    def _image(self, wid: str, array, scale, title: str | None = None) -> None:
        self.query_one(f"#{wid}", ImageView).set_array(array, scale, title=title)


def render_summary(info: DatasetInfo, per_row: int = 3):
    if info.error is not None:
        return f"✘ invalid: {info.error}"
    table = Table.grid(padding=(0, 1))
    for _ in range(per_row):
        table.add_column(style="dim", justify="right")
        table.add_column(min_width=10)
    items = list(info.summary)
    for i in range(0, len(items), per_row):
        row = items[i:i + per_row]
        table.add_row(*(x for k, v in row for x in (k, v)))
    return table
