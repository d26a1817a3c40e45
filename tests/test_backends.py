"""Backend selection: aliases, and a missing framework → exit 2 with its install command, never the other one."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.backends import ALIASES, BACKENDS, DEFAULT_BACKEND, INSTALL, canonical_name
from engine.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "fixtures" / "train.npz"

HIDE_AND_RUN = textwrap.dedent("""
    import json, sys
    for name in {hidden!r}:
        sys.modules[name] = None  # `import name` now raises ImportError, as if not installed
    from console.cli import main
    code = main({argv!r})
    print(json.dumps({{"code": code, "loaded": sorted(m for m in ("tensorflow", "torch", "keras", "lightning")
                                                     if sys.modules.get(m) is not None)}}))
""")


def _run_hidden(hidden: tuple[str, ...], argv: list[str]) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", HIDE_AND_RUN.format(hidden=hidden, argv=argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_names_and_aliases() -> None:
    assert BACKENDS == ("tensorflow", "torch") and DEFAULT_BACKEND == "tensorflow"
    assert canonical_name(None) == "tensorflow"
    assert [canonical_name(a) for a in ("tf", "TF", "pytorch", "torch", "tensorflow")] == \
        ["tensorflow", "tensorflow", "torch", "torch", "tensorflow"]
    assert set(ALIASES.values()) <= set(BACKENDS)
    with pytest.raises(InputError, match="one of tensorflow, torch"):
        canonical_name("jax")


@pytest.mark.parametrize("hidden, name, label, other", [
    (("torch",), "torch", "PyTorch", "tensorflow"),
    (("lightning",), "pytorch", "PyTorch", "tensorflow"),
    (("tensorflow",), "tensorflow", "TensorFlow", "torch"),
    (("keras",), "tf", "TensorFlow", "torch"),
])
def test_missing_framework_exits_2_with_install_hint(hidden, name, label, other, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result, err = _run_hidden(hidden, ["train", str(TRAIN), "--backend", name, "--runs", str(runs)])
    key = "torch" if label == "PyTorch" else "tensorflow"
    assert result["code"] == 2, err
    line = err.strip().splitlines()[-1]
    assert line == f"pinnacle: error: --backend: {key}: {label} is not installed; install it with: {INSTALL[key]}"
    assert other not in result["loaded"] and hidden[0] not in result["loaded"]  # no fallback, no other import
    assert not runs.exists()


def test_install_commands_are_the_cpu_ones() -> None:
    assert INSTALL == {"torch": "pip install torch==2.13.0 lightning", "tensorflow": "pip install tensorflow-cpu keras"}


def test_unknown_backend_is_usage_error(tmp_path: Path, capsys) -> None:
    from console.cli import main

    assert main(["train", str(TRAIN), "--backend", "jax", "--runs", str(tmp_path / "runs")]) == 2
    assert "--backend: jax: one of tensorflow, torch" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_loading_one_backend_imports_only_its_framework() -> None:
    code = ("import sys; from engine.backends import load_backend; m = load_backend('torch'); "
            "print(m.__name__, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["engine.torch.backend", "False", "False"], proc.stderr


def test_loading_tensorflow_leaves_pyplot_out_and_importable() -> None:
    """engine/tf/framework.py: Keras's module-level pyplot import (0.4–0.5 s of a cold start) is skipped, and the
    block is lifted at once — pyplot still imports afterwards in the same process."""
    code = ("import sys; from engine.backends import load_backend; m = load_backend('tensorflow'); "
            "print(m.__name__, 'matplotlib.pyplot' in sys.modules); "
            "import matplotlib.pyplot as plt; print(callable(plt.figure))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.stdout.split() == ["engine.tf.backend", "False", "True"], proc.stderr[-2000:]
