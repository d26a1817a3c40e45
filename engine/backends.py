"""Backend selection: name → the backend module of engine/backend_api.py, importing ONLY that framework.

The console and the CLI never import a framework; a job imports exactly the one it was asked for. A missing
framework is bad input (exit 2) with the CPU install command — never a silent fallback to the other backend.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from engine.config import BACKENDS, DEFAULT_BACKEND
from engine.errors import BackendUnavailable, InputError

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "ALIASES", "canonical_name", "load_backend", "INSTALL"]

ALIASES = {"tf": "tensorflow", "keras": "tensorflow", "pytorch": "torch"}

#: (framework modules that must import, backend module, framework name, CPU install command)
_FRAMEWORKS = {
    "tensorflow": (("tensorflow", "keras"), "engine.tf.backend", "TensorFlow",
                   "pip install tensorflow-cpu keras"),
    "torch": (("torch", "lightning"), "engine.torch.backend", "PyTorch",
              "pip install torch==2.13.0 lightning"),
}
INSTALL = {name: spec[3] for name, spec in _FRAMEWORKS.items()}


def canonical_name(name: str | None, source: str = "--backend") -> str:
    """'tf' → 'tensorflow', 'pytorch' → 'torch'; None → the default; anything else → InputError."""
    if name is None:
        return DEFAULT_BACKEND
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in BACKENDS:
        raise InputError(source, str(name), f"one of {', '.join(BACKENDS)} (aliases: {', '.join(ALIASES)})")
    return key


def load_backend(name: str | None) -> ModuleType:
    """Import the selected backend module; BackendUnavailable (exit 2) with the install command if it cannot."""
    key = canonical_name(name)
    needs, module, label, install = _FRAMEWORKS[key]
    importlib.import_module(module.rpartition(".")[0])  # the backend package sets framework env (TF log level) first
    for dep in needs:
        try:
            importlib.import_module(dep)
        except ImportError as exc:
            raise BackendUnavailable(
                "--backend", key,
                f"{label} is not installed; install it with: {install}") from exc
    return importlib.import_module(module)
