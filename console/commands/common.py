"""Typer options shared by the headless commands, each written once.

Why: the run store, event-channel and scan-file options must be spelled and documented the same everywhere, and
the console passes them to every child. A command takes a whole group as one parameter whose default is an
``OptionGroup`` (``scan: ScanOptions = SCAN``) and is decorated with ``@grouped``: --help lists the group's options
where that parameter stands, and the body receives the group's one built value (ScanOptions, JobStream).
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import typer

RUNS_ENV = "PINNACLE_RUNS"
DEFAULT_RUNS = "runs"


def runs_option() -> typer.models.OptionInfo:
    """``--runs DIR``: the run store (default ./runs; the PINNACLE_RUNS environment variable overrides)."""
    return typer.Option(DEFAULT_RUNS, "--runs", envvar=RUNS_ENV, metavar="DIR",
                        help="Run store directory (env PINNACLE_RUNS; default ./runs).")


def progress_option() -> typer.models.OptionInfo:
    """``--progress/--no-progress``: rich progress bars on stderr when it is a terminal, and plain progress lines on
    stdout when that is a file or a pipe (a batch job's log) — unless stdout carries the event stream."""
    return typer.Option(True, "--progress/--no-progress",
                        help="Progress bars on stderr when it is a terminal; plain lines (stage, epoch and loss, "
                             "run id and directory, metrics) on stdout when it is a file or pipe and the event "
                             "stream is not followed (--events -, --events-fd).")


def check_worker(mode: str) -> None:
    """Refuse a ``--worker`` value other than auto or off (exit 2, one line)."""
    if mode not in ("auto", "off"):
        from engine.errors import InputError

        raise InputError("--worker", str(mode), "auto or off")


def native_log(ctx: typer.Context):
    """The process's engine.native_log.NativeLog (set by the entry point; None in-process and in tests)."""
    return ctx.obj if ctx is not None and ctx.obj is not None and hasattr(ctx.obj, "save_to") else None


def parse_devices(text: str) -> int | str:
    """``--devices`` (train, infer): a count ("2") or a comma-separated list of device indices ("0,1")."""
    from engine.errors import InputError

    parts = [p.strip() for p in str(text).split(",")]
    if not all(p.isdigit() for p in parts) or (len(parts) == 1 and int(parts[0]) < 1):
        raise InputError("--devices", str(text), "a device count >= 1 or a list of device indices such as 0,1")
    return int(parts[0]) if len(parts) == 1 else ",".join(parts)


# ------------------------------------------------------------------------------ option groups
@dataclass(frozen=True)
class OptionGroup:
    """Options that commands take together: ``options`` holds (parameter, type, typer option) in --help order;
    ``build`` turns their values (by parameter name) into the one value the command body receives."""
    options: tuple[tuple[str, type, Any], ...]
    build: Callable[..., Any]


def grouped(func: Callable) -> Callable:
    """Expand each parameter whose default is an OptionGroup into that group's options, in place (--help lists
    them where the parameter stands), and call ``func`` with the group's built value under the parameter's name."""
    signature = inspect.signature(func)  # annotations stay strings: typer resolves them in func's module
    params, groups = [], {}
    for p in signature.parameters.values():
        if isinstance(p.default, OptionGroup):
            groups[p.name] = p.default
            params += [inspect.Parameter(name, p.POSITIONAL_OR_KEYWORD, default=option, annotation=kind)
                       for name, kind, option in p.default.options]
        else:
            params.append(p)

    @functools.wraps(func)
    def command(**values):
        for name, group in groups.items():
            values[name] = group.build(**{option: values.pop(option) for option, _, _ in group.options})
        return func(**values)

    command.__signature__ = signature.replace(parameters=params)
    command.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not p.empty}
    return command


@dataclass(frozen=True)
class JobStream:
    """Where a job's record and events go: the run store, the event stream, and progress for people."""
    runs: str
    events: str | None
    events_fd: int | None
    progress: bool = True

    @property
    def human(self) -> bool | None:
        """The jobs' ``human`` argument: None (decide from the terminal) unless --no-progress."""
        return None if self.progress else False


def job_stream(runs: str, events: str | None, events_fd: int | None, progress: bool = True,
               worker: str = "off") -> JobStream:
    """The JOB / JOB_IN_WORKER groups' value; a --worker other than auto or off is InputError."""
    check_worker(worker)
    return JobStream(runs, events, events_fd, progress)


_STREAM = (
    ("runs", str, runs_option()),
    ("events", str, typer.Option(None, "--events", metavar="PATH|-", help="Write the event stream (one JSON object "
                                 "per line) to PATH, or '-' for stdout.")),
    ("events_fd", int, typer.Option(None, "--events-fd", metavar="N",
                                    help="Write the event stream to inherited file descriptor N.")),
)
_WORKER = typer.Option("auto", "--worker", envvar="PINNACLE_WORKER", metavar="auto|off",
                       help="auto: run in the warm worker (`pinnacle serve`) when one is running, else here; "
                            "off: always here (env PINNACLE_WORKER).")  # console/worker/client.py reads it first
#: --runs, --events, --events-fd (a command that lists --progress elsewhere takes it on its own).
STREAM = OptionGroup(_STREAM, job_stream)
#: STREAM and --progress/--no-progress.
JOB = OptionGroup(_STREAM + (("progress", bool, progress_option()),), job_stream)
#: JOB and --worker auto|off (infer and reconstruct: the commands the warm worker runs).
JOB_IN_WORKER = OptionGroup(JOB.options + (("worker", str, _WORKER),), job_stream)


# ------------------------------------------------------------------------------ scan files (docs/data.md)
def scan_options(energy_ev: float | None = None, distance_m: float | None = None,
                 detector_pixel_m: float | None = None, crop: int | None = None, probe_from: str | None = None,
                 product: str | None = None):
    """One immutable ``engine.formats.geometry.ScanOptions``; a non-positive value is InputError naming the option."""
    import math

    from engine.errors import InputError
    from engine.formats.geometry import ScanOptions

    for option, value, unit in (("--energy-ev", energy_ev, "eV"), ("--distance-m", distance_m, "m"),
                                ("--detector-pixel-m", detector_pixel_m, "m")):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(option, str(value), f"expected a positive number of {unit}")
    return ScanOptions(energy_ev=energy_ev, distance_m=distance_m, detector_pixel_m=detector_pixel_m, crop=crop,
                       probe=probe_from, product=product)


#: --energy-ev, --distance-m, --detector-pixel-m, --crop, --probe-from, --product → ScanOptions.
SCAN = OptionGroup((
    ("energy_ev", float, typer.Option(None, "--energy-ev", metavar="EV",
                                      help="Photon energy in eV (overrides the file's; CXI stores joules).")),
    ("distance_m", float, typer.Option(None, "--distance-m", metavar="M",
                                       help="Sample-detector distance in metres (overrides the file's).")),
    ("detector_pixel_m", float, typer.Option(None, "--detector-pixel-m", metavar="M", help="Detector pixel size in "
                                             "metres (overrides the file's). Object pixel = λ·z/(N·p).")),
    ("crop", int, typer.Option(None, "--crop", metavar="N",
                               help="Use the central NxN of a larger or non-square detector (N even).")),
    ("probe_from", str, typer.Option(None, "--probe-from", metavar="FILE", help="Probe from another file: NPZ "
                                     "(probeGuess), CXI (/entry_1/image_1/data) or Ptychodus product.h5.")),
    ("product", str, typer.Option(None, "--product", metavar="FILE", help="Positions, probe and energy/distance from "
                                  "a Ptychodus product (product.h5 or CXI) for a CXI or diffraction.h5 that lacks them "
                                  "(default for diffraction.h5: product.h5 beside it).")),
), scan_options)


def load_scan(path: str, options=None):
    """engine.dataset.load_dataset, each warning it raises (e.g. the legacy (N, N, M) orientation) printed as one
    ``pinnacle: warning:`` line on stderr — the commands that read a scan without a job to log it to."""
    import sys
    import warnings

    from engine.dataset import load_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(path, options=options)
    for w in caught:
        print(f"pinnacle: warning: {w.message}".replace("\n", " "), file=sys.stderr)
    return ds
