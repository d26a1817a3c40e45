"""Error types that map to the exit codes of docs/protocol.md §4.

Bad input is an ``InputError``: the CLI prints its one-line message and exits 2. Anything else that escapes a
command is a failure (exit 1). Parity out of tolerance exits 3, cancellation 130.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_PARITY = 3
EXIT_CANCELLED = 130


class InputError(Exception):
    """Bad input from the user: names the source (file or option), the key, and what was expected."""

    def __init__(self, source: str, key: str | None, expected: str):
        self.source = str(source)
        self.key = key
        self.expected = expected
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = f"{self.source}: {self.key}" if self.key else self.source
        return f"{where}: {self.expected}".replace("\n", " ")


class ConfigError(InputError):
    """One bad configuration field."""

    def __init__(self, field: str, expected: str, source: str = "config"):
        super().__init__(source, field, expected)


def require(cond: bool, field: str, expected: str) -> None:
    """ConfigError(field, expected) unless ``cond``: one line per field in the config dataclasses' checks."""
    if not cond:
        raise ConfigError(field, expected)


class BackendUnavailable(InputError):
    """The selected backend's framework is not installed (exit 2, with the install command)."""


class Cancelled(Exception):
    """Raised inside a job when SIGINT/SIGTERM was received; the job saves what it has and exits 130."""
