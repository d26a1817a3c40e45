"""The ``pinnacle`` command line: headless subcommands and, with no arguments, the console.

Each subcommand lives in ``console/commands/<name>.py`` and registers itself on ``app`` in ``register``. Command
modules import only typer/stdlib at module level; numpy/scipy/frameworks are imported inside the command body, so
``pinnacle --help`` stays fast and never imports tensorflow or torch.

Exit codes (docs/protocol.md §4): 0 ok, 1 failure, 2 bad input or usage, 3 parity out of tolerance, 130 cancelled.
"""
from __future__ import annotations

import sys

import typer

from console.commands import COMMAND_MODULES

app = typer.Typer(
    name="pinnacle",
    help="Ptychography reconstruction with a physics-informed neural network (TensorFlow or PyTorch).\n\n"
    "Run with no arguments to open the operator console.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    """Open the console when no subcommand is given."""
    if ctx.invoked_subcommand is None:
        from console.commands.console_cmd import open_console

        open_console()


for _module in COMMAND_MODULES:
    _module.register(app)


def usage_line(exc) -> str:
    """A usage error (unknown option, missing argument) in one line: the command, what is wrong, where to look."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "pinnacle"
    message = " ".join(str(exc.format_message()).split())
    return f"{path}: {message} (see `{path} --help`)"


def diverts_native_log(argv: list[str]) -> bool:
    """Whether this command line gets fd 2 diverted: every command but ``console``. The console imports no
    framework (nothing native to hide), and Textual draws the whole screen on fd 2 (``sys.__stderr__``): diverted,
    the terminal stays blank."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return command != "console"


def entry() -> None:
    """The ``pinnacle`` program: an infer/reconstruct job goes to the warm worker when one is listening
    (console/worker/client.py); otherwise native libraries' log lines go to the run's framework.log
    (engine/native_log.py), not to the terminal, and ``main`` runs the command here."""
    from console.worker import client

    if client.wanted(sys.argv[1:]):
        code = client.forward(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    from engine.native_log import NativeLog

    native = NativeLog.divert() if diverts_native_log(sys.argv[1:]) else None
    code = main(native_log=native)
    if native is not None:
        native.close(code)
    from engine.backends import frameworks_loaded

    if frameworks_loaded():
        exit_now(code)
    sys.exit(code)


def exit_now(code: int) -> None:
    """End a process that loaded a framework without the interpreter's teardown: the run is finished and every file
    is closed by now, and tearing down TensorFlow or PyTorch (their thread pools, thousands of objects) took 1.0–1.3 s
    after the run's last event (docs/performance.md). Python-level buffers are flushed first."""
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main(argv: list[str] | None = None, native_log=None) -> int:
    """Run the typer app, turning InputError into one line on stderr and exit 2 (tests call this in-process)."""
    from engine.errors import EXIT_BAD_INPUT, EXIT_FAILURE, InputError

    try:
        result = app(args=argv, standalone_mode=False, obj=native_log)
        if isinstance(result, int) and not isinstance(result, bool):  # typer.Exit(n) comes back as a return value
            return result
    except InputError as exc:
        print(f"pinnacle: error: {exc.one_line()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SystemExit as exc:  # typer.Exit inside commands
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - click usage errors and real failures
        # typer >= 0.2x vendors click (no `click` module): use typer's names and duck-type usage errors.
        if isinstance(exc, typer.Abort):
            return 130
        if isinstance(exc, typer.Exit):
            return exc.exit_code
        if callable(getattr(exc, "format_message", None)) and hasattr(exc, "exit_code"):  # click's ClickException
            print(f"pinnacle: error: {usage_line(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        import traceback

        traceback.print_exc()
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    entry()
