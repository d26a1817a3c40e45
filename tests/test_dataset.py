"""The data contract: round trip, fingerprint, legacy orientation, conversions, summary numbers, `pinnacle validate`."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from engine.dataset import Dataset, fingerprint, from_arrays, load_dataset, save_dataset, summarize
from engine.errors import InputError
from tests.dataset_cases import good_arrays


@pytest.fixture()
def good(tmp_path):
    arrays = good_arrays()
    arrays["Y"] = (np.ones((9, 16, 16)) * (1 + 2j)).astype(np.complex64)
    arrays["scan_index"] = np.arange(9, dtype=np.int32)
    arrays["xcoords_start"] = arrays["xcoords"] + 0.5
    arrays["ycoords_start"] = arrays["ycoords"] - 0.5
    path = tmp_path / "good.npz"
    np.savez(path, **arrays)
    return path, arrays


def test_round_trip_is_bit_identical_and_deterministic(good, tmp_path):
    path, arrays = good
    ds = load_dataset(path)
    out1, out2 = tmp_path / "a.npz", tmp_path / "b.npz"
    save_dataset(out1, ds)
    save_dataset(out2, load_dataset(out1))
    back = load_dataset(out1)
    for key, value in ds.arrays().items():
        assert back.arrays()[key].dtype == value.dtype
        assert np.array_equal(back.arrays()[key], value), key
    assert np.array_equal(back.diffraction, arrays["diffraction"])
    assert back.scan_index.dtype == np.int64 and np.array_equal(back.scan_index, np.arange(9))
    assert out1.read_bytes() == out2.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz", "good.npz"]
    with np.load(out1, allow_pickle=False) as npz:  # plain NPZ, readable without Pinnacle
        assert sorted(npz.files) == sorted(ds.arrays())


def test_save_refuses_invalid_dataset_and_writes_nothing(good, tmp_path):
    ds = load_dataset(good[0])
    bad = Dataset(diffraction=-ds.diffraction - 1, xcoords=ds.xcoords, ycoords=ds.ycoords)
    with pytest.raises(InputError) as err:
        save_dataset(tmp_path / "bad.npz", bad)
    assert err.value.key == "diffraction"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.npz"]


def test_fingerprint_is_stable_and_sensitive_to_one_value(good, tmp_path):
    path, arrays = good
    ds = load_dataset(path)
    save_dataset(tmp_path / "copy.npz", ds)
    fp = fingerprint(ds)
    assert len(fp) == 64 and fp == fingerprint(load_dataset(tmp_path / "copy.npz"))
    d = arrays["diffraction"].copy()
    d[4, 7, 9] = np.nextafter(d[4, 7, 9], np.float32(np.inf))
    assert fingerprint(from_arrays({**arrays, "diffraction": d})) != fp
    x = arrays["xcoords"].copy()
    x[0] += 1e-9
    assert fingerprint(from_arrays({**arrays, "xcoords": x})) != fp
    no_y = {k: v for k, v in arrays.items() if k != "Y"}
    assert fingerprint(from_arrays(no_y)) != fp


def test_legacy_orientation_is_accepted_with_a_warning(good, tmp_path):
    path, arrays = good
    legacy = tmp_path / "legacy.npz"
    np.savez(legacy, **{**arrays, "diffraction": np.moveaxis(arrays["diffraction"], 0, -1)})
    with pytest.warns(UserWarning, match="legacy.npz.*legacy \\(N, N, M\\)"):
        ds = load_dataset(legacy)
    assert ds.diffraction.shape == (9, 16, 16) and ds.diffraction.flags.c_contiguous
    assert np.array_equal(ds.diffraction, arrays["diffraction"])
    assert fingerprint(ds) == fingerprint(load_dataset(path))


def test_modern_orientation_loads_without_warning(good):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(good[0])


def test_lossless_conversions_are_accepted(good):
    _, arrays = good
    ds = from_arrays({**arrays, "diff3d": arrays["diffraction"].astype(np.float64),
                      "diffraction": arrays["diffraction"].astype(np.float64),
                      "probeGuess": arrays["probeGuess"].real.astype(np.float64),
                      "xcoords": np.round(arrays["xcoords"]).astype(np.int16),
                      "scan_index": np.arange(9.0)})
    assert ds.diffraction.dtype == np.float32 and np.array_equal(ds.diffraction, arrays["diffraction"])
    assert ds.probe.dtype == np.complex64 and np.all(ds.probe.imag == 0)
    assert ds.xcoords.dtype == np.float64 and ds.scan_index.dtype == np.int64


def test_require_probe_makes_missing_probe_an_error(good):
    _, arrays = good
    no_probe = {k: v for k, v in arrays.items() if k != "probeGuess"}
    assert from_arrays(no_probe).probe is None
    with pytest.raises(InputError) as err:
        from_arrays(no_probe, "scan.npz", require_probe=True)
    assert err.value.key == "probeGuess"


def test_patch_touching_the_object_edge_is_inside(good):
    """pixel (N//2, N//2) on (x, y): the last valid integer position is size - N + N//2 (and N//2 at the start)."""
    _, arrays = good
    H, W = arrays["objectGuess"].shape
    x = arrays["xcoords"].copy()
    y = arrays["ycoords"].copy()
    x[0], y[0], x[1], y[1] = W - 16 + 8, H - 16 + 8, 8.0, 8.0
    from_arrays({**arrays, "xcoords": x, "ycoords": y})
    x[1] = 7.9
    with pytest.raises(InputError) as err:
        from_arrays({**arrays, "xcoords": x, "ycoords": y})
    assert err.value.key == "xcoords"


def test_summary_numbers():
    """Constant amplitude a gives nphotons = a²·N²; a 3×3 grid of step 4 has median NN distance 4."""
    N, a = 16, 5.0
    gx, gy = np.meshgrid(np.arange(3) * 4.0 + 10, np.arange(3) * 4.0 + 12)
    ds = from_arrays({"diffraction": np.full((9, N, N), a, np.float32), "xcoords": gx.ravel(),
                      "ycoords": gy.ravel(), "objectGuess": np.ones((40, 36), np.complex64)}, "grid.npz")
    s = summarize(ds)
    assert (s["M"], s["N"], s["object_shape"]) == (9, N, [40, 36])
    assert s["nphotons"] == pytest.approx(a * a * N * N)
    assert s["position_extent"] == {"x": [10.0, 18.0], "y": [12.0, 20.0]}
    assert s["scan_step"] == pytest.approx(4.0)
    assert s["has_truth"] and not s["has_probe"] and s["fingerprint"] == fingerprint(ds)
    assert ds.positions.shape == (9, 2) and np.array_equal(ds.positions[:, 0], gx.ravel())
    assert json.loads(json.dumps(s)) == s


def test_nphotons_of_simulated_scan_matches_its_dose():
    arrays = good_arrays()  # simulated at 1e6 mean counts per pattern (Poisson)
    assert from_arrays(arrays).nphotons == pytest.approx(1e6, rel=0.01)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "console", "validate", *map(str, args)],
                          capture_output=True, text=True)


def test_validate_json_on_good_file(good):
    path, _ = good
    proc = _cli(path, "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    s = json.loads(proc.stdout)
    ds = load_dataset(path)
    assert s["path"] == str(path) and (s["M"], s["N"]) == (9, 16)
    assert s["fingerprint"] == fingerprint(ds)
    assert s["nphotons"] == pytest.approx(ds.nphotons)
    assert s["has_probe"] and s["has_truth"] and s["object_shape"] == list(ds.object.shape)


def test_validate_table_and_legacy_warning(good, tmp_path):
    path, arrays = good
    proc = _cli(path)
    assert proc.returncode == 0 and proc.stderr == ""
    for label in ("patterns", "nphotons", "scan step", "fingerprint"):
        assert label in proc.stdout
    legacy = tmp_path / "legacy.npz"
    np.savez(legacy, **{**arrays, "diffraction": np.moveaxis(arrays["diffraction"], 0, -1)})
    proc = _cli(legacy, "--json")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 1 and lines[0].startswith("pinnacle: warning:")
    assert json.loads(proc.stdout)["fingerprint"] == fingerprint(load_dataset(path))


def test_validate_never_imports_a_framework(good):
    code = ("import sys; from console.commands.validate import validate_file; validate_file(sys.argv[1], True); "
            "bad = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code, str(good[0])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_compressed_npz_with_float64_amplitude_has_the_same_fingerprint(good, tmp_path):
    """Exact conversions and zip compression do not change the canonical arrays, hence the fingerprint."""
    path, arrays = good
    other = tmp_path / "compressed.npz"
    np.savez_compressed(other, **{**arrays, "diffraction": arrays["diffraction"].astype(np.float64)})
    assert fingerprint(load_dataset(other)) == fingerprint(load_dataset(path))
