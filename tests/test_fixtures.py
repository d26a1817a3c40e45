"""The bundled fixtures are what ``scripts/make_fixtures.py`` makes, bit for bit, and match their sidecars."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.dataset import load_dataset
from engine.fixtures import FIXTURES, check_fixture, fixture_path, fixtures_dir
from engine.simulate import sidecar_path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_fixtures.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_fixtures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fixtures")
    assert _script().main(["--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("name", list(FIXTURES))
def test_regenerating_gives_identical_bytes(regenerated, name):
    committed = fixture_path(name)
    assert hashlib.sha256((regenerated / name).read_bytes()).hexdigest() == \
        hashlib.sha256(committed.read_bytes()).hexdigest()
    assert (regenerated / name).read_bytes() == committed.read_bytes()
    assert sidecar_path(regenerated / name).read_bytes() == sidecar_path(committed).read_bytes()


@pytest.mark.parametrize("name", list(FIXTURES))
def test_sidecar_hashes_match_the_committed_files(name):
    path = fixture_path(name)
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert check_fixture(path, FIXTURES[name]) == []


def test_check_mode_passes_and_writes_nothing(capsys):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in fixtures_dir().iterdir())
    assert _script().main(["--check"]) == 0
    assert "ok" in capsys.readouterr().out
    assert sorted((p.name, p.stat().st_mtime_ns) for p in fixtures_dir().iterdir()) == before


def test_check_detects_a_changed_file(tmp_path):
    for name in ("train.npz", "train.npz.json"):
        shutil.copy(fixtures_dir() / name, tmp_path / name)
    data = bytearray((tmp_path / "train.npz").read_bytes())
    data[4096] ^= 0x01  # inside the first array's (diffraction) payload
    (tmp_path / "train.npz").write_bytes(bytes(data))
    problems = check_fixture(tmp_path / "train.npz", FIXTURES["train.npz"])
    assert any("sha256 differs" in p and "array" not in p for p in problems)
    assert any("array" in p for p in problems)


def test_fixtures_are_valid_held_out_scans_of_the_stated_kind():
    train, test = (load_dataset(fixture_path(n), require_probe=True) for n in ("train.npz", "test.npz"))
    for ds, name in ((train, "train.npz"), (test, "test.npz")):
        cfg = FIXTURES[name]
        assert ds.N == 64 and 190 <= ds.M <= 300 and ds.Y is not None and ds.object is not None
        assert ds.nphotons == pytest.approx(1e9, rel=1e-4)
        assert fixture_path(name).stat().st_size < 10 * 2**20
        assert cfg.object_kind == "lines" and cfg.scan_kind == "raster" and cfg.jitter > 0
    assert FIXTURES["train.npz"].seed == 1 and FIXTURES["test.npz"].seed == 2
    # held out: a different object, not a copy or a shift of the training one
    a, b = np.abs(train.object).ravel(), np.abs(test.object).ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.3
