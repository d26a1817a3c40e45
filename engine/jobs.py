"""The headless job runner every command uses (train, infer, parity, selftest).

Why one runner: the console and scripts follow a job only through its event stream and run directory, so the
run lifecycle (run.json updates, stage timings, signals, the final status and exit code) must be identical for
every job. Usage::

    with Job.start(kind="train", store=RunStore(root), config=cfg, backend="torch", dataset=info,
                   events=events, events_fd=events_fd) as job:
        job.stage("loading"); ...; job.check_cancel()
    raise typer.Exit(job.exit_code)

Validate input BEFORE ``Job.start``: bad input then exits 2 with no run directory. ``open_sink`` runs before the
run directory is made, so a bad ``--events`` is refused the same way.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from engine.errors import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_FAILURE, EXIT_OK, Cancelled, InputError
from engine.events import STAGES, EventWriter, open_sink
from engine.runstore import Run, RunStore

CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Job:
    """One running job: its run directory, its event writer and its cancellation flag."""

    def __init__(self, run: Run, writer: EventWriter, kind: str, backend: str | None, dataset: dict | None,
                 human: Any = None, clock: Callable[[], float] = time.monotonic):
        self.run = run
        self.events = writer
        self.kind = kind
        self.backend = backend
        self.dataset = dataset
        self.exit_code: int | None = None
        self.status: str | None = None
        self._human = human
        self._clock = clock
        self._cancel_signal: int | None = None
        self._cancel_logged = False
        self._finishing = False
        self._old_handlers: dict[int, Any] = {}
        self._on_cancel: list[Callable[[], None]] = []
        self._failure_reason: str | None = None
        self._native_log: Any = None
        self._stage: str | None = None
        self._stage_t0 = 0.0
        self._timings: dict[str, float] = {}
        self._metrics: dict[str, Any] = {}
        self._artifacts: list[dict] = []

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, kind: str, store: RunStore, config: dict, backend: str | None = None,
              dataset: dict | None = None, events: str | None = None, events_fd: int | None = None,
              human: bool | None = None, run_id: str | None = None, progress_hz: float = 20,
              clock: Callable[[], float] = time.monotonic, native_log: Any = None) -> "Job":
        """Open the event channel, then create (or, with ``run_id``, attach to) the run. Use as a context manager.

        ``human``: None = rich progress on stderr when stderr is a terminal, and plain lines on stdout when stdout
        is a file or pipe and no program follows the event stream (not --events -, not --events-fd;
        engine/plain.py); False = neither.
        ``native_log``: the process's engine.native_log.NativeLog; its lines go to the run's framework.log.
        """
        store.check_writable(create=False)  # a bad --runs fails before the event file is opened
        sink = open_sink(events, events_fd)  # InputError here leaves nothing behind
        try:
            run = store.attach(run_id) if run_id else store.create(kind, config=config, backend=backend,
                                                                   dataset=dataset)
        except BaseException:
            if sink is not None and sink not in (sys.stdout, sys.stderr):
                sink.close()
            raise
        mirror = open(run.events_path, "a", buffering=1, encoding="utf-8")
        writer = EventWriter(sink, run.run_id, clock=clock, progress_hz=progress_hz, mirror=mirror)
        view = None
        if (human is None or human) and _is_tty(sys.stderr):
            from engine.human import HumanView

            view = HumanView(sys.stderr)
            writer.add_listener(view.on_event)
        if human is None and not _is_tty(sys.stdout) and sink is not sys.stdout and events_fd is None:
            # a file or pipe on stdout gets plain lines — unless a program follows the events itself (the console
            # passes --events-fd and shows stdout as output lines: plain lines would repeat every event there)
            from engine.plain import PlainView

            writer.add_listener(PlainView(sys.stdout).on_event)
        job = cls(run, writer, kind, backend, dataset, human=view, clock=clock)
        job._native_log = native_log
        return job

    def __enter__(self) -> "Job":
        self._install_signals()
        self.events.emit("run_started", kind=self.kind, backend=self.backend, run_dir=str(self.run.dir.resolve()),
                         pid=os.getpid(), dataset=self.dataset)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        status, code, suppress = _classify(exc)
        self._finishing = True  # from here a further signal must not interrupt writing the final record
        try:
            self._finish(status, code, exc)
        finally:
            self._restore_signals()
            self.run.close()
        return suppress

    def abort(self, exc: BaseException) -> None:
        """End the run as failed from ANOTHER thread, then exit the process: for a main thread stuck in a framework's
        native call (a collective waiting for a dead rank: engine/launcher.py), which no exception can reach."""
        if self._finishing:
            return
        self._finishing = True
        try:
            self._finish("failed", EXIT_FAILURE, exc)
        finally:
            os._exit(EXIT_FAILURE)

    def _finish(self, status: str, code: int, exc: BaseException | None) -> None:
        if status == "cancelled":
            for fn in self._on_cancel:
                try:
                    fn()
                except Exception as err:  # noqa: BLE001 - saving partial results must not mask the cancel
                    self.warning(f"saving partial results failed: {type(err).__name__}: {err}")
        self._close_stage()
        error = None
        if status == "failed" and (isinstance(exc, SystemExit) or hasattr(exc, "exit_code")):
            # a deliberate exit code (e.g. parity out of tolerance, 3): the command has said why; no traceback
            error = {"kind": "Exit", "message": self._failure_reason or f"exit code {code}"}
            self.events.emit("error", traceback=None, **error)
        elif status == "failed" and exc is not None:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            kind = "InputError" if isinstance(exc, InputError) else type(exc).__name__
            message = exc.one_line() if isinstance(exc, InputError) else (str(exc) or kind)
            error = {"kind": kind, "message": message}
            self.events.emit("error", kind=kind, message=message,
                             traceback=None if isinstance(exc, InputError) else text)
            if not isinstance(exc, InputError):
                print(f"pinnacle: {self.kind} failed ({self.run.run_id}): {kind}: {message}", file=sys.stderr)
                print(text, file=sys.stderr, end="")
        elif status == "cancelled":
            error = {"kind": "Cancelled", "message": str(exc) if exc is not None and str(exc) else "cancelled"}
        elapsed = self.events.elapsed
        self.status, self.exit_code = status, code
        self.run.finish(status, exit_code=code, timings=dict(self._timings), duration=round(elapsed, 3), stage=None,
                        error=error)
        self.events.emit("run_finished", status=status, exit_code=code, seconds=round(elapsed, 3))
        if self._human is not None:
            self._human.close()
        self.events.close()
        if self._native_log is not None:
            self._native_log.save_to(self.run.dir)

    # -- cancellation ------------------------------------------------------------------------------------------
    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in CANCEL_SIGNALS:
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signals(self) -> None:
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        """First signal: set the flag (the job stops at the next check). Second: stop now (unless finishing)."""
        if self._finishing:
            return
        if self._cancel_signal is not None:
            raise Cancelled(f"{signal.Signals(signum).name} received twice")
        self._cancel_signal = signum

    @property
    def cancelled(self) -> bool:
        return self._cancel_signal is not None

    def check_cancel(self) -> None:
        """Raise ``Cancelled`` if SIGINT/SIGTERM arrived. Call between batches."""
        if self._cancel_signal is not None:
            if not self._cancel_logged:
                self._cancel_logged = True
                self.log(f"cancel requested ({signal.Signals(self._cancel_signal).name}); stopping")
            raise Cancelled(signal.Signals(self._cancel_signal).name)

    def fail_reason(self, message: str) -> None:
        """Why a deliberate non-zero exit (e.g. parity out of tolerance) failed: shown where people look."""
        self._failure_reason = message

    def on_cancel(self, fn: Callable[[], None]) -> None:
        """Register ``fn`` to save partial results when the job is cancelled (runs before run_finished)."""
        self._on_cancel.append(fn)

    # -- events ------------------------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return self.run.dir

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def _close_stage(self) -> None:
        if self._stage is not None:
            spent = self._clock() - self._stage_t0
            self._timings[self._stage] = round(self._timings.get(self._stage, 0.0) + spent, 6)
            self._stage = None

    def stage(self, name: str) -> dict:
        """Enter a stage (names in docs/protocol.md §1); the previous stage's time goes into run.json ``timings``."""
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; one of {STAGES}")
        self._close_stage()
        self._stage, self._stage_t0 = name, self._clock()
        self.run.update(stage=name, timings=dict(self._timings))
        return self.events.emit("stage", stage=name)

    def progress(self, done: float, total: float, **fields: Any) -> dict | None:
        """High-rate progress, throttled at the source."""
        return self.events.progress(done, total, **fields)

    def epoch(self, epoch: int, epochs: int, train_loss: float | None, val_loss: float | None = None,
              lr: float | None = None, seconds: float | None = None, samples_per_s: float | None = None,
              **extra: Any) -> dict:
        """One finished epoch; also recorded in run.json (``last_epoch``) for listings."""
        ev = self.events.emit("epoch", epoch=epoch, epochs=epochs, train_loss=train_loss, val_loss=val_loss, lr=lr,
                              seconds=seconds, samples_per_s=samples_per_s, **extra)
        self.run.update(last_epoch={k: ev[k] for k in ("epoch", "epochs", "train_loss", "val_loss", "lr")})
        return ev

    def metric(self, name: str, value: Any, key: bool = False, **fields: Any) -> dict:
        """A named result; ``key=True`` makes it the one ``pinnacle runs`` shows."""
        ev = self.events.emit("metric", name=name, value=value, **fields)
        self._metrics[name] = ev["value"]
        extra = {"key_metric": name} if key else {}
        self.run.update(metrics=dict(self._metrics), **extra)
        return ev

    def artifact(self, kind: str, path: str | os.PathLike) -> dict:
        """Announce a file written in the run directory (path given absolute or relative to it)."""
        p = Path(path)
        rel = p.resolve().relative_to(self.run.dir.resolve()) if p.is_absolute() else p
        if ".." in rel.parts:
            raise ValueError(f"artifact {path} is outside the run directory")
        ev = self.events.emit("artifact", kind=kind, path=rel.as_posix())
        entry = {"kind": kind, "path": rel.as_posix()}
        self._artifacts = [a for a in self._artifacts if a["path"] != entry["path"]] + [entry]
        self.run.update(artifacts=list(self._artifacts))
        return ev

    def log(self, message: str, level: str = "info") -> dict:
        return self.events.emit("log", level=level, message=message)

    def warning(self, message: str) -> dict:
        return self.events.emit("warning", message=message)


def _classify(exc: BaseException | None) -> tuple[str, int, bool]:
    """(status, exit code, suppress) for how the job body ended."""
    if exc is None:
        return "ok", EXIT_OK, False
    if isinstance(exc, (Cancelled, KeyboardInterrupt)):
        return "cancelled", EXIT_CANCELLED, True
    if isinstance(exc, InputError):
        return "failed", EXIT_BAD_INPUT, False  # re-raised: the CLI prints the one-line message
    if isinstance(exc, SystemExit) or hasattr(exc, "exit_code"):  # sys.exit / typer.Exit inside the job
        raw = exc.code if isinstance(exc, SystemExit) else exc.exit_code
        code = raw if isinstance(raw, int) else (0 if raw is None else EXIT_FAILURE)
        if code == EXIT_OK:
            return "ok", code, False
        return ("cancelled" if code == EXIT_CANCELLED else "failed"), code, False
    return "failed", EXIT_FAILURE, True


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
