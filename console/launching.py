"""The command lines Launch starts, from what the operator filled in: pure functions, no UI, testable alone.

One loop: ``train`` with a held-out scan trains, then reconstructs and scores that scan in the same run (as
headless ``pinnacle train --test`` does); ``reconstruct`` runs a chosen method on a scan with a bundle picked from
the run store (docs/console.md).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from console.commands.train import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS
from console.messages import JobRequest
from engine.backends import LABELS  # the registry; imports no framework
from engine.schedule import SCHEDULES  # pure: the learning-rate schedules `train --lr-schedule` takes

#: (id, label): each backend of the registry in its order, then the parity run of both.
BACKENDS = (*LABELS.items(), ("both", "Both = parity run"))
METHODS = (("hybrid", "hybrid"), ("pinn", "PINN"), ("iterative", "iterative"))
METHOD_HINTS = {
    "hybrid": "the bundle's PINN object, then refined against the data",
    "pinn": "the bundle's network alone, no refinement",
    "iterative": "refinement from a flat start, no bundle",
}


@dataclass(frozen=True)
class Field:
    """One numeric option: its id, CLI option, label, default, bounds and whether it may be left empty."""

    id: str
    option: str
    label: str
    default: str
    lo: float
    hi: float | None = None
    integer: bool = True
    optional: bool = False

    @property
    def expected(self) -> str:
        what = "an integer" if self.integer else "a number"
        if self.hi is None:
            return f"{what} ≥ {self.lo:g}" + (" (or empty)" if self.optional else "")
        return f"{what} in [{self.lo:g}, {self.hi:g}]" + (" (or empty)" if self.optional else "")

    def check(self, value: str) -> str | None:
        """None when ``value`` is acceptable, else what was expected."""
        value = value.strip()
        if not value:
            return None if self.optional else self.expected
        try:
            x = int(value) if self.integer else float(value)
        except ValueError:
            return self.expected
        if x < self.lo or (self.hi is not None and x > self.hi):
            return self.expected
        return None


TRAIN_FIELDS = (
    Field("epochs", "--epochs", "epochs", str(DEFAULT_EPOCHS), 1, 100000),
    Field("gridsize", "--gridsize", "gridsize", "1", 1, 3),
    Field("n-groups", "--n-groups", "groups", "", 1, optional=True),
    Field("batch-size", "--batch-size", "batch", str(DEFAULT_BATCH_SIZE), 1, 4096),
    Field("filters-scale", "--filters-scale", "filters", "1", 1, 8),
    Field("learning-rate", "--learning-rate", "lr", "0.001", 1e-7, 1.0, integer=False),
    Field("seed", "--seed", "seed", "0", 0),
    Field("eval-every", "--eval-every", "preview every", "", 1, optional=True),
    # with a held-out scan: also refine it from the network's object (hybrid) and report both side by side
    Field("test-refine", "--test-refine", "refine", "", 1, 100000, optional=True),
)


@dataclass(frozen=True)
class Choice:
    """One either-or training option, shown as radio buttons: its id, label, values (the first is the CLI's
    default) and the arguments each value adds to the command line (none for the default, so the line stays what
    an operator would type)."""

    id: str
    label: str
    values: tuple[str, ...]
    flags: dict

    @property
    def default(self) -> str:
        return self.values[0]

    def args(self, value: str) -> tuple[str, ...]:
        if value not in self.values:
            raise ValueError(f"{self.label}: expected one of {', '.join(self.values)}, got {value!r}")
        return tuple(self.flags.get(value, ()))


TRAIN_CHOICES = (
    # cosine: the ten-minute setting for a 1,024-pattern scan, with --epochs 60 (docs/performance.md)
    Choice("lr-schedule", "lr schedule", SCHEDULES, {v: ("--lr-schedule", v) for v in SCHEDULES[1:]}),
    # off: train on the patterns as measured only (engine/augment.py)
    Choice("augment", "augment", ("on", "off"), {"off": ("--no-augment",)}),
)
REFINE_EPOCHS = Field("refine-epochs", "--epochs", "refine epochs", "", 1, 100000, optional=True)


def check_scan(path: str, optional: bool = False) -> str | None:
    """None when ``path`` names an existing .npz (or is empty and optional), else what was expected."""
    path = path.strip()
    if not path:
        return None if optional else "expected a scan (.npz)"
    p = Path(path).expanduser()
    if p.suffix != ".npz":
        return "expected a .npz file"
    return None if p.is_file() else f"no such file: {path}"


@dataclass(frozen=True)
class Problem:
    """Why a job cannot start: the field and what was expected."""

    field: str
    message: str


def train_request(backend: str, data: str, test: str, values: dict[str, str],
                  choices: dict[str, str] | None = None) -> JobRequest | Problem:
    """``train`` (with ``--test`` when a held-out scan is given) or, for backend "both", a ``parity`` run (which
    trains with its own fixed settings: only the epochs apply). ``choices``: TRAIN_CHOICES' values by id, each its
    default when absent."""
    problems = [(fid, f"{what}: {msg}") for fid, what, msg in (("data", "training scan", check_scan(data)),
                                                               ("test", "held-out scan", check_scan(test, optional=True)))
                if msg]
    problems += [(f.id, f"{f.label}: {msg}") for f in TRAIN_FIELDS if (msg := f.check(values.get(f.id, "")))]
    if values.get("test-refine", "").strip() and not test.strip():
        problems.append(("test", "refine: refines the held-out scan, so give one (or leave refine empty)"))
    if problems:  # all of them at once: fixing one at a time is tedious
        return Problem(problems[0][0], "; ".join(m for _, m in problems))
    data, test = data.strip(), test.strip()
    epochs = values.get("epochs", "").strip()
    if backend == "both":
        if not test:
            return Problem("test", "a parity run needs a held-out scan")
        args = ("parity", data, "--test", test, "--epochs", epochs)
        return JobRequest("parity", args, f"parity {Path(data).name}", "both", held_out=True, epochs=int(epochs))
    args = ["train", data, "--backend", backend]
    for f in TRAIN_FIELDS:
        value = values.get(f.id, "").strip()
        if value:
            args += [f.option, value]
    for c in TRAIN_CHOICES:
        args += c.args((choices or {}).get(c.id, c.default))
    if test:
        args += ["--test", test]
    label = f"train {backend} {Path(data).name}" + (f" → {Path(test).name}" if test else "")
    return JobRequest("train", tuple(args), label, backend, held_out=bool(test), epochs=int(epochs))


def reconstruct_request(method: str, scan: str, bundle: str | None, backend: str, epochs: str) -> JobRequest | Problem:
    """``reconstruct SCAN --method M [--bundle B] [--epochs N] --backend B`` (docs/protocol.md)."""
    msg = check_scan(scan)
    if msg:
        return Problem("scan", f"scan: {msg}")
    if method in ("pinn", "hybrid") and not bundle:
        return Problem("bundle", f"the {method} method needs a bundle: pick one in the list")
    msg = REFINE_EPOCHS.check(epochs)
    if msg:
        return Problem("refine-epochs", f"refine epochs: {msg}")
    args = ["reconstruct", scan.strip(), "--method", method]
    if method in ("pinn", "hybrid"):
        args += ["--bundle", str(bundle)]
    if epochs.strip() and method in ("iterative", "hybrid"):
        args += ["--epochs", epochs.strip()]
    args += ["--backend", backend]
    label = f"reconstruct {method} {Path(scan.strip()).name}"
    return JobRequest("reconstruct", tuple(args), label, backend, held_out=False, method=method,
                      epochs=int(epochs) if epochs.strip() and method != "pinn" else 0)


def command_line(request: JobRequest | Problem) -> str:
    """What the operator would type headless (shown live under the form)."""
    if isinstance(request, Problem):
        return f"✘ {request.message}"
    return "pinnacle " + shlex.join(request.args)
