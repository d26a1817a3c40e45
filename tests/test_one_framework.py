"""One framework is enough: Pinnacle installed with only TensorFlow, or only PyTorch, works for that backend — train
(with a held-out reconstruction), parity level 0, the console — and asking for the other backend exits 2 with its
install command.

These run in real environments that lack the other framework: scripts/one_framework_env.sh makes
`.venv-only-tensorflow` and `.venv-only-torch` with `pip install -e .[tensorflow]` / `.[torch]` (CPU pins), once;
about a minute each on a fresh machine, then reused. Nothing is mocked: the other framework is not installed.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.backends import BACKENDS, INSTALL, LABELS

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "fixtures" / "train.npz"
TEST = ROOT / "fixtures" / "test.npz"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=BACKENDS)
def env(request) -> tuple[str, str, Path]:
    """(installed backend, missing backend, python of the environment that has only the first)."""
    only = request.param
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "one_framework_env.sh"), only], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    python = ROOT / proc.stdout.strip().splitlines()[-1] / "bin" / "python"
    missing = next(b for b in BACKENDS if b != only)
    return only, missing, python


def run(python: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "console.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_the_other_framework_is_really_absent(env) -> None:
    only, missing, python = env
    code = f"import importlib.util as u; print(u.find_spec({missing!r}) is None, u.find_spec({only!r}) is not None)"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["True", "True"], proc.stderr


def test_train_with_held_out_reconstruction_works(env, tmp_path: Path) -> None:
    only, _, python = env
    runs = tmp_path / "runs"
    proc = run(python, "train", str(TRAIN), "--backend", only, "--epochs", "1", "--test", str(TEST),
               "--runs", str(runs))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok" and record["backend"] == only
    assert (run_dir / "recon.npz").is_file() and (run_dir / "metrics.json").is_file()


def test_the_missing_backend_is_bad_input_with_its_install_command(env, tmp_path: Path) -> None:
    _, missing, python = env
    runs = tmp_path / "runs"
    proc = run(python, "train", str(TRAIN), "--backend", missing, "--runs", str(runs))
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line == (f"pinnacle: error: --backend: {missing}: {LABELS[missing]} is not installed; install it with: "
                    f"{INSTALL[missing]}")
    assert not runs.exists()


def test_parity_level_0_checks_the_installed_backend_and_levels_1_to_3_say_what_to_install(env, tmp_path) -> None:
    only, missing, python = env
    proc = run(python, "parity", str(TRAIN), "--levels", "0", "--runs", str(tmp_path / "runs"), "--no-progress")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    report = json.loads((run_dir / "parity.json").read_text())
    assert report["passed"] is True and {c["backend"] for c in report["checks"]} == {only}
    proc = run(python, "parity", str(TRAIN), "--runs", str(tmp_path / "runs2"))
    assert proc.returncode == 2 and INSTALL[missing] in proc.stderr and "--levels 0" in proc.stderr, proc.stderr
    assert not (tmp_path / "runs2").exists()


CONSOLE = textwrap.dedent("""
    import asyncio, sys
    from console.app import PinnacleApp

    async def main():
        app = PinnacleApp(runs=sys.argv[1])
        async with app.run_test(size=(100, 32)) as pilot:
            for key in ("l", "d", "h", "r"):
                await pilot.press(key)
                await pilot.pause(0.2)
        frameworks = [m for m in ("tensorflow", "torch", "keras", "lightning") if m in sys.modules]
        print("console ok", frameworks)

    asyncio.run(main())
""")


def test_the_console_runs(env, tmp_path: Path) -> None:
    _, _, python = env
    proc = subprocess.run([str(python), "-c", CONSOLE, str(tmp_path / "runs")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "console ok []", proc.stdout  # and it imported no framework
