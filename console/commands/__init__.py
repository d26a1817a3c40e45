"""Subcommand modules; each exposes ``register(app)``. Keep module-level imports light (typer, stdlib)."""
from console.commands import console_cmd

COMMAND_MODULES = [console_cmd]
