"""Subcommand modules; each exposes ``register(app)``. Keep module-level imports light (typer, stdlib)."""
from console.commands import (console_cmd, convert, evaluate, infer, parity, reconstruct, runs, selftest, serve,
                              simulate, train, validate)

COMMAND_MODULES = [console_cmd, evaluate, validate, simulate, convert, runs, selftest, train, infer, reconstruct, parity, serve]
