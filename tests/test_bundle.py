"""The model bundle (docs/bundle.md): exact round trip; each tampered bundle refused with exit 2 by `pinnacle infer`."""
from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from console.cli import main
from engine.bundle import load_bundle, write_bundle, zip_bundle
from engine.config import ModelConfig, RunConfig, TrainingConfig
from engine.errors import InputError
from engine.scaling import Scales
from engine.weights import init_weights

DATA = Path(__file__).resolve().parent.parent / "fixtures" / "test.npz"
CFG = RunConfig(model=ModelConfig(N=32, n_filters_scale=1, gridsize=2), training=TrainingConfig(epochs=3, seed=5),
                backend="torch")


def _probe(N: int) -> np.ndarray:
    yy, xx = np.mgrid[:N, :N] - N // 2
    return (np.exp(-(xx**2 + yy**2) / 40.0) * np.exp(0.3j * xx)).astype(np.complex64)


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    history = [{"epoch": 0, "train_loss": 2.5, "val_loss": None}, {"epoch": 1, "train_loss": float("inf")}]
    return write_bundle(tmp_path / "bundle", weights=init_weights(CFG.model, 5), run_config=CFG,
                        scales=Scales(0.01, 3.0, 1e6, 2e6), probe=_probe(32), history=history,
                        dataset_fingerprint="f" * 64, backend="torch")


def _rewrite_weights(directory: Path, change) -> None:
    """Replace weights.safetensors by a valid file holding ``change(weights)`` and fix the manifest hash, so
    that only the tensor check can catch it."""
    import hashlib

    from safetensors.numpy import load, save

    weights = load((directory / "weights.safetensors").read_bytes())
    data = save(change(dict(weights)))
    (directory / "weights.safetensors").write_bytes(data)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["weights.safetensors"] = hashlib.sha256(data).hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_round_trip_is_exact(bundle_dir: Path, tmp_path: Path) -> None:
    weights = init_weights(CFG.model, 5)
    for source in (bundle_dir, zip_bundle(bundle_dir, tmp_path / "b.zip")):
        b = load_bundle(source)
        assert b.run_config == CFG
        assert sorted(b.weights) == sorted(weights)
        for name, w in weights.items():
            assert b.weights[name].dtype == np.float32 and np.array_equal(b.weights[name], w), name
        assert np.array_equal(b.probe, _probe(32)) and b.probe.dtype == np.complex64
        assert b.scales == Scales(0.01, 3.0, 1e6, 2e6)
        assert b.backend == "torch" and b.manifest["format_version"] == 1
        assert b.history[1]["train_loss"] is None  # inf is not JSON: stored as null
        assert b.manifest["dataset_fingerprint"] == "f" * 64
    assert sorted(p.name for p in bundle_dir.iterdir()) == ["manifest.json", "physics.safetensors",
                                                             "weights.safetensors"]


def test_zip_with_one_top_folder_loads(bundle_dir: Path, tmp_path: Path) -> None:
    z = tmp_path / "nested.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in bundle_dir.iterdir():
            zf.write(p, arcname=f"mybundle/{p.name}")
    assert load_bundle(z).run_config == CFG


def _flip_byte(d: Path) -> None:
    raw = bytearray((d / "weights.safetensors").read_bytes())
    raw[-3] ^= 0x01
    (d / "weights.safetensors").write_bytes(bytes(raw))


def _drop_tensor(d: Path) -> None:
    _rewrite_weights(d, lambda w: {k: v for k, v in w.items() if k != "encoder.1.conv0.weight"})


def _wrong_shape(d: Path) -> None:
    _rewrite_weights(d, lambda w: {**w, "amp_head.bias": np.zeros(7, np.float32)})


def _extra_tensor(d: Path) -> None:
    _rewrite_weights(d, lambda w: {**w, "sneaky.weight": np.zeros(3, np.float32)})


def _nan_tensor(d: Path) -> None:
    _rewrite_weights(d, lambda w: {**w, "amp_head.bias": np.full_like(w["amp_head.bias"], np.nan)})


class _Boom:
    """Unpickling this would create a file: proves the loader never unpickles."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def _pickle_inside(d: Path) -> None:
    (d / "model.pkl").write_bytes(pickle.dumps(_Boom(str(d.parent / "PWNED"))))


def _extra_file(d: Path) -> None:
    (d / "notes.txt").write_text("hello")


def _missing_file(d: Path) -> None:
    (d / "physics.safetensors").unlink()


def _bad_version(d: Path) -> None:
    m = json.loads((d / "manifest.json").read_text())
    m["format_version"] = 99
    (d / "manifest.json").write_text(json.dumps(m))


def _not_a_bundle(d: Path) -> None:
    m = json.loads((d / "manifest.json").read_text())
    m["format"] = "something-else"
    (d / "manifest.json").write_text(json.dumps(m))


def _bad_config(d: Path) -> None:
    m = json.loads((d / "manifest.json").read_text())
    m["config"]["model"]["gridsize"] = 7
    (d / "manifest.json").write_text(json.dumps(m))


TAMPERED = {
    "bad hash": (_flip_byte, "weights.safetensors", "sha256 mismatch"),
    "missing tensor": (_drop_tensor, "weights.safetensors", "missing tensor encoder.1.conv0.weight"),
    "wrong shape": (_wrong_shape, "weights.safetensors", "amp_head.bias has shape (7,)"),
    "unexpected tensor": (_extra_tensor, "weights.safetensors", "unexpected tensor sneaky.weight"),
    "NaN": (_nan_tensor, "weights.safetensors", "NaN"),
    "pickle inside": (_pickle_inside, "model.pkl", "a bundle holds only"),
    "extra file": (_extra_file, "notes.txt", "a bundle holds only"),
    "missing file": (_missing_file, "physics.safetensors", "present"),
    "unknown version": (_bad_version, "format_version", "unknown bundle version"),
    "not a bundle": (_not_a_bundle, "format", "not a Pinnacle bundle"),
    "bad config": (_bad_config, "config.gridsize", "1, 2 or 3"),
}


def _infer_cli(bundle: Path, runs: Path, capsys) -> tuple[int, str]:
    code = main(["infer", str(bundle), str(DATA), "--runs", str(runs)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_bundle_refused_by_infer(case: str, bundle_dir: Path, tmp_path: Path, capsys) -> None:
    tamper, key, why = TAMPERED[case]
    tamper(bundle_dir)
    code, err = _infer_cli(bundle_dir, tmp_path / "runs", capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pinnacle: error: {bundle_dir}: "), err
    assert key in lines[0] and why in lines[0], lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # refused before any run directory
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(InputError):  # and the library refuses it the same way, also zipped
        load_bundle(bundle_dir)


@pytest.mark.parametrize("case", ["pickle inside", "bad hash", "extra file"])
def test_tampered_zip_refused(case: str, bundle_dir: Path, tmp_path: Path, capsys) -> None:
    TAMPERED[case][0](bundle_dir)
    z = tmp_path / "t.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in bundle_dir.iterdir():
            zf.write(p, arcname=p.name)
    code, err = _infer_cli(z, tmp_path / "runs", capsys)
    assert code == 2 and err.startswith(f"pinnacle: error: {z}: ") and TAMPERED[case][2] in err, err
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("member", ["../manifest.json", "/etc/manifest.json", "a/../../weights.safetensors",
                                    "..\\manifest.json"])
def test_zip_path_traversal_refused(member: str, bundle_dir: Path, tmp_path: Path, capsys) -> None:
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in bundle_dir.iterdir():  # ZipInfo keeps the name verbatim (ZipFile.write would sanitise it)
            zf.writestr(zipfile.ZipInfo(p.name if p.name != "manifest.json" else member), p.read_bytes())
    code, err = _infer_cli(z, tmp_path / "runs", capsys)
    assert code == 2 and "path traversal refused" in err, err
    assert not (tmp_path / "manifest.json").exists()


def test_not_a_bundle_at_all(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for target, why in ((empty, "manifest.json is missing"), (DATA, "a bundle holds only"),
                        (tmp_path / "nope", "existing bundle")):
        code, err = _infer_cli(target, tmp_path / "runs", capsys)
        assert code == 2 and why in err, err


def test_write_refuses_inconsistent_weights(tmp_path: Path) -> None:
    w = init_weights(CFG.model, 0)
    w.pop("amp_head.bias")
    with pytest.raises(ValueError, match="missing tensor amp_head.bias"):
        write_bundle(tmp_path / "b", weights=w, run_config=CFG, scales=Scales(1, 1, 1, 1), probe=_probe(32),
                     history=[], dataset_fingerprint="x", backend="torch")
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_copy_of_bundle_loads_anywhere(bundle_dir: Path, tmp_path: Path) -> None:
    moved = shutil.copytree(bundle_dir, tmp_path / "elsewhere")
    assert load_bundle(moved).manifest_sha256 == load_bundle(bundle_dir).manifest_sha256
