"""Launch screen: backend (TensorFlow, PyTorch, or both = a parity run), key parameters validated as you type,
and inference from an existing bundle. It only builds the headless command line; the runner starts it."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.validation import Function, Integer, Number, ValidationResult, Validator
from textual.widgets import Button, Footer, Header, Input, Label, RadioButton, RadioSet, Static

from console.commands.train import DEFAULT_EPOCHS

BACKENDS = (("tensorflow", "TensorFlow"), ("torch", "PyTorch"), ("both", "Both (parity run)"))


class NpzPath(Validator):
    def __init__(self, optional: bool = False, suffix: str = ".npz"):
        super().__init__(f"expected an existing {suffix} file")
        self.optional, self.suffix = optional, suffix

    def validate(self, value: str) -> ValidationResult:
        if not value and self.optional:
            return self.success()
        p = Path(value).expanduser()
        ok = p.exists() and (p.suffix == self.suffix or (self.suffix == "bundle" and (p.is_dir() or p.suffix == ".zip")))
        return self.success() if ok else self.failure(self.failure_description)


# (id, option, label, default, validator)
FIELDS = (
    ("epochs", "--epochs", "epochs", str(DEFAULT_EPOCHS), Integer(1, 100000, failure_description="expected an integer ≥ 1")),
    ("gridsize", "--gridsize", "gridsize", "1", Integer(1, 3, failure_description="expected an integer 1–3")),
    ("n-groups", "--n-groups", "groups (empty: all)", "", Integer(1, failure_description="expected an integer ≥ 1")),
    ("batch-size", "--batch-size", "batch size", "16", Integer(1, 4096, failure_description="expected an integer 1–4096")),
    ("filters-scale", "--filters-scale", "filters scale", "1", Integer(1, 8, failure_description="expected an integer 1–8")),
    ("learning-rate", "--learning-rate", "learning rate", "0.001",
     Number(1e-7, 1.0, failure_description="expected a number in (0, 1]")),
    ("seed", "--seed", "seed", "0", Integer(0, failure_description="expected an integer ≥ 0")),
)


class LaunchScreen(Screen):
    AUTO_FOCUS = "#launch-backend"
    BINDINGS = [Binding("escape", "leave_field", "Leave field", show=False),Binding("ctrl+t", "train", "Start training"), Binding("ctrl+o", "infer", "Infer from bundle")]
    DEFAULT_CSS = """
    LaunchScreen #launch-body { padding: 0 1; }
    LaunchScreen Grid { grid-size: 3; grid-columns: 22 30 1fr; grid-rows: 3; height: auto; }
    LaunchScreen Grid Label { padding: 1 0 0 0; }
    LaunchScreen .err { color: $error; padding: 1 0 0 1; }
    LaunchScreen RadioSet { layout: horizontal; width: auto; }
    LaunchScreen #launch-buttons { height: 3; margin-top: 1; }
    LaunchScreen Button { margin-right: 2; }
    LaunchScreen #launch-status { height: auto; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="launch-body"):
            with RadioSet(id="launch-backend"):
                for i, (bid, label) in enumerate(BACKENDS):
                    yield RadioButton(label, value=i == 0, id=f"backend-{bid}")
            with Grid():
                yield Label("dataset")
                yield Input(id="in-data", validators=[NpzPath()], placeholder="train.npz")
                yield Static("", id="err-data", classes="err")
                for fid, _, label, default, validator in FIELDS:
                    yield Label(label)
                    yield Input(default, id=f"in-{fid}", validators=[validator], valid_empty=fid == "n-groups")
                    yield Static("", id=f"err-{fid}", classes="err")
                yield Label("held-out test (parity)")
                yield Input(id="in-test", validators=[NpzPath(optional=True)], placeholder="test.npz (parity only)")
                yield Static("", id="err-test", classes="err")
                yield Label("bundle (inference)")
                yield Input(id="in-bundle", validators=[NpzPath(optional=True, suffix="bundle")], placeholder="runs/<id>/bundle")
                yield Static("", id="err-bundle", classes="err")
            with Horizontal(id="launch-buttons"):
                yield Button("Train (ctrl+t)", id="btn-train", variant="primary")
                yield Button("Infer from bundle (ctrl+o)", id="btn-infer")
            yield Static("", id="launch-status")
        yield Footer()

    def on_mount(self) -> None:
        self.sync_dataset()

    def action_leave_field(self) -> None:
        """Screen keys (d, r, h, ...) type into a focused field; escape gives them back."""
        self.query_one(RadioSet).focus()

    def on_screen_resume(self) -> None:
        self.sync_dataset()

    def sync_dataset(self) -> None:
        """Prefill the dataset chosen on the Datasets screen (and its sibling test.npz for parity)."""
        data = self.app.selected_dataset
        inp = self.query_one("#in-data", Input)
        if data and inp.value != data:
            inp.value = data
            test = Path(data).with_name("test.npz")
            if test.exists() and not self.query_one("#in-test", Input).value:
                self.query_one("#in-test", Input).value = str(test)

    def on_input_changed(self, event: Input.Changed) -> None:
        fid = (event.input.id or "")[3:]
        err = self.query(f"#err-{fid}")
        if err and event.validation_result is not None:
            err.first(Static).update("" if event.validation_result.is_valid else "; ".join(event.validation_result.failure_descriptions))

    def backend(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return (pressed.id or "backend-tensorflow").removeprefix("backend-") if pressed else "tensorflow"

    def invalid(self, ids) -> list[str]:
        bad = []
        for fid in ids:
            inp = self.query_one(f"#in-{fid}", Input)
            res = inp.validate(inp.value)
            if res is not None and not res.is_valid:
                bad.append(fid)
                self.query_one(f"#err-{fid}", Static).update("; ".join(res.failure_descriptions))
        return bad

    def value(self, fid: str) -> str:
        return self.query_one(f"#in-{fid}", Input).value.strip()

    def train_args(self) -> tuple[str, list[str], str] | None:
        """(kind, argv after `pinnacle`, label) or None when something is invalid."""
        backend = self.backend()
        ids = ["data", *(f[0] for f in FIELDS)] + (["test"] if backend == "both" else [])
        if self.invalid(ids):
            return None
        data = self.value("data")
        if backend == "both":
            if not self.value("test"):
                self.query_one("#err-test", Static).update("a parity run needs a held-out test file")
                return None
            return "parity", ["parity", data, "--test", self.value("test"), "--epochs", self.value("epochs")], \
                f"parity {Path(data).name}"
        args = ["train", data, "--backend", backend]
        for fid, option, *_ in FIELDS:
            if self.value(fid):
                args += [option, self.value(fid)]
        return "train", args, f"train {backend} {Path(data).name}"

    def infer_args(self) -> tuple[str, list[str], str] | None:
        if self.invalid(["data", "bundle"]):
            return None
        if not self.value("bundle"):
            self.query_one("#err-bundle", Static).update("choose a bundle to infer with")
            return None
        backend = self.backend() if self.backend() != "both" else "tensorflow"
        return "infer", ["infer", self.value("bundle"), self.value("data"), "--backend", backend], \
            f"infer {backend} {Path(self.value('data')).name}"

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        await (self.action_train() if event.button.id == "btn-train" else self.action_infer())

    async def action_train(self) -> None:
        await self._start(self.train_args())

    async def action_infer(self) -> None:
        await self._start(self.infer_args())

    async def _start(self, job) -> None:
        status = self.query_one("#launch-status", Static)
        if job is None:
            status.update("[red]fix the fields marked in red[/]")
            return
        kind, args, label = job
        status.update("pinnacle " + " ".join(args))
        backend = args[args.index("--backend") + 1] if "--backend" in args else "both"
        await self.app.launch(kind, args, label, backend)
