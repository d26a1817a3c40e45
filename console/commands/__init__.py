"""Subcommand modules; each exposes ``register(app)``. Keep module-level imports light (typer, stdlib)."""
from console.commands import console_cmd, evaluate, validate, runs, selftest

COMMAND_MODULES = [console_cmd, evaluate, validate, runs, selftest]
