"""Typer option helpers shared by every headless job command (selftest, train, infer, parity, runs).

Why helpers: the run store and event-channel options must be spelled and documented the same everywhere, and the
console passes them to every child. Call them as defaults: ``runs: str = runs_option()``.
"""
from __future__ import annotations

import typer

RUNS_ENV = "PINNACLE_RUNS"
DEFAULT_RUNS = "runs"


def runs_option() -> typer.models.OptionInfo:
    """``--runs DIR``: the run store (default ./runs; the PINNACLE_RUNS environment variable overrides)."""
    return typer.Option(DEFAULT_RUNS, "--runs", envvar=RUNS_ENV, metavar="DIR",
                        help="Run store directory (env PINNACLE_RUNS; default ./runs).")


def events_option() -> typer.models.OptionInfo:
    """``--events PATH|-``: write the event stream (JSON lines) to a file or to stdout."""
    return typer.Option(None, "--events", metavar="PATH|-",
                        help="Write the event stream (one JSON object per line) to PATH, or '-' for stdout.")


def events_fd_option() -> typer.models.OptionInfo:
    """``--events-fd N``: write the event stream to an inherited file descriptor (what the console uses)."""
    return typer.Option(None, "--events-fd", metavar="N",
                        help="Write the event stream to inherited file descriptor N.")


def progress_option() -> typer.models.OptionInfo:
    """``--progress/--no-progress``: rich progress bars on stderr when it is a terminal, and plain progress lines on
    stdout when that is a file or a pipe (a batch job's log) — unless stdout carries the event stream."""
    return typer.Option(True, "--progress/--no-progress",
                        help="Progress bars on stderr when it is a terminal; plain lines (stage, epoch and loss, "
                             "run id and directory, metrics) on stdout when it is a file or pipe and the event "
                             "stream is not followed (--events -, --events-fd).")


def worker_option() -> typer.models.OptionInfo:
    """``--worker auto|off``: run in the warm worker when one is listening (console/worker/client.py decides this
    before the command body runs; the body sees only ``off``)."""
    return typer.Option("auto", "--worker", envvar="PINNACLE_WORKER", metavar="auto|off",
                        help="auto: run in the warm worker (`pinnacle serve`) when one is running, else here; "
                             "off: always here (env PINNACLE_WORKER).")


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


# ------------------------------------------------------------------------------ scan files (docs/data.md)
def energy_option() -> typer.models.OptionInfo:
    """``--energy-ev EV``: the photon energy, when the file states none or states it wrong."""
    return typer.Option(None, "--energy-ev", metavar="EV",
                        help="Photon energy in eV (overrides the file's; CXI stores joules).")


def distance_option() -> typer.models.OptionInfo:
    return typer.Option(None, "--distance-m", metavar="M", help="Sample-detector distance in metres (overrides the file's).")


def detector_pixel_option() -> typer.models.OptionInfo:
    return typer.Option(None, "--detector-pixel-m", metavar="M",
                        help="Detector pixel size in metres (overrides the file's). Object pixel = λ·z/(N·p).")


def crop_option() -> typer.models.OptionInfo:
    return typer.Option(None, "--crop", metavar="N",
                        help="Use the central NxN of a larger or non-square detector (N even).")


def probe_from_option() -> typer.models.OptionInfo:
    return typer.Option(None, "--probe-from", metavar="FILE",
                        help="Probe from another file: NPZ (probeGuess), CXI (/entry_1/image_1/data) or Ptychodus product.h5.")


def product_option() -> typer.models.OptionInfo:
    return typer.Option(None, "--product", metavar="FILE",
                        help="Positions, probe and energy/distance from a Ptychodus product (product.h5 or CXI) for a "
                             "CXI or diffraction.h5 that lacks them (default for diffraction.h5: product.h5 beside it).")


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
