"""Launch screen: train (with a held-out scan: reconstructed and scored in the same run), a parity run, or
reconstruct a scan (PINN / hybrid / iterative) with a bundle picked from the run store. It builds the headless
command line (console/launching.py, shown live under the form) and posts it to the app; nothing else."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.validation import Function
from textual.widgets import (Button, DataTable, Footer, Header, Input, Label, RadioButton, RadioSet, Static,
                             TabbedContent, TabPane)

from console.launching import (BACKENDS, METHOD_HINTS, METHODS, REFINE_EPOCHS, TRAIN_CHOICES, TRAIN_FIELDS, Problem,
                               check_scan, command_line, reconstruct_request, train_request)
from console.messages import StartJob
from console.readers import BundleInfo, list_bundles
from console.screens.common import StateScreen
from console.widgets.path_suggester import PathSuggester
from engine.backends import DEFAULT_BACKEND


def _field_input(field) -> Input:
    return Input(field.default, id=f"in-{field.id}", compact=True, placeholder="–" if field.optional else "",
                 validators=[Function(lambda v, f=field: f.check(v) is None, f"{field.label}: {field.expected}")],
                 valid_empty=field.optional)


def _scan_input(fid: str, placeholder: str, optional: bool = False) -> Input:
    return Input(id=f"in-{fid}", compact=True, placeholder=placeholder, suggester=PathSuggester(),
                 validators=[Function(lambda v: check_scan(v, optional) is None, "expected an existing .npz scan")],
                 valid_empty=optional)


class LaunchScreen(StateScreen):
    AUTO_FOCUS = "#launch-backend"
    BINDINGS = [
        Binding("escape", "leave_field", "Leave field"),
        Binding("ctrl+t", "train", "Train", show=False),  # the tab titles and buttons say ctrl+t / ctrl+o
        Binding("ctrl+o", "reconstruct", "Reconstruct", show=False),
    ]
    DEFAULT_CSS = """
    LaunchScreen TabbedContent { height: auto; }
    LaunchScreen TabPane { padding: 0 1; height: auto; }
    LaunchScreen .row { height: 1; margin-bottom: 1; }
    LaunchScreen.-short .row, LaunchScreen .row.tight { margin-bottom: 0; }
    LaunchScreen .row Label { width: 15; color: $text-muted; }
    LaunchScreen .row Input { width: 1fr; }
    LaunchScreen .param { width: auto; height: 1; margin-right: 2; }
    LaunchScreen .param Label { width: auto; margin-right: 1; color: $text-muted; }
    LaunchScreen .param Input { width: 7; }
    LaunchScreen RadioSet { layout: horizontal; width: auto; height: 1; }
    LaunchScreen RadioSet > RadioButton { width: auto; margin-right: 2; }
    LaunchScreen #method-hint { height: 1; color: $text-muted; margin-left: 15; }
    LaunchScreen #bundles { height: 7; border: round $primary; }
    LaunchScreen.-short #bundles { height: 6; }
    LaunchScreen .buttons { height: 1; }
    LaunchScreen Button { margin-right: 2; }
    LaunchScreen #launch-command { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    LaunchScreen #launch-status { height: auto; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.bundles: list[BundleInfo] = []
        self.refused = False  # the status line says "not started" (cleared once the form is complete)

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="launch-tabs"):
            with TabPane("Train (ctrl+t)", id="tab-train"):
                with Horizontal(classes="row"):
                    yield Label("backend")
                    with RadioSet(id="launch-backend", compact=True):
                        for i, (bid, label) in enumerate(BACKENDS):
                            yield RadioButton(label, value=i == 0, id=f"backend-{bid}")
                with Horizontal(classes="row"):
                    yield Label("training scan")
                    yield _scan_input("data", "train.npz")
                with Horizontal(classes="row"):
                    yield Label("held-out scan")
                    yield _scan_input("test", "optional: reconstructed and scored after training", optional=True)
                for fields in (TRAIN_FIELDS[:4], TRAIN_FIELDS[4:]):
                    with Horizontal(classes="row"):
                        for field in fields:
                            with Horizontal(classes="param"):
                                yield Label(field.label)
                                yield _field_input(field)
                with Horizontal(classes="row"):
                    for choice in TRAIN_CHOICES:
                        with Horizontal(classes="param"):
                            yield Label(choice.label)
                            with RadioSet(id=f"choice-{choice.id}", compact=True):
                                for i, value in enumerate(choice.values):
                                    yield RadioButton(value, value=i == 0, id=f"choice-{choice.id}-{value}")
                with Horizontal(classes="buttons"):
                    yield Button("Train (ctrl+t)", id="btn-train", variant="primary", compact=True)
            with TabPane("Reconstruct (ctrl+o)", id="tab-reconstruct"):
                with Horizontal(classes="row tight"):
                    yield Label("method")
                    with RadioSet(id="launch-method", compact=True):
                        for i, (mid, label) in enumerate(METHODS):
                            yield RadioButton(label, value=i == 0, id=f"method-{mid}")
                yield Static(METHOD_HINTS[METHODS[0][0]], id="method-hint")
                with Horizontal(classes="row"):
                    yield Label("scan")
                    yield _scan_input("scan", "scan to reconstruct (.npz)")
                yield DataTable(id="bundles", cursor_type="row", zebra_stripes=True)
                with Horizontal(classes="row"):
                    yield Label("backend")
                    with RadioSet(id="launch-recon-backend", compact=True):
                        for i, (bid, label) in enumerate(BACKENDS[:2]):
                            yield RadioButton(label, value=i == 0, id=f"recon-backend-{bid}")
                    with Horizontal(classes="param"):
                        yield Label(REFINE_EPOCHS.label)
                        yield _field_input(REFINE_EPOCHS)
                with Horizontal(classes="buttons"):
                    yield Button("Reconstruct (ctrl+o)", id="btn-reconstruct", variant="primary", compact=True)
        yield Static("", id="launch-command")
        yield Static("", id="launch-status")
        yield Footer(compact=True, show_command_palette=False)

    TITLES = {"#bundles": "bundle (↑↓ to pick)"}

    def set_up(self) -> None:
        self.query_one("#bundles", DataTable).add_columns("run", "backend", "trained on", "epochs", "held-out")

    def redraw(self) -> None:
        """The dataset chosen elsewhere, the store's bundles and the command line, each time the form is shown."""
        self.sync_dataset()
        self.reload_bundles()
        self.update_command()

    def shows(self, key: str) -> bool:
        """The form is refreshed when shown, not while the operator types into it."""
        return False

    def action_leave_field(self) -> None:
        """Screen keys (d, r, h, ...) type into a focused field; escape gives them back (focus on the tab's first
        selector, which takes no letters)."""
        pane = self.query_one(TabbedContent).active
        self.query_one("#launch-method" if pane == "tab-reconstruct" else "#launch-backend", RadioSet).focus()

    # ---- form values -----------------------------------------------------------------------------------------
    def sync_dataset(self) -> None:
        """Prefill the dataset chosen on the Datasets screen, and its sibling test.npz as the held-out scan."""
        from pathlib import Path

        data = self.app.selected_dataset
        inp = self.query_one("#in-data", Input)
        if data and inp.value != data:
            inp.value = data
            test = Path(data).with_name("test.npz")
            if test.exists() and test != Path(data):
                if not self.query_one("#in-test", Input).value:
                    self.query_one("#in-test", Input).value = str(test)
                if not self.query_one("#in-scan", Input).value:
                    self.query_one("#in-scan", Input).value = str(test)

    def reload_bundles(self) -> None:
        table = self.query_one("#bundles", DataTable)
        selected = self.selected_bundle()
        self.bundles = list_bundles(self.app.runs_root)
        table.clear()
        for b in self.bundles:
            metric = f"{b.metric[0].replace('heldout_', '')} {b.metric[1]:.3g}" if b.metric else "–"
            table.add_row(b.run_id.rsplit("-", 1)[0], b.backend, b.dataset or "–", str(b.epochs or "–"), metric, key=b.path)
        if selected is not None:
            for i, b in enumerate(self.bundles):
                if b.path == selected.path:
                    table.move_cursor(row=i)
        table.border_subtitle = "" if self.bundles else "no trained bundle in the run store yet: train one"

    def selected_bundle(self) -> BundleInfo | None:
        table = self.query_one("#bundles", DataTable)
        row = table.cursor_row
        return self.bundles[row] if self.bundles and row is not None and 0 <= row < len(self.bundles) else None

    def _radio(self, rid: str, prefix: str, default: str) -> str:
        pressed = self.query_one(rid, RadioSet).pressed_button
        return (pressed.id or "").removeprefix(prefix) if pressed and pressed.id else default

    def value(self, fid: str) -> str:
        return self.query_one(f"#in-{fid}", Input).value

    def train_request(self):
        values = {f.id: self.value(f.id) for f in TRAIN_FIELDS}
        choices = {c.id: self._radio(f"#choice-{c.id}", f"choice-{c.id}-", c.default) for c in TRAIN_CHOICES}
        return train_request(self._radio("#launch-backend", "backend-", DEFAULT_BACKEND), self.value("data"),
                             self.value("test"), values, choices)

    def reconstruct_request(self):
        bundle = self.selected_bundle()
        return reconstruct_request(self._radio("#launch-method", "method-", "hybrid"), self.value("scan"),
                                   bundle.path if bundle else None,
                                   self._radio("#launch-recon-backend", "recon-backend-", DEFAULT_BACKEND),
                                   self.value("refine-epochs"))

    def _current_request(self):
        pane = self.query_one(TabbedContent).active
        return self.reconstruct_request() if pane == "tab-reconstruct" else self.train_request()

    def update_command(self) -> None:
        """The command line the active tab would run, recomputed on every change (backend, method, fields); a
        "not started" line from an earlier attempt gives way once the form is complete (it pointed at a red line
        that is gone)."""
        request = self._current_request()
        self.query_one("#launch-command", Static).update(
            ("[red]" if isinstance(request, Problem) else "[dim]$[/] ") + command_line(request).replace("[", r"\[")
            + ("[/]" if isinstance(request, Problem) else ""))
        if self.refused and not isinstance(request, Problem):
            self.refused = False
            key = "ctrl+o" if self.query_one(TabbedContent).active == "tab-reconstruct" else "ctrl+t"
            self.query_one("#launch-status", Static).update(f"[dim]ready: {key} or the button starts it[/]")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.update_command()

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        if event.radio_set.id == "launch-method":  # the bundle list matters only for methods that use one
            method = (event.pressed.id or "").removeprefix("method-")
            self.query_one("#bundles").disabled = method == "iterative"
            self.query_one("#method-hint", Static).update(METHOD_HINTS.get(method, ""))
        self.update_command()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.update_command()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.update_command()

    # ---- actions ---------------------------------------------------------------------------------------------
    async def on_button_pressed(self, event: Button.Pressed) -> None:
        await (self.action_train() if event.button.id == "btn-train" else self.action_reconstruct())

    async def action_train(self) -> None:
        self._start(self.train_request())

    async def action_reconstruct(self) -> None:
        self._start(self.reconstruct_request())

    def _start(self, request) -> None:
        status = self.query_one("#launch-status", Static)
        if isinstance(request, Problem):
            self.refused = True
            status.update("[red]not started: fix what the red line above says[/]")
            found = self.query(f"#in-{request.field}")
            widget = found.first() if found else self.query_one("#bundles")
            pane = next((a for a in widget.ancestors if isinstance(a, TabPane)), None)
            if pane is not None and pane.id:
                self.query_one(TabbedContent).active = pane.id
            widget.focus()
            return
        status.update(f"started: {request.label}")
        self.post_message(StartJob(request))
