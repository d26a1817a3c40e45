"""The backend registry: every backend Pinnacle knows, in one place, and how to load one.

Everything else reads this table (names, labels, aliases, the frameworks each needs, install commands) instead
of spelling the backends out. The console and the CLI never import a framework; a job imports exactly the one it
was asked for. A missing framework is bad input (exit 2) with the CPU install command — never a silent fallback
to the other backend. The backend module's contract is engine/backend_api.py; docs/backends.md says how to add one.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.errors import BackendUnavailable, InputError

if TYPE_CHECKING:
    from engine.backend_api import Backend


@dataclass(frozen=True)
class BackendInfo:
    name: str  # canonical name (config, run.json, bundles)
    label: str  # for people
    short: str  # for people, where space is short (the console's run screen)
    aliases: tuple[str, ...]
    frameworks: tuple[str, ...]  # modules that must import
    package: str  # engine package: backend.py (the contract), framework.py, ops.py (level 0), checkpoints.py (--resume)
    install: str  # CPU install command (README "GPU install" for CUDA builds)

    @property
    def module(self) -> str:
        return f"{self.package}.backend"

    @property
    def framework_module(self) -> str:
        """Imports the main framework the way the backend wants it imported (engine/tf/framework.py: without pyplot)."""
        return f"{self.package}.framework"

    @property
    def ops_module(self) -> str:
        return f"{self.package}.ops"

    @property
    def checkpoints_module(self) -> str:
        """Light (no framework import): ``find_checkpoint(path, given)`` → what ``backend.train`` resumes from."""
        return f"{self.package}.checkpoints"


REGISTRY: tuple[BackendInfo, ...] = (
    BackendInfo("tensorflow", "TensorFlow", "TF", ("tf", "keras"), ("tensorflow", "keras"), "engine.tf",
                "pip install tensorflow-cpu keras"),
    BackendInfo("torch", "PyTorch", "PyTorch", ("pytorch",), ("torch", "lightning"), "engine.torch",
                "pip install torch==2.13.0 lightning"),
)
BACKENDS: tuple[str, ...] = tuple(b.name for b in REGISTRY)
DEFAULT_BACKEND = "tensorflow"
ALIASES = {alias: b.name for b in REGISTRY for alias in b.aliases}
INSTALL = {b.name: b.install for b in REGISTRY}
LABELS = {b.name: b.label for b in REGISTRY}
SHORT_LABELS = {b.name: b.short for b in REGISTRY}

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "ALIASES", "INSTALL", "LABELS", "SHORT_LABELS", "REGISTRY", "BackendInfo",
           "info", "canonical_name", "is_installed", "installed_backends", "frameworks_loaded", "load_backend"]


def info(name: str) -> BackendInfo:
    return next(b for b in REGISTRY if b.name == canonical_name(name))


def canonical_name(name: str | None, source: str = "--backend") -> str:
    """'tf' → 'tensorflow', 'pytorch' → 'torch'; None → the default; anything else → InputError."""
    if name is None:
        return DEFAULT_BACKEND
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in BACKENDS:
        raise InputError(source, str(name), f"one of {', '.join(BACKENDS)} (aliases: {', '.join(ALIASES)})")
    return key


def is_installed(name: str) -> bool:
    """Whether the backend's frameworks can be imported — asked without importing them (find_spec)."""
    return all(_findable(m) for m in info(name).frameworks)


def _findable(module: str) -> bool:
    """Installed and not blocked, asked without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: sys.modules[module] is None (an import made to fail)
        return False


def installed_backends() -> tuple[str, ...]:
    return tuple(b for b in BACKENDS if is_installed(b))


def frameworks_loaded() -> bool:
    """Whether any backend's main framework module has been imported into this process."""
    return any(b.frameworks[0] in sys.modules for b in REGISTRY)


def load_backend(name: str | None) -> "Backend":
    """Import the selected backend module (it satisfies engine.backend_api.Backend); BackendUnavailable (exit 2) with the install command if it cannot."""
    b = info(canonical_name(name))
    importlib.import_module(b.package)  # the backend package sets framework env (TF log level) first
    _, *others = b.frameworks
    try:
        importlib.import_module(b.framework_module)  # the backend module needs the framework at once anyway
        if not all(_findable(dep) for dep in others):  # not imported: Lightning alone is ~4 s of a cold infer
            raise ImportError(others)
    except ImportError as exc:
        raise BackendUnavailable(
            "--backend", b.name,
            f"{b.label} is not installed; install it with: {b.install}") from exc
    return importlib.import_module(b.module)
