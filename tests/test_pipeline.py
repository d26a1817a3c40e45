"""The backend-neutral train/infer jobs.

Fast tests drive ``engine.pipeline`` with a fake backend module (no framework) to pin the job logic: input refused
before the run directory exists, events and run.json, the bundle, cancellation, outputs. The ``slow`` tests train
each installed backend on the bundled fixture in a subprocess, cross-load the bundle, and check quality.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from console.cli import main
from engine.backend_api import TrainResult
from engine.config import ModelConfig, RunConfig, TrainingConfig

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "fixtures" / "train.npz"
TEST = ROOT / "fixtures" / "test.npz"


def _fake_backend(calls: dict, cancel_at: int | None = None) -> SimpleNamespace:
    """Trains nothing: walks the shared batching, calls the hooks, returns the weights with a marker added."""
    from engine import grouping

    def train(cfg, data, consts, weights, hooks, checkpoint_dir, resume=None, **kw):
        calls["train"] = {"kw": kw, "n_train": len(data.train), "n_val": len(data.val), "resume": resume,
                          "input_scale": consts.input_scale}
        nb = len(grouping.batches(np.arange(len(data.train)), cfg.training.batch_size))
        hooks.on_train_start(cfg.training.epochs, nb)
        history, step = [], 0
        w = {k: v.copy() for k, v in weights.items()}
        for e in range(cfg.training.epochs):
            for b, sel in enumerate(grouping.batches(grouping.epoch_order(len(data.train), 0, e),
                                                     cfg.training.batch_size)):
                step += 1
                if step == cancel_at:
                    os.kill(os.getpid(), signal.SIGINT)
                hooks.on_batch_end(e, b, nb, 10.0 / step, len(sel))
                if hooks.should_stop():
                    return TrainResult(weights=w, history=history, status="cancelled")
            w["amp_head.bias"] = w["amp_head.bias"] + 1
            history.append({"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 2.0 / (e + 1), "lr": 1e-3})
            hooks.on_epoch_end(e, 1.0 / (e + 1), 2.0 / (e + 1), 1e-3, 0.1, 100.0, lambda: w)
        return TrainResult(weights=w, history=history, status="ok")

    def predict(cfg, weights, consts, x, offsets, batch_size, progress=None):
        calls["predict"] = {"shape": x.shape, "batch_size": batch_size}
        return np.ones((len(x), cfg.channels, cfg.N, cfg.N), np.complex64) * np.exp(0.5j)

    return SimpleNamespace(train=train, predict=predict, check_devices=lambda accelerator, devices, num_nodes=1: None,
                           replica_processes=lambda accelerator, devices: 1, __name__="fake")


@pytest.fixture
def fake(monkeypatch):
    calls: dict = {}
    state = {"cancel_at": None}
    monkeypatch.setattr("engine.backends.load_backend",
                        lambda name: _fake_backend(calls, state["cancel_at"]))
    return SimpleNamespace(calls=calls, state=state)


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _one_run(runs: Path) -> Path:
    dirs = [p for p in runs.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_train_then_infer_with_fake_backend(fake, tmp_path: Path) -> None:
    runs, ev = tmp_path / "runs", tmp_path / "ev.jsonl"
    code = main(["train", str(TRAIN), "--backend", "torch", "--epochs", "3", "--n-groups", "40", "--runs", str(runs),
                 "--events", str(ev), "--no-progress", "--devices", "2"])
    assert code == 0
    run = _one_run(runs)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "ok" and record["backend"] == "torch" and record["key_metric"] == "val_loss"
    assert record["metrics"]["val_loss"] == pytest.approx(2.0 / 3)
    assert fake.calls["train"]["kw"] == {"accelerator": "cpu", "devices": 2, "replicas": None}
    assert fake.calls["train"]["n_train"] + fake.calls["train"]["n_val"] == 40
    events = _events(ev)
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2, 3]
    assert [e["stage"] for e in events if e["type"] == "stage"] == ["loading", "grouping", "training", "saving"]
    prog = [e for e in events if e["type"] == "progress"]
    assert prog and prog[-1]["done"] == prog[-1]["total"]
    assert any(e["type"] == "artifact" and e["kind"] == "bundle" for e in events)

    from engine.bundle import load_bundle
    from engine.weights import init_weights

    b = load_bundle(run / "bundle")
    assert b.run_config.model == ModelConfig(N=64, n_filters_scale=1, gridsize=1)
    assert np.array_equal(b.weights["amp_head.bias"], init_weights(b.run_config.model, 0)["amp_head.bias"] + 3)
    assert [h["epoch"] for h in b.history] == [0, 1, 2]
    from engine.dataset import fingerprint, load_dataset

    assert b.manifest["dataset_fingerprint"] == fingerprint(load_dataset(TRAIN))

    # infer with the new bundle: outputs in a second run
    runs2 = tmp_path / "runs2"
    assert main(["infer", str(run / "bundle"), str(TEST), "--runs", str(runs2), "--batch-size", "7",
                 "--no-progress"]) == 0
    out = _one_run(runs2)
    for name in ("recon.npz", "metrics.json", "amplitude.png", "phase.png", "product.h5", "run.json"):
        assert (out / name).is_file(), name
    test = load_dataset(TEST)
    assert fake.calls["predict"] == {"shape": (test.M, 1, 64, 64), "batch_size": 7}
    from engine.recon import load_recon

    rec = load_recon(out / "recon.npz")
    assert rec.object.shape == test.object.shape and rec.origin == (0, 0)
    covered = np.abs(rec.object) > 0
    assert covered.mean() > 0.3
    err = np.abs(rec.object[covered] - np.exp(0.5j))  # stitching is a weighted average of identical patches
    assert err.max() < 1e-3  # real-preserving shift: numerator and weight agree everywhere covered
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["phase"]["ssim"] <= 1
    record = json.loads((out / "run.json").read_text())
    assert record["key_metric"] == "phase_ssim" and record["metrics"]["phase_ssim"] == metrics["phase"]["ssim"]

    import h5py

    with h5py.File(out / "product.h5") as f:
        assert f["object"].dtype == np.complex64 and f["object"].shape == test.object.shape
        assert f["probe"].dtype == np.complex64 and f["probe"].shape == (64, 64)
        px = f["object"].attrs["pixel_width_m"]
        assert px == 1e-8 and "default" in f["pinnacle"].attrs["pixel_size_source"]
        np.testing.assert_allclose(f["probe_position_x_m"][()], test.xcoords * px)
        np.testing.assert_allclose(f["probe_position_y_m"][()], test.ycoords * px)
        assert f["pinnacle"].attrs["bundle_manifest_sha256"] == b.manifest_sha256
        assert f["pinnacle"].attrs["run_id"] == out.name


def test_train_with_test_set_writes_recon_into_the_train_run(fake, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert main(["train", str(TRAIN), "--epochs", "1", "--n-groups", "20", "--gridsize", "2", "--runs", str(runs),
                 "--test", str(TEST), "--no-progress"]) == 0
    run = _one_run(runs)
    assert (run / "recon.npz").is_file() and (run / "metrics.json").is_file() and (run / "bundle").is_dir()
    assert fake.calls["train"]["kw"] == {"accelerator": "cpu", "devices": 1, "replicas": None}  # every backend takes device options
    assert fake.calls["predict"]["shape"][1:] == (4, 64, 64)  # gridsize 2: C = 4


def test_cancel_saves_bundle_and_exits_130(fake, tmp_path: Path) -> None:
    fake.state["cancel_at"] = 15  # SIGINT during epoch 2 (176 training groups at batch 16: 11 batches per epoch)
    runs, ev = tmp_path / "runs", tmp_path / "ev.jsonl"
    code = main(["train", str(TRAIN), "--epochs", "5", "--batch-size", "16", "--runs", str(runs), "--events", str(ev),
                 "--no-progress"])
    assert code == 130
    run = _one_run(runs)
    assert json.loads((run / "run.json").read_text())["status"] == "cancelled"
    from engine.bundle import load_bundle

    assert [h["epoch"] for h in load_bundle(run / "bundle").history] == [0]
    events = _events(ev)
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "cancelled"
    assert sum(e["type"] == "epoch" for e in events) == 1


def test_cancel_in_the_first_epoch_writes_no_bundle_and_an_untrained_bundle_is_refused(fake, tmp_path: Path,
                                                                                        capsys) -> None:
    fake.state["cancel_at"] = 3  # SIGINT during epoch 1: nothing was trained
    runs = tmp_path / "runs"
    assert main(["train", str(TRAIN), "--epochs", "5", "--runs", str(runs), "--no-progress"]) == 130
    run = _one_run(runs)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "cancelled" and record["error"]["kind"] == "Cancelled" and record["stage"] is None
    assert not (run / "bundle").exists() and not (run / "run.lock").exists()  # no usable-looking model left
    assert main(["infer", str(run / "bundle"), str(TEST), "--runs", str(runs)]) == 2

    from engine.bundle import write_bundle
    from engine.scaling import Scales
    from engine.weights import init_weights

    cfg = RunConfig(model=ModelConfig(n_filters_scale=1))
    write_bundle(tmp_path / "untrained", weights=init_weights(cfg.model, 0), run_config=cfg, scales=Scales(1, 1, 1, 1),
                 probe=np.ones((64, 64), np.complex64), history=[], dataset_fingerprint="x", backend="tensorflow")
    capsys.readouterr()
    assert main(["infer", str(tmp_path / "untrained"), str(TEST), "--runs", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "history" in err and "trained bundle" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r2").exists()


def test_finished_runs_are_tidy_and_a_failure_keeps_its_cause(fake, tmp_path: Path, capsys, monkeypatch) -> None:
    runs = tmp_path / "runs"
    assert main(["train", str(TRAIN), "--epochs", "1", "--runs", str(runs), "--no-progress"]) == 0
    run = _one_run(runs)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "ok" and record["stage"] is None and record["error"] is None
    assert not (run / "run.lock").exists() and not (run / "checkpoints").exists()  # the fake writes none
    assert (run / "bundle" / "manifest.json").is_file()

    def boom(*a, **k):
        raise RuntimeError("the detector exploded")

    broken = _fake_backend({})
    broken.train = boom
    monkeypatch.setattr("engine.backends.load_backend", lambda name: broken)
    runs2 = tmp_path / "runs2"
    assert main(["train", str(TRAIN), "--epochs", "1", "--runs", str(runs2), "--no-progress"]) == 1
    failed = json.loads((_one_run(runs2) / "run.json").read_text())
    assert failed["status"] == "failed" and failed["error"] == {"kind": "RuntimeError",
                                                                "message": "the detector exploded"}
    capsys.readouterr()
    assert main(["runs", "show", failed["run_id"][-12:], "--runs", str(runs2)]) == 0  # any unique part of the id
    assert "RuntimeError: the detector exploded" in capsys.readouterr().out


def _without(tmp_path: Path, drop: str) -> Path:
    with np.load(TRAIN) as z:
        arrays = {k: z[k] for k in z.files if k != drop}
    out = tmp_path / f"no_{drop}.npz"
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("argv, message", [
    (lambda t: ["train", str(_without(t, "probeGuess"))], "probeGuess"),
    (lambda t: ["train", str(TRAIN), "--gridsize", "5"], "--gridsize"),
    (lambda t: ["train", str(TRAIN), "--loss", "l2"], "--loss"),
    (lambda t: ["train", str(TRAIN), "--resume", "no-such-run"], "no-such-run"),
    (lambda t: ["train", str(TRAIN), "--resume", str(t)], "TensorFlow checkpoint"),
    (lambda t: ["train", str(TRAIN), "--events-fd", "97"], "--events-fd"),
    (lambda t: ["train", str(TRAIN), "--test", str(t / "missing.npz")], "missing.npz"),
    (lambda t: ["train", str(TRAIN), "--test-refine", "5"], "--test-refine"),  # nothing to refine without --test
    (lambda t: ["train", str(TRAIN), "--test", str(TEST), "--test-refine", "-3"], "--test-refine"),
    (lambda t: ["train", str(TRAIN), "--backend", "torch", "--resume", str(t)], ".ckpt"),
])
def test_bad_train_input_exits_2_before_the_run(fake, argv, message, tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    code = main(argv(tmp_path) + ["--runs", str(runs), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("pinnacle: error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert "train" not in fake.calls and not runs.exists()


def test_infer_refuses_data_of_another_size(fake, tmp_path: Path, capsys) -> None:
    from engine.bundle import write_bundle
    from engine.scaling import Scales
    from engine.weights import init_weights

    cfg = RunConfig(model=ModelConfig(N=32, n_filters_scale=1), training=TrainingConfig())
    write_bundle(tmp_path / "b", weights=init_weights(cfg.model, 0), run_config=cfg, scales=Scales(1, 1, 1, 1),
                 probe=np.ones((32, 32), np.complex64), history=[{"epoch": 0}], dataset_fingerprint="x",
                 backend="tensorflow")
    code = main(["infer", str(tmp_path / "b"), str(TEST), "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "N = 32" in err and not (tmp_path / "runs").exists(), err


def test_stitch_grid_without_truth_covers_every_patch() -> None:
    from engine.pipeline import stitch_grid

    ds = SimpleNamespace(object=None, positions=np.array([[40.5, 50.0], [90.2, 61.7]]), N=64)
    (H, W), (x0, y0) = stitch_grid(ds)
    assert (x0, y0) == (40 - 32, 50 - 32)
    assert x0 + W >= 90.2 + 32 and y0 + H >= 61.7 + 32


# ------------------------------------------------------------------------------------------ slow, real
INSTALLED = [b for b, mod in (("tensorflow", "tensorflow"), ("torch", "lightning")) if importlib.util.find_spec(mod)]


#: The slow tests train with the CLI's defaults (20 epochs, batch 4, leaky-ReLU network, orientation augmentation:
#: what a user gets). Floors from the spread that float32 round-off alone gives: six such trainings of the fixture
#: (TensorFlow and PyTorch, each from the seeded weights and from two 1e-7-nudged copies; docs/performance.md
#: "Orientation augmentation") gave phase SSIM 0.874–0.881 (σ 0.0024), complex NRMSE 0.189–0.193 (σ 0.0012),
#: amplitude SSIM 0.521–0.573 (σ 0.021). Each floor is the worst value moved by 3·√2·σ̂ (σ̂: the 95 % upper bound of
#: σ from six runs, 2.09·σ) — phase 0.874 − 0.021, NRMSE 0.193 + 0.010 (0.203, rounded up to 0.205), amplitude
#: 0.521 − 0.18 — so another machine's kernels pass and a network that learns less fails: without the augmentation
#: the same training gives phase 0.846 and NRMSE 0.209, under both floors (the amplitude floor is loose: the
#: augmented network's amplitude still moves with round-off at 20 epochs). The complex FRC50 is not gated: six runs
#: crossed at 16.3–17.3 px, but its second ring (0.68–0.81) is within 3·√2·σ̂ of 0.5, where the crossing jumps to
#: ~1.6 px (it did without the augmentation).
PHASE_SSIM_FLOOR = 0.85
PHASE_SSIM_MARGIN = 0.08  # over the untrained network, same seed and initial weights
COMPLEX_NRMSE_MAX = 0.205
AMPLITUDE_SSIM_FLOOR = 0.34


def _cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _phase_ssim(run: Path) -> float:
    return _metrics(run)["phase"]["ssim"]


#: train --test-refine on the fixture: refinement epochs, and its complex NRMSE bound — the iterative fixture gate
#: (tests/test_refine.py: ≤ 0.02 after 10 epochs from a flat start; 0.0100 measured), which a start from the trained
#: network must meet too (measured 0.006–0.010 from 2- to 20-epoch networks).
HYBRID_EPOCHS, HYBRID_NRMSE_MAX = 10, 0.02


@pytest.mark.slow
@pytest.mark.parametrize("backend", INSTALLED)
def test_train_save_load_infer_beats_untrained(backend: str, tmp_path: Path) -> None:
    """Train with the defaults on the fixture, infer the held-out scan (in this backend, then in the other from the
    same bundle); quality floors from measurement, clearly better than the untrained network (same seed, same
    initial weights), and both backends agree on the bundle."""
    from console.commands.train import DEFAULT_EPOCHS

    runs = tmp_path / "runs"
    proc = _cli("train", str(TRAIN), "--backend", backend, "--runs", str(runs), "--test", str(TEST), "--no-progress",
                "--test-refine", str(HYBRID_EPOCHS))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = _one_run(runs)
    metrics = _metrics(run)
    trained = metrics["phase"]["ssim"]
    assert trained >= PHASE_SSIM_FLOOR, metrics["phase"]
    assert metrics["complex"]["nrmse"] <= COMPLEX_NRMSE_MAX, metrics["complex"]
    assert metrics["amplitude"]["ssim"] >= AMPLITUDE_SSIM_FLOOR, metrics["amplitude"]
    # --test-refine: the same held-out scan refined from the network's object (hybrid), reported beside it
    hybrid = json.loads((run / "metrics_hybrid.json").read_text())
    assert hybrid["complex"]["nrmse"] <= HYBRID_NRMSE_MAX, hybrid["complex"]
    assert hybrid["complex"]["nrmse"] < metrics["complex"]["nrmse"] / 5
    with np.load(run / "recon_hybrid.npz") as z:
        assert str(z["method"]) == "hybrid"
    logs = [e["message"] for e in _events(run / "events.jsonl") if e["type"] == "log"]
    assert any(m.startswith("held-out scan — PINN: ") and f"| hybrid ({HYBRID_EPOCHS} refinement epochs" in m
               for m in logs), logs[-3:]

    from engine.bundle import load_bundle, write_bundle
    from engine.weights import init_weights

    b = load_bundle(run / "bundle")
    assert b.backend == backend and len(b.history) == DEFAULT_EPOCHS
    write_bundle(tmp_path / "untrained", weights=init_weights(b.run_config.model, b.run_config.training.seed),
                 run_config=b.run_config, scales=b.scales, probe=b.probe, history=[{"epoch": 0, "untrained": True}],
                 dataset_fingerprint=b.manifest["dataset_fingerprint"], backend=backend)
    ssim = {}
    for name, bundle in (("untrained", tmp_path / "untrained"), ("cross", run / "bundle")):
        other = "torch" if backend == "tensorflow" else "tensorflow"
        use = other if name == "cross" and other in INSTALLED else backend
        proc = _cli("infer", str(bundle), str(TEST), "--backend", use, "--runs", str(tmp_path / name),
                    "--no-progress")
        assert proc.returncode == 0, proc.stderr[-3000:]
        ssim[name] = _phase_ssim(_one_run(tmp_path / name))
    assert trained > ssim["untrained"] + PHASE_SSIM_MARGIN, (trained, ssim)
    assert ssim["cross"] == pytest.approx(trained, abs=0.02)  # the other backend reads the same bundle


def _fake_run(tmp_path: Path, backend: str, cfg: RunConfig, files: tuple[str, ...]) -> Path:
    from engine.config import to_dict

    run = tmp_path / "runs" / "20260101-000000-0000-train"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"backend": backend, "config": to_dict(cfg)}))
    for name in files:
        (run / "checkpoints" / name).write_text("x")
    return run


def test_resume_resolves_run_dir_id_and_checkpoint(tmp_path: Path) -> None:
    from engine.errors import InputError
    from engine.pipeline import resolve_resume

    cfg = RunConfig(model=ModelConfig(n_filters_scale=1))
    run = _fake_run(tmp_path, "torch", cfg, ("epoch=0-step=3.ckpt", "last.ckpt"))
    runs = tmp_path / "runs"
    assert resolve_resume(str(run), runs, "torch", cfg) == run / "checkpoints" / "last.ckpt"
    assert resolve_resume("20260101", runs, "torch", cfg) == run / "checkpoints" / "last.ckpt"  # id prefix
    ckpt = run / "checkpoints" / "epoch=0-step=3.ckpt"
    assert resolve_resume(str(ckpt), runs, "torch", cfg) == ckpt
    with pytest.raises(InputError, match="resume with --backend torch"):
        resolve_resume(str(run), runs, "tensorflow", cfg)
    with pytest.raises(InputError, match="same model"):
        resolve_resume(str(run), runs, "torch", RunConfig(model=ModelConfig(n_filters_scale=2)))
    tf_run = _fake_run(tmp_path / "tf", "tensorflow", cfg, ("checkpoint", "epoch-2.index"))
    assert resolve_resume(str(tf_run), runs, "tensorflow", cfg) == tf_run / "checkpoints"
    assert resolve_resume(str(tf_run / "checkpoints" / "epoch-2.index"), runs, "tensorflow", cfg) == \
        tf_run / "checkpoints"


def test_training_with_a_held_out_scan_scores_it_every_k_epochs(fake, tmp_path: Path) -> None:
    runs, ev = tmp_path / "runs", tmp_path / "ev.jsonl"
    assert main(["train", str(TRAIN), "--epochs", "4", "--eval-every", "2", "--test", str(TEST), "--runs", str(runs),
                 "--events", str(ev), "--no-progress"]) == 0
    run = _one_run(runs)
    events = _events(ev)
    held = [e for e in events if e["type"] == "metric" and e["name"] == "heldout_phase_ssim"]
    assert [e["epoch"] for e in held] == [2, 4]
    previews = [e["path"] for e in events if e["type"] == "artifact" and e["kind"] == "preview"]
    assert previews == ["previews/epoch_0002.npz", "previews/epoch_0004.npz"]
    with np.load(run / previews[-1]) as z:
        assert z["amplitude"].shape == z["phase"].shape and max(z["amplitude"].shape) <= 128 and int(z["epoch"]) == 4
    curve = json.loads((run / "metrics.json").read_text())["curve"]
    assert [p["epoch"] for p in curve] == [2, 4] and all(0 <= p["phase_ssim"] <= 1 for p in curve)
    assert json.loads((run / "run.json").read_text())["config"]["test"] == str(TEST)
