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

from console.inspect import DatasetInfo, inspect_dataset, list_datasets, scatter_image
from console.widgets.image import ImageView


class DatasetsScreen(Screen):
    AUTO_FOCUS = "#ds-list"
    DEFAULT_CSS = """
    DatasetsScreen #ds-left { width: 36; }
    DatasetsScreen #ds-folder { margin: 0 0; }
    DatasetsScreen #ds-list { height: 1fr; border: round $primary; }
    DatasetsScreen #ds-summary { height: auto; border: round $primary; padding: 0 1; }
    DatasetsScreen #ds-summary.invalid { border: round $error; color: $error; }
    DatasetsScreen ImageView { border: round $primary-darken-2; }
    DatasetsScreen .row { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="ds-left"):
                yield Input(placeholder="folder with .npz datasets (enter)", id="ds-folder")
                yield OptionList(id="ds-list")
            with Vertical():
                yield Static("Select a dataset.", id="ds-summary")
                with Horizontal(classes="row"):
                    yield ImageView(kind="intensity", title="diffraction (log)", id="ds-diffraction")
                    yield ImageView(kind="amplitude", title="probe |P|", id="ds-probe")
                    yield ImageView(kind="gray", title="scan positions", id="ds-positions")
                with Horizontal(classes="row"):
                    yield ImageView(kind="amplitude", title="ground truth amplitude", id="ds-amplitude")
                    yield ImageView(kind="phase", title="ground truth phase", id="ds-phase")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#ds-list").border_title = "datasets"
        self.query_one("#ds-summary").border_title = "summary"
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
            self.app.selected_dataset = path
        summary.update(render_summary(info))
        probe = None if info.probe is None else np.abs(info.probe)
        images = {"ds-diffraction": info.diffraction, "ds-probe": probe,
                  "ds-positions": None if info.positions is None or not len(info.positions) else scatter_image(info.positions),
                  "ds-amplitude": info.amplitude, "ds-phase": info.phase}
        for wid, arr in images.items():
            self.query_one(f"#{wid}", ImageView).set_array(arr)


def render_summary(info: DatasetInfo):
    if info.error is not None:
        return f"✘ invalid: {info.error}"
    table = Table.grid(padding=(0, 1))
    per_row = 3
    for _ in range(per_row):
        table.add_column(style="dim", justify="right")
        table.add_column(min_width=12)
    items = list(info.summary)
    for i in range(0, len(items), per_row):
        row = items[i:i + per_row]
        table.add_row(*(x for k, v in row for x in (k, v)))
    return table
