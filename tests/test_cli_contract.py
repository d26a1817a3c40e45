"""The command line as a user meets it, in real subprocesses: bad input exits 2 with one line and leaves nothing
behind, a healthy run prints no framework log lines, and a job whose stdout is a file says what happened.

Why subprocesses: the `pinnacle` program diverts native libraries' stderr (engine/native_log.py) and chooses its
progress output by what stdout/stderr are — none of which an in-process call exercises.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "fixtures" / "train.npz"
TEST = ROOT / "fixtures" / "test.npz"
HAS_TF = importlib.util.find_spec("tensorflow") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None
#: What a native library's log line looks like: absl's "I0000 00:00:..." / "E0000 ...", its "WARNING: All log
#: messages before absl::InitializeLog()" banner, oneDNN notices.
FRAMEWORK_LINE = re.compile(r"^[IWEF]\d{4} |absl::|oneDNN|TF_ENABLE_ONEDNN_OPTS|cuda_|XLA", re.MULTILINE)


def pinnacle(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m console.cli ARGS`` — the program's own entry point, stdout and stderr captured (not a TTY)."""
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pinnacle: error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _zero_probe(tmp_path: Path) -> Path:
    with np.load(TEST) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["probeGuess"] = np.zeros_like(arrays["probeGuess"])
    out = tmp_path / "zero_probe.npz"
    np.savez(out, **arrays)
    return out


# ------------------------------------------------------------------------------------------ bad input, exit 2
def test_runs_pointing_at_a_file_exits_2_for_train_and_infer(tmp_path: Path) -> None:
    afile = tmp_path / "not-a-dir"
    afile.write_text("x")
    one_error_line(pinnacle("train", str(TRAIN), "--runs", str(afile)), "--runs", "a file is at this path")
    one_error_line(pinnacle("infer", str(tmp_path), str(TEST), "--runs", str(afile)), "--runs")
    one_error_line(pinnacle("runs", "--runs", str(tmp_path / "missing")), "--runs", "nothing is at this path")


@pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
def test_a_gpu_request_without_a_gpu_is_bad_input_not_a_crash(tmp_path: Path) -> None:
    proc = pinnacle("train", str(TRAIN), "--backend", "torch", "--accelerator", "gpu", "--runs", str(tmp_path / "r"))
    one_error_line(proc, "--accelerator", "gpu", "--accelerator cpu")
    assert not (tmp_path / "r").exists()
    one_error_line(pinnacle("train", str(TRAIN), "--backend", "torch", "--devices", "two", "--runs",
                            str(tmp_path / "r")), "--devices")


def test_usage_errors_and_unusable_places_are_one_line(tmp_path: Path) -> None:
    one_error_line(pinnacle("validate", str(TRAIN), "--no-such-option"), "No such option", "--help")
    one_error_line(pinnacle("evaluate", str(TEST)), "--truth")
    one_error_line(pinnacle("simulate", "/proc/pinnacle-cannot-write-here.npz", "--positions", "4", "--size", "80"),
                   "writable")
    one_error_line(pinnacle("console", "--runs", str(tmp_path / "r")), "terminal")  # no TTY under pytest
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["validate", "train", "infer", "parity"])
def test_a_probe_of_zeros_is_refused_the_same_way_by_every_command(command: str, tmp_path: Path) -> None:
    bad = _zero_probe(tmp_path)
    runs = tmp_path / "runs"
    args = {"validate": lambda: ["validate", str(bad)],
            "train": lambda: ["train", str(bad), "--runs", str(runs)],
            "infer": lambda: ["infer", str(_any_bundle(tmp_path)), str(bad), "--runs", str(runs)],
            "parity": lambda: ["parity", str(bad), "--levels", "0", "--runs", str(runs)]}[command]()
    one_error_line(pinnacle(*args), bad.name, "probeGuess", "every value is zero")
    assert not runs.exists()


def _any_bundle(tmp_path: Path) -> Path:
    """A valid (tiny, 'trained' for one nominal epoch) bundle, written without a framework."""
    from engine.bundle import write_bundle
    from engine.config import ModelConfig, RunConfig
    from engine.scaling import Scales
    from engine.weights import init_weights

    cfg = RunConfig(model=ModelConfig(n_filters_scale=1))
    out = tmp_path / "bundle"
    write_bundle(out, weights=init_weights(cfg.model, 0), run_config=cfg, scales=Scales(1, 1, 1, 1),
                 probe=np.ones((64, 64), np.complex64), history=[{"epoch": 0}], dataset_fingerprint="x",
                 backend="tensorflow")
    return out


# ------------------------------------------------------------------------------------- quiet, useful output
@pytest.mark.skipif(not HAS_TF, reason="needs TensorFlow")
def test_training_prints_no_framework_lines_and_a_log_file_says_what_happened(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = pinnacle("train", str(TRAIN), "--epochs", "1", "--runs", str(runs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not FRAMEWORK_LINE.search(proc.stderr), proc.stderr  # TensorFlow's absl/oneDNN lines are gone ...
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    log = run / "framework.log"
    if log.exists():  # ... into the run's own log (whatever this machine's TensorFlow chose to say)
        assert FRAMEWORK_LINE.search(log.read_text())
    out = proc.stdout
    final = json.loads((run / "run.json").read_text())["metrics"]["train_loss"]
    assert f"run {run.name} started: train (tensorflow) in {run.resolve()}" in out
    assert "stage training" in out and "epoch 1/1: train loss" in out
    assert f"metric train_loss = {final:.6g}" in out
    assert f"run {run.name} finished: ok (exit 0" in out


def test_events_on_stdout_are_not_mixed_with_progress_lines(tmp_path: Path) -> None:
    proc = pinnacle("selftest", "--steps", "2", "--delay", "0", "--events", "-", "--runs", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and all(json.loads(line)["v"] == 1 for line in lines)  # the stream alone, machine-clean


def test_selftest_to_a_file_prints_plain_progress(tmp_path: Path) -> None:
    proc = pinnacle("selftest", "--steps", "2", "--delay", "0", "--runs", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert "stage training" in proc.stdout and "epoch 2/2: train loss 0.5" in proc.stdout
    assert "finished: ok" in proc.stdout


def test_diverts_native_log_for_every_command_but_the_console():
    from console.cli import diverts_native_log

    assert diverts_native_log(["train", "fixtures/train.npz"])
    assert diverts_native_log(["--help"]) and diverts_native_log([])
    assert not diverts_native_log(["console", "--data", "fixtures/train.npz"])


def test_console_draws_in_a_real_terminal(tmp_path):
    """`pinnacle console` in a pseudo-terminal paints its first screen. Textual draws on fd 2, so the program must
    not divert it for the console (it did, and the terminal stayed blank; in-process tests could not see that)."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "console", "--data", str(TRAIN),
                             "--runs", str(tmp_path / "runs")], cwd=ROOT, stdin=slave, stdout=slave, stderr=slave,
                            env=env, start_new_session=True)
    os.close(slave)
    seen, deadline = b"", time.monotonic() + 90
    try:
        while b"ground truth" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    assert b"ground truth" in seen, seen[-2000:].decode("utf-8", "replace")


def test_the_console_reads_its_run_store_from_pinnacle_runs_like_every_command(monkeypatch, tmp_path):
    """`pinnacle console` and bare `pinnacle` take the run store from PINNACLE_RUNS when --runs is not given (the
    console ignored it and showed ./runs while the headless jobs wrote elsewhere); --runs still wins."""
    import types

    from typer.testing import CliRunner

    import console.app
    from console.cli import app
    from console.commands import console_cmd

    seen = []
    monkeypatch.setattr(console.app, "run_app", lambda data=None, runs=None: seen.append(runs))
    tty = types.SimpleNamespace(isatty=lambda: True)
    monkeypatch.setattr(console_cmd, "sys", types.SimpleNamespace(stdin=tty, stdout=tty))
    monkeypatch.setenv("PINNACLE_RUNS", str(tmp_path / "store"))
    console_cmd.open_console()  # bare `pinnacle`
    assert CliRunner().invoke(app, ["console"]).exit_code == 0
    assert CliRunner().invoke(app, ["console", "--runs", str(tmp_path / "given")]).exit_code == 0
    assert seen == [str(tmp_path / "store"), str(tmp_path / "store"), str(tmp_path / "given")]
    monkeypatch.delenv("PINNACLE_RUNS")
    console_cmd.open_console()
    assert seen[-1] == "runs"
