"""Pure run state for the console: ``reduce(view, event) -> view``.

Every screen renders from a ``RunView``; nothing here touches a terminal, a process or a clock. ETA and
throughput come only from event fields (``t``, epoch ``seconds``/``samples_per_s``, progress ``done``/``total``),
so the same event stream always renders the same screen (snapshot tests depend on it).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

LOG_TAIL = 200
"""Log lines kept per run: the panel shows the last few, the rest is in the run's events.jsonl."""

RUNNING, OK, FAILED, CANCELLED, PENDING = "running", "ok", "failed", "cancelled", "pending"
FINAL_STATUSES = (OK, FAILED, CANCELLED)


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
    kind: str = "train"  # train | infer | parity | selftest
    backend: str = ""
    run_id: str = ""
    run_dir: str = ""
    status: str = PENDING
    stage: str = ""
    stages: tuple[tuple[str, float], ...] = ()  # (stage, t at start)
    t: float = 0.0
    seq: int = 0
    epoch: int = 0
    epochs: int = 0
    epoch_seconds: tuple[float, ...] = ()
    samples_per_s: float | None = None
    progress: Progress = Progress()
    train_loss: tuple[float, ...] = ()
    val_loss: tuple[float, ...] = ()
    logs: tuple[LogLine, ...] = ()
    warnings: int = 0
    errors: tuple[str, ...] = ()
    artifacts: tuple[tuple[str, str], ...] = ()
    metrics: tuple[tuple[str, float], ...] = ()
    exit_code: int | None = None
    cancel_requested: bool = False
    events: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def throughput(self) -> float | None:
        """Items per second: the engine's own figure when it gives one, else the progress window's rate."""
        rate = self.progress.rate
        return rate if rate is not None else self.samples_per_s

    @property
    def eta_s(self) -> float | None:
        """Seconds left, from event fields only: the current progress window plus the remaining epochs."""
        if self.finished:
            return 0.0
        p = self.progress
        within = (p.total - p.done) / p.rate if p.rate and p.total > p.done else 0.0
        later = 0
        if self.epochs and self.epoch_seconds:
            mean = sum(self.epoch_seconds) / len(self.epoch_seconds)
            # the window in flight is epoch (self.epoch + 1) when progress is counted per epoch
            in_flight = 1 if p.total and p.done < p.total and self.stage == "training" else 0
            later = max(0, self.epochs - self.epoch - in_flight) * mean
        if not within and not later:
            return None if p.rate is None and not self.epoch_seconds else 0.0
        return within + later

    @property
    def overall_fraction(self) -> float:
        """Progress bar value: epochs when known (with the in-flight epoch's share), else the progress window."""
        if self.finished and self.status == OK:
            return 1.0
        if self.epochs:
            part = self.progress.fraction if self.stage == "training" and self.progress.done < self.progress.total else 0.0
            return min(1.0, (self.epoch + part) / self.epochs)
        return self.progress.fraction

    def metric(self, name: str) -> float | None:
        return dict(self.metrics).get(name)


def _log(view: RunView, level: str, text: str, t: float | None) -> tuple[LogLine, ...]:
    lines = view.logs + tuple(LogLine(level, s, t) for s in str(text).splitlines() or [""])
    return lines[-LOG_TAIL:]


def _num(x, default=None):
    try:
        return float(x)
    except (TypeError, ValueError):
        return default


def reduce(view: RunView, event: dict) -> RunView:
    """Fold one parsed event into the view. Unknown types become log lines; nothing raises."""
    kind = event.get("type")
    t = _num(event.get("t"), view.t)
    base = {"t": max(view.t, t), "seq": int(event.get("seq") or view.seq), "events": view.events + 1}
    if kind == "progress":
        done, total = int(_num(event.get("done"), 0)), int(_num(event.get("total"), 0))
        p = view.progress
        if total != p.total or done < p.done:  # a new window (next epoch, next stage)
            p = Progress(done, total, t, t, done)
        else:
            p = replace(p, done=done, t=t)
        return replace(view, progress=p, **base)
    if kind == "run_started":
        return replace(
            view, status=RUNNING, run_id=str(event.get("run_id") or view.run_id),
            run_dir=str(event.get("run_dir") or view.run_dir), backend=str(event.get("backend") or view.backend),
            logs=_log(view, "info", f"run {event.get('run_id', '')} started", t), **base,
        )
    if kind == "stage":
        name = str(event.get("stage") or event.get("name") or "?")
        return replace(view, status=RUNNING if view.status == PENDING else view.status, stage=name,
                       stages=view.stages + ((name, t),), progress=Progress(), logs=_log(view, "info", f"stage: {name}", t), **base)
    if kind == "epoch":
        epoch = int(_num(event.get("epoch"), view.epoch + 1))
        secs = _num(event.get("seconds"))
        tl, vl = _num(event.get("train_loss")), _num(event.get("val_loss"))
        text = f"epoch {epoch}/{event.get('epochs', view.epochs)}" + (f" train {tl:.5g}" if tl is not None else "") + (
            f" val {vl:.5g}" if vl is not None else "")
        return replace(
            view, epoch=epoch, epochs=int(_num(event.get("epochs"), view.epochs)),
            epoch_seconds=view.epoch_seconds + ((secs,) if secs is not None else ()),
            samples_per_s=_num(event.get("samples_per_s"), view.samples_per_s),
            train_loss=view.train_loss + ((tl,) if tl is not None else ()),
            val_loss=view.val_loss + ((vl,) if vl is not None else ()),
            progress=Progress(), logs=_log(view, "info", text, t), **base,
        )
    if kind == "metric":
        name, value = str(event.get("name", "?")), _num(event.get("value"))
        if value is None:
            return replace(view, **base)
        metrics = tuple((k, v) for k, v in view.metrics if k != name) + ((name, value),)
        return replace(view, metrics=metrics, logs=_log(view, "info", f"metric {name} = {value:.5g}", t), **base)
    if kind == "artifact":
        item = (str(event.get("kind", "file")), str(event.get("path", "")))
        return replace(view, artifacts=view.artifacts + (item,), logs=_log(view, "info", f"artifact {item[0]}: {item[1]}", t), **base)
    if kind == "warning":
        return replace(view, warnings=view.warnings + 1, logs=_log(view, "warning", event.get("message", ""), t), **base)
    if kind == "error":
        msg = f"{event.get('kind', 'error')}: {event.get('message', '')}"
        text = msg + ("\n" + str(event["traceback"]).rstrip() if event.get("traceback") else "")
        return replace(view, errors=view.errors + (msg,), logs=_log(view, "error", text, t), **base)
    if kind == "run_finished":
        status = str(event.get("status") or OK)
        return replace(view, status=status, logs=_log(view, "error" if status == FAILED else "info", f"run finished: {status}", t), **base)
    if kind == "log":
        return replace(view, logs=_log(view, str(event.get("level") or "info"), event.get("message", ""), t), **base)
    if kind == "output":  # child stdout/stderr, not part of the protocol: no seq, no t
        return replace(view, logs=_log(view, "output", event.get("message", ""), None), events=view.events + 1)
    if kind == "exited":  # synthesised by the runner when the child is gone
        return _exited(view, int(event.get("returncode", 1)))
    return replace(view, logs=_log(view, "info", event.get("message") or f"{kind}: {event}", t), **base)


def _exited(view: RunView, code: int) -> RunView:
    """The child ended: trust its run_finished, else derive the status from the exit code (130 = cancelled)."""
    status = view.status
    errors = view.errors
    logs = view.logs
    if not view.finished:
        if code == 0:
            status = OK
        elif code == 130 or (view.cancel_requested and code < 0):
            status = CANCELLED
        else:
            status = FAILED
            if not errors:
                last = [ln.text for ln in view.logs if ln.level == "output"][-1:]
                msg = f"process exited with code {code}" + (f": {last[0]}" if last else "")
                errors = errors + (msg,)
                logs = _log(view, "error", msg, None)
    return replace(view, status=status, exit_code=code, errors=errors, logs=logs)


def coalesce(events: Iterable[dict]) -> list[dict]:
    """Drop progress events that a later progress event of the same window supersedes.

    A run of consecutive progress events keeps its first (the rate anchor for a new window) and its last.
    """
    out: list[dict] = []
    pending: dict | None = None
    for ev in events:
        if ev.get("type") == "progress":
            prev = pending if pending is not None else (out[-1] if out else None)
            if prev is not None and out[-1].get("type") == "progress" and prev.get("total") == ev.get("total") and _num(
                ev.get("done"), 0) >= _num(prev.get("done"), 0):
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
    """Fold a batch (as the runner delivers it), progress coalesced first."""
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
