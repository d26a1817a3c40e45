"""Pure run state for the console: ``reduce(view, event) -> view``.

Every screen renders from a ``RunView``; nothing here touches a terminal, a process, a file or a clock. ETA and
throughput come only from event fields (``t``, epoch ``seconds``/``samples_per_s``, progress ``done``/``total``),
so the same event stream always renders the same screen (snapshot tests depend on it). The same reducer folds the
events of a child the console started, of a run started elsewhere (its ``events.jsonl`` tailed) and of a finished
run replayed from the run store.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable

from engine.events import (CANCELLED, EVALUATING, FAILED, GROUPING, INFERENCE, INTERRUPTED, LOADING, OK, REFINING,
                           RUNNING, SAVING, STAGES, STITCHING, TRAINING)

#: Stage order shown on the stage line: the protocol's own (engine/events.py); a run from an older engine simply
#: never emits the stages it did not have.
STAGE_ORDER = STAGES

LOG_TAIL = 200
"""Log lines kept per run: the panel shows the last few, the rest is in the run's events.jsonl."""

PENDING = "pending"  # the console's own: a child started, its run_started not yet read
FINAL_STATUSES = (OK, FAILED, CANCELLED, INTERRUPTED)

CHILD, OUTSIDE, STORED = "child", "outside", "stored"
"""Where a view's events come from: a child of this console, a live run started elsewhere (tailed), or a finished
run replayed from the run store."""

_PREVIEW_EPOCH = re.compile(r"epoch_(\d+)")


@dataclass(frozen=True)
class LogLine:
    level: str  # info | warning | error | output (child stdout/stderr)
    text: str
    t: float | None = None


@dataclass(frozen=True)
class Progress:
    """A progress window: its first event anchors the rate, so ETA = remaining / rate over the window."""

    done: int = 0
    total: int = 0
    t: float = 0.0
    t0: float = 0.0
    done0: int = 0
    unit: str = ""
    stage: str = ""

    @property
    def rate(self) -> float | None:
        dt = self.t - self.t0
        return (self.done - self.done0) / dt if dt > 0 and self.done > self.done0 else None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


@dataclass(frozen=True)
class RunView:
    key: str
    label: str = ""
    kind: str = "train"  # train | infer | reconstruct | parity | selftest
    backend: str = ""
    source: str = CHILD
    parent: str = ""  # a parity run's own training runs belong to it (shown in its loss plot, not in the list)
    run_id: str = ""
    run_dir: str = ""
    pid: int | None = None
    status: str = PENDING
    stage: str = ""
    stages: tuple[tuple[str, float], ...] = ()  # (stage, t at start)
    plan: tuple[str, ...] = ()  # stages this run is expected to go through (see ``planned_stages``)
    method: str = ""  # reconstruct: pinn | hybrid | iterative
    t: float = 0.0
    seq: int = 0
    epoch: int = 0
    epochs: int = 0  # planned epochs: known at launch (or from run.json), then from epoch events
    scope: str = ""  # training progress counts "epoch" (one window per epoch) or "run" (one window for all)
    epoch_seconds: tuple[float, ...] = ()
    samples_per_s: float | None = None  # the engine's own throughput figure of the last epoch
    samples_unit: str = "groups"  # what samples_per_s counts: groups (training) or patterns (refinement)
    progress: Progress = Progress()
    train_loss: tuple[float, ...] = ()
    val_loss: tuple[float, ...] = ()
    loss_epochs: tuple[int, ...] = ()  # epoch number of each train_loss entry
    val_epochs: tuple[int, ...] = ()
    refine_loss: tuple[tuple[int, float], ...] = ()  # (epoch, refinement loss) of a reconstruct run
    heldout: tuple[tuple[int, str, float], ...] = ()  # (epoch, metric name without "heldout_", value)
    previews: tuple[tuple[int, str], ...] = ()  # (epoch, path relative to the run dir) of held-out previews
    logs: tuple[LogLine, ...] = ()
    warnings: int = 0
    errors: tuple[str, ...] = ()
    error: tuple[str, str] | None = None  # (kind, message) of the run's error event
    traceback_tail: tuple[str, ...] = ()
    artifacts: tuple[tuple[str, str], ...] = ()
    metrics: tuple[tuple[str, float], ...] = ()
    exit_code: int | None = None
    cancel_requested: bool = False
    events: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def live(self) -> bool:
        return not self.finished and self.source in (CHILD, OUTSIDE)

    # ---- throughput, progress, ETA --------------------------------------------------------------------------
    @property
    def rate(self) -> tuple[float | None, str]:
        """(value, unit) of the current stage's throughput.

        Training and refinement show the engine's own per-epoch figure (groups/s resp. patterns/s): it is what the
        engine measured over a whole epoch, so it does not jump between batch rate and sample rate. Inference shows
        the progress window's rate in the unit the engine names (patterns).
        """
        p = self.progress
        if self.stage in (TRAINING, REFINING) or (self.finished and self.samples_per_s is not None):
            unit = "patterns/s" if self.stage == REFINING else f"{self.samples_unit}/s"
            return self.samples_per_s, unit
        if p.unit and p.rate is not None and p.unit not in ("batch", "batches"):
            return p.rate, f"{_plural(p.unit)}/s"
        return self.samples_per_s, f"{self.samples_unit}/s"

    @property
    def _scope(self) -> str:
        """How the epoch loop counts progress: learned at the first epoch event; before it, the engine's training
        hooks count batches over all epochs (engine/pipeline.py JobHooks), other jobs (selftest) per epoch."""
        return self.scope or ("run" if self.kind == "train" else "epoch")

    @property
    def _per_epoch(self) -> float | None:
        """Progress units per epoch when the training window spans all epochs."""
        p = self.progress
        if self._scope == "run" and self.epochs and p.total:
            return p.total / self.epochs
        return None

    @property
    def _in_epochs(self) -> bool:
        """True while the progress window is the epoch loop's (training or refinement)."""
        return bool(self.epochs) and self.stage in (TRAINING, REFINING) and (
            not self.progress.stage or self.progress.stage == self.stage)

    @property
    def eta_s(self) -> float | None:
        """Seconds left, from event fields only: the progress window, or per epoch the remaining epochs' mean time."""
        if self.finished:
            return 0.0
        p = self.progress
        if self._in_epochs and self._scope == "run" and p.rate and p.total > p.done:
            return (p.total - p.done) / p.rate  # one window over all epochs: its rate already averages them
        within = (p.total - p.done) / p.rate if p.rate and p.total > p.done else 0.0
        later = 0.0
        if self._in_epochs and self.epoch_seconds:
            mean = sum(self.epoch_seconds) / len(self.epoch_seconds)
            in_flight = 1 if p.total and p.done < p.total else 0
            later = max(0, self.epochs - self.epoch - in_flight) * mean
        if not within and not later:
            return None if p.rate is None and not self.epoch_seconds else 0.0
        return within + later

    @property
    def overall_fraction(self) -> float:
        """The whole run's epochs (with the in-flight epoch's share); the progress window when there are none."""
        if self.finished and self.status == OK:
            return 1.0
        if self.epochs:
            if not self._in_epochs:
                return min(1.0, self.epoch / self.epochs)
            if self._scope == "run":
                return self.progress.fraction
            part = self.progress.fraction if self.progress.done < self.progress.total else 0.0
            return min(1.0, (self.epoch + part) / self.epochs)
        return self.progress.fraction

    @property
    def epoch_fraction(self) -> float | None:
        """Share of the epoch in flight (None outside the epoch loop, or once the last epoch is done)."""
        if not self._in_epochs or self.epoch >= self.epochs:
            return None
        per = self._per_epoch
        if per:
            return min(1.0, max(0.0, (self.progress.done - self.epoch * per) / per))
        return self.progress.fraction if self.progress.done < self.progress.total else 0.0

    # ---- results ---------------------------------------------------------------------------------------------
    def metric(self, name: str) -> float | None:
        return dict(self.metrics).get(name)

    @property
    def latest_preview(self) -> tuple[int, str] | None:
        return self.previews[-1] if self.previews else None

    def heldout_at(self, epoch: int) -> dict[str, float]:
        return {name: value for e, name, value in self.heldout if e == epoch}

    @property
    def cause(self) -> str | None:
        """One line: why the run failed (error kind and message), or None."""
        if self.status not in (FAILED, INTERRUPTED) and not (self.errors and self.finished):
            return None
        if self.error is not None:
            return f"{self.error[0]}: {self.error[1]}"
        if self.errors:
            return self.errors[-1]
        if self.status == INTERRUPTED:
            return "the writing process is gone without finishing the run (killed, out of memory, power)"
        return f"exit code {self.exit_code}" if self.exit_code is not None else None

    @property
    def last_output(self) -> tuple[str, ...]:
        """The last lines the job printed (child stdout/stderr), else its last log lines: the context of a failure."""
        out = [ln.text for ln in self.logs if ln.level == "output" and ln.text.strip()]
        if not out:
            out = [ln.text for ln in self.logs if ln.level in ("info", "warning") and ln.text.strip()
                   and not ln.text.startswith("run finished")]
        return tuple(out[-4:])


def _plural(unit: str) -> str:
    return unit if unit.endswith("s") else unit + "es" if unit.endswith("ch") else unit + "s"


def planned_stages(kind: str, held_out: bool = False, method: str = "") -> tuple[str, ...]:
    """The stages a run of this kind goes through (engine/pipeline.py, the reconstruct contract), in STAGES order."""
    if kind == "train":
        wanted = {LOADING, GROUPING, TRAINING, SAVING}
        if held_out:
            wanted |= {INFERENCE, STITCHING, EVALUATING}
    elif kind == "infer":
        wanted = {LOADING, GROUPING, INFERENCE, STITCHING, EVALUATING, SAVING}
    elif kind == "reconstruct":
        wanted = {LOADING, EVALUATING, SAVING}
        if method in ("pinn", "hybrid", ""):
            wanted |= {GROUPING, INFERENCE, STITCHING}
        if method in ("iterative", "hybrid", ""):
            wanted |= {REFINING}
    elif kind == "parity":
        wanted = {LOADING, TRAINING, INFERENCE, EVALUATING, SAVING}
    else:
        wanted = set()
    return tuple(s for s in STAGE_ORDER if s in wanted)


def _log(view: RunView, level: str, text: str, t: float | None) -> tuple[LogLine, ...]:
    lines = view.logs + tuple(LogLine(level, s, t) for s in str(text).splitlines() or [""])
    return lines[-LOG_TAIL:]


def _num(x, default=None):
    try:
        return float(x)
    except (TypeError, ValueError):
        return default


def _int(x, default=None):
    v = _num(x)
    return int(v) if v is not None else default


def _progress(view: RunView, event: dict, t: float) -> RunView:
    done, total = int(_num(event.get("done"), 0)), int(_num(event.get("total"), 0))
    unit, stage = str(event.get("unit") or ""), str(event.get("stage") or "")
    p = view.progress
    if total != p.total or done < p.done or (stage and p.stage and stage != p.stage):  # a new window
        p = Progress(done, total, t, t, done, unit, stage)
    else:
        p = replace(p, done=done, t=t, unit=unit or p.unit)
    return replace(view, progress=p)


def _epoch(view: RunView, event: dict, t: float) -> RunView:
    epoch = _int(event.get("epoch"), view.epoch + 1)
    epochs = _int(event.get("epochs"), view.epochs)
    secs = _num(event.get("seconds"))
    tl, vl = _num(event.get("train_loss")), _num(event.get("val_loss"))
    refining = view.stage == REFINING or bool(event.get("method"))
    p = view.progress
    scope = view.scope
    if p.total and (not p.stage or p.stage == view.stage):
        # the window ends with the epoch (one window per epoch), or runs on across epochs (one for the whole loop)
        scope = "epoch" if p.done >= p.total and epoch < epochs else ("run" if p.done < p.total else scope or "epoch")
    label = "refinement epoch" if refining else "epoch"
    text = f"{label} {epoch}/{epochs}" + (f" loss {tl:.5g}" if tl is not None and refining else
                                          f" train {tl:.5g}" if tl is not None else "") + (
        f" val {vl:.5g}" if vl is not None else "")
    changes = dict(epoch=epoch, epochs=epochs, scope=scope, samples_unit="patterns" if refining else "groups",
                   epoch_seconds=view.epoch_seconds + ((secs,) if secs is not None else ()),
                   samples_per_s=_num(event.get("samples_per_s"), view.samples_per_s),
                   method=str(event.get("method") or view.method), logs=_log(view, "info", text, t))
    if refining:
        changes["refine_loss"] = view.refine_loss + (((epoch, tl),) if tl is not None else ())
    else:
        changes["train_loss"] = view.train_loss + ((tl,) if tl is not None else ())
        changes["loss_epochs"] = view.loss_epochs + ((epoch,) if tl is not None else ())
        changes["val_loss"] = view.val_loss + ((vl,) if vl is not None else ())
        changes["val_epochs"] = view.val_epochs + ((epoch,) if vl is not None else ())
    return replace(view, **changes)


def _metric(view: RunView, event: dict, t: float) -> RunView:
    name, value = str(event.get("name", "?")), _num(event.get("value"))
    if value is None:
        return view
    metrics = tuple((k, v) for k, v in view.metrics if k != name) + ((name, value),)
    if name.startswith("heldout_"):  # one log line per preview instead (see _artifact)
        epoch = _int(event.get("epoch"), view.epoch)
        return replace(view, metrics=metrics, heldout=view.heldout + ((epoch, name.removeprefix("heldout_"), value),))
    return replace(view, metrics=metrics, logs=_log(view, "info", f"metric {name} = {value:.5g}", t))


def _artifact(view: RunView, event: dict, t: float) -> RunView:
    item = (str(event.get("kind", "file")), str(event.get("path", "")))
    view = replace(view, artifacts=view.artifacts + (item,))
    if item[0] == "preview":  # one line: the held-out scores of this preview's epoch
        m = _PREVIEW_EPOCH.search(item[1])
        epoch = _int(event.get("epoch"), int(m.group(1)) if m else view.epoch)
        scores = ", ".join(f"{k.replace('_', ' ')} {v:.3g}" for k, v in view.heldout_at(epoch).items())
        return replace(view, previews=view.previews + ((epoch, item[1]),),
                       logs=_log(view, "info", f"held-out preview, epoch {epoch}" + (f": {scores}" if scores else ""), t))
    return replace(view, logs=_log(view, "info", f"artifact {item[0]}: {item[1]}", t))


def reduce(view: RunView, event: dict) -> RunView:
    """Fold one parsed event into the view. Unknown types become log lines; nothing raises."""
    kind = event.get("type")
    t = _num(event.get("t"), view.t)
    if kind in ("output", "exited"):  # not protocol events (no seq, no t): child output and the runner's end
        if kind == "output":
            return replace(view, logs=_log(view, "output", event.get("message", ""), None), events=view.events + 1)
        return _exited(view, event.get("returncode"))
    view = replace(view, t=max(view.t, t), seq=_int(event.get("seq"), view.seq), events=view.events + 1)
    if kind == "progress":
        return _progress(view, event, t)
    if kind == "run_started":
        return replace(
            view, status=RUNNING if view.status == PENDING else view.status,
            run_id=str(event.get("run_id") or view.run_id), run_dir=str(event.get("run_dir") or view.run_dir),
            backend=str(event.get("backend") or view.backend), pid=_int(event.get("pid"), view.pid),
            kind=str(event.get("kind") or view.kind),
            logs=_log(view, "info", f"run {event.get('run_id', '')} started", t))
    if kind == "stage":
        name = str(event.get("stage") or event.get("name") or "?")
        return replace(view, status=RUNNING if view.status == PENDING else view.status, stage=name,
                       stages=view.stages + ((name, t),), logs=_log(view, "info", f"stage: {name}", t))
    if kind == "epoch":
        return _epoch(view, event, t)
    if kind == "metric":
        return _metric(view, event, t)
    if kind == "artifact":
        return _artifact(view, event, t)
    if kind == "warning":
        return replace(view, warnings=view.warnings + 1, logs=_log(view, "warning", event.get("message", ""), t))
    if kind == "error":
        ekind, message = str(event.get("kind") or "error"), str(event.get("message") or "")
        tb = [ln for ln in str(event.get("traceback") or "").rstrip().splitlines() if ln.strip()]
        text = f"{ekind}: {message}" + ("\n" + "\n".join(tb) if tb else "")
        return replace(view, errors=view.errors + (f"{ekind}: {message}",), error=(ekind, message),
                       traceback_tail=tuple(tb[-3:-1]) if len(tb) > 1 else (), logs=_log(view, "error", text, t))
    if kind == "run_finished":
        status = str(event.get("status") or OK)
        code = _int(event.get("exit_code"), view.exit_code)
        text = f"run finished: {status}" + (f" (exit {code})" if code is not None else "")
        return replace(view, status=status, exit_code=code, logs=_log(view, "error" if status == FAILED else "info", text, t))
    if kind == "log":
        return replace(view, logs=_log(view, str(event.get("level") or "info"), event.get("message", ""), t))
    return replace(view, logs=_log(view, "info", event.get("message") or f"{kind}: {event}", t))


def _exited(view: RunView, code) -> RunView:
    """The job ended: trust its run_finished, else derive the status from the exit code (130 = cancelled).

    ``code`` is None when a followed run's writer vanished without finishing (nothing to read an exit code from).
    """
    if view.finished:
        return replace(view, exit_code=view.exit_code if code is None else int(code), events=view.events + 1)
    errors, logs = view.errors, view.logs
    if code is None:
        status = INTERRUPTED
        logs = _log(view, "error", "the run's writer is gone without run_finished: interrupted", None)
    elif int(code) == 0:
        status = OK
    elif int(code) == 130 or (view.cancel_requested and int(code) < 0):
        status = CANCELLED
    else:
        status = FAILED
        if not errors:
            last = [ln.text for ln in view.logs if ln.level == "output"][-1:]
            msg = f"process exited with code {code}" + (f": {last[0]}" if last else "")
            errors = errors + (msg,)
            logs = _log(view, "error", msg, None)
    return replace(view, status=status, exit_code=None if code is None else int(code), errors=errors, logs=logs,
                   events=view.events + 1)


def coalesce(events: Iterable[dict]) -> list[dict]:
    """Drop progress events that a later progress event of the same window supersedes.

    A run of consecutive progress events keeps its first (the rate anchor for a new window) and its last.
    """
    out: list[dict] = []
    pending: dict | None = None
    for ev in events:
        if ev.get("type") == "progress":
            prev = pending if pending is not None else (out[-1] if out else None)
            if prev is not None and out[-1].get("type") == "progress" and prev.get("total") == ev.get("total") and \
                    prev.get("stage") == ev.get("stage") and _num(ev.get("done"), 0) >= _num(prev.get("done"), 0):
                pending = ev
                continue
            if pending is not None:
                out.append(pending)
                pending = None
            out.append(ev)
            continue
        if pending is not None:
            out.append(pending)
            pending = None
        out.append(ev)
    if pending is not None:
        out.append(pending)
    return out


def reduce_batch(view: RunView, events: Iterable[dict]) -> RunView:
    """Fold a batch (as the runner or a follower delivers it), progress coalesced first."""
    for ev in coalesce(events):
        view = reduce(view, ev)
    return view


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
