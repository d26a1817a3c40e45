"""Beamline formats (docs/data.md): CXI and Ptychodus HDF5 readers and writers, geometry, detector mask and crop,
lossless conversion, and every bad-file case through the CLI (exit 2, one line naming the HDF5 path)."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from console.cli import main
from engine import physics
from engine.dataset import fingerprint, load_dataset, save_dataset
from engine.errors import InputError
from engine.formats import cxi, save_scan
from engine.formats.assemble import resample_probe
from engine.formats.geometry import (GRID_MARGIN_PX, ELECTRON_VOLT_J, ScanOptions, object_pixel_m, to_metres,
                                     wavelength_m)
from tests.dataset_cases import DETECTOR_PIXEL_M, DISTANCE_M, ENERGY_EV, simulated_scan

#: What NPZ holds and CXI / Ptychodus HDF5 do not.
NPZ_ONLY = ("Y", "scan_index")


@pytest.fixture(scope="module")
def scan():
    return simulated_scan()


def _same_arrays(a, b, skip=()):
    A, B = a.arrays(), b.arrays()
    assert set(A) - set(skip) == set(B) - set(skip)
    for key in set(A) - set(skip):
        assert A[key].dtype == B[key].dtype, key
        assert np.array_equal(A[key], B[key]), key


def _edit(path: Path, fn) -> Path:
    with h5py.File(path, "a") as f:
        fn(f)
    return path


def _cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ----------------------------------------------------------------------------------------------- geometry
def test_object_pixel_formula_worked_examples():
    """docs/data.md: λ = hc/E; Δ = λz/(Np)."""
    assert wavelength_m(8047.78) == pytest.approx(1.5406e-10, rel=1e-4)  # Cu Kα1, a textbook value
    assert wavelength_m(ENERGY_EV) == pytest.approx(1e-10, rel=1e-12)
    assert object_pixel_m(ENERGY_EV, 0.48, 75e-6, 64) == pytest.approx(10e-9, rel=1e-12)  # the worked example
    assert object_pixel_m(ENERGY_EV, 0.48, 75e-6, 32) == pytest.approx(20e-9, rel=1e-12)  # half the pixels: 2Δ
    # 8 keV, 2 m, a 172 µm Pilatus pixel, N = 128: 1.5498 Å · 2 m / (128 · 172 µm) = 14.08 nm
    assert object_pixel_m(8000.0, 2.0, 172e-6, 128) == pytest.approx(1.54980e-10 * 2 / (128 * 172e-6), rel=1e-5)


def test_scan_carries_its_geometry(scan):
    g = scan.geometry
    assert g.source == "computed" and g.object_pixel_m == pytest.approx(20e-9, rel=1e-12)
    assert scan.pixel_size_m == g.object_pixel_m and "20 nm" in g.describe()


def test_npz_without_geometry_states_unknown(tmp_path):
    ds = simulated_scan(geometry=False)
    assert not ds.geometry.known and ds.pixel_size_m is None and ds.geometry.source == "unknown"
    assert "unknown" in ds.geometry.describe()
    assert not any(k in ds.arrays() for k in ("photon_energy_eV", "object_origin_m"))  # NPZ bytes as before
    opts = ScanOptions(energy_ev=ENERGY_EV, distance_m=DISTANCE_M, detector_pixel_m=DETECTOR_PIXEL_M)
    save_dataset(tmp_path / "a.npz", ds)
    given = load_dataset(tmp_path / "a.npz", options=opts)
    assert given.geometry.object_pixel_m == pytest.approx(20e-9, rel=1e-12)
    assert set(given.geometry.overridden) == {"energy", "distance", "detector pixel"}


def test_npz_geometry_keys_must_agree(tmp_path, scan):
    arrays = {**scan.arrays(), "object_pixel_size_m": np.array(21e-9)}
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError) as err:
        load_dataset(tmp_path / "bad.npz")
    assert err.value.key == "object_pixel_size_m" and "2e-08" in err.value.expected


# --------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("out", ["scan.cxi", "pty", "pty/diffraction.h5"])
def test_round_trip_is_lossless_for_what_both_hold(tmp_path, scan, out):
    written = save_scan(tmp_path / out, scan)
    back = load_dataset(tmp_path / out)
    assert back.format == ("cxi" if out.endswith(".cxi") else "ptychodus")
    _same_arrays(scan, back, skip=NPZ_ONLY)
    assert back.geometry.energy_ev == scan.geometry.energy_ev  # eV back bit for bit although CXI stores joules
    save_dataset(tmp_path / "again.npz", back)
    assert fingerprint(load_dataset(tmp_path / "again.npz")) == fingerprint(back)
    assert all(p.is_file() for p in written)


def test_cxi_written_as_the_format_says(tmp_path, scan):
    save_scan(tmp_path / "s.cxi", scan)
    with h5py.File(tmp_path / "s.cxi") as f:
        counts = f[cxi.DATA][()]
        assert counts.dtype == np.uint32 and counts.shape == (scan.M, scan.N, scan.N)
        np.testing.assert_array_equal(np.sqrt(counts).astype(np.float32), scan.diffraction)
        assert f[cxi.ENERGY][()] == pytest.approx(ENERGY_EV * ELECTRON_VOLT_J, rel=1e-15)  # joules
        assert f[cxi.DISTANCE][()] == DISTANCE_M and f[cxi.X_PIXEL][()] == f[cxi.Y_PIXEL][()] == DETECTOR_PIXEL_M
        t = f[cxi.TRANSLATION][()]
        assert t.shape == (scan.M, 3) and np.all(t[:, 2] == 0)
        np.testing.assert_allclose(t[:, :2], scan.positions * 20e-9, rtol=1e-12)  # metres, x then y
        np.testing.assert_array_equal(f[cxi.PROBE][()], scan.probe)
        np.testing.assert_array_equal(f[cxi.OBJECT][()], scan.object)


def test_cxi_without_pinnacle_group_reads_positions_from_metres(tmp_path, scan):
    """A CXI from elsewhere: positions come from the translation in metres, in the object's frame."""
    path = _edit(save_scan(tmp_path / "s.cxi", scan)[0], lambda f: f.__delitem__(cxi.PINNACLE))
    back = load_dataset(path)
    np.testing.assert_allclose(back.positions, scan.positions, rtol=0, atol=1e-9)
    assert np.array_equal(back.object, scan.object) and np.array_equal(back.diffraction, scan.diffraction)
    assert back.geometry.energy_ev == pytest.approx(ENERGY_EV, rel=1e-15)


def test_beamline_cxi_without_object_gets_a_grid_over_the_scan(tmp_path, scan):
    path = save_scan(tmp_path / "s.cxi", scan)[0]
    _edit(path, lambda f: (f.__delitem__(cxi.PINNACLE), f.__delitem__("/entry_1/image_2")))
    back = load_dataset(path)
    assert back.object is None
    np.testing.assert_allclose(back.positions.min(axis=0), [scan.N // 2 + GRID_MARGIN_PX] * 2, atol=1e-9)
    with h5py.File(path) as f:  # the metres frame is kept: origin + px·Δ gives the file's translation back
        np.testing.assert_allclose(to_metres(back.positions, back.geometry.origin_m, back.pixel_size_m),
                                   f[cxi.TRANSLATION][()][:, :2], rtol=0, atol=1e-9 * back.pixel_size_m)
    # spacings in pixels are the original ones (a shift of the whole scan, nothing else)
    np.testing.assert_allclose(back.positions - back.positions[0], scan.positions - scan.positions[0], atol=1e-9)


def test_convert_cli_round_trip_and_what_is_not_carried(tmp_path, capsys, scan):
    save_dataset(tmp_path / "a.npz", scan)
    rc, out, err = _cli(capsys, "convert", tmp_path / "a.npz", tmp_path / "a.cxi")
    assert rc == 0, err
    assert "CXI" in out and "20 nm" in out and "not carried by CXI: Y, scan_index" in out
    rc, out, err = _cli(capsys, "convert", tmp_path / "a.cxi", tmp_path / "p")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["diffraction.h5", "product.h5"]
    rc, out, err = _cli(capsys, "convert", tmp_path / "p", tmp_path / "b.npz")
    assert rc == 0, err
    _same_arrays(scan, load_dataset(tmp_path / "b.npz"), skip=NPZ_ONLY)


def test_convert_refuses_metres_without_geometry(tmp_path, capsys):
    save_dataset(tmp_path / "a.npz", simulated_scan(geometry=False))
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out, err = _cli(capsys, "convert", tmp_path / "a.npz", tmp_path / "a.cxi")
    assert rc == 2 and "geometry" in err and "--energy-ev" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    rc, out, err = _cli(capsys, "convert", tmp_path / "a.npz", tmp_path / "a.cxi", "--energy-ev", ENERGY_EV,
                        "--distance-m", DISTANCE_M, "--detector-pixel-m", DETECTOR_PIXEL_M)
    assert rc == 0, err
    assert load_dataset(tmp_path / "a.cxi").pixel_size_m == pytest.approx(20e-9, rel=1e-12)
    rc, out, err = _cli(capsys, "convert", tmp_path / "a.npz", tmp_path / "x.h5")
    assert rc == 2 and "diffraction.h5" in err


# ---------------------------------------------------------------------------------------- mask and crop
def _masked_cxi(tmp_path: Path, scan) -> tuple[Path, np.ndarray]:
    path = save_scan(tmp_path / "m.cxi", scan)[0]
    bad = np.zeros((scan.N, scan.N), bool)
    bad[3, :] = True  # a dead row
    bad[scan.N // 2, scan.N // 2 + 3] = True  # a hot pixel

    def mask(f):
        data = f[cxi.DETECTOR_DATA][()].astype(np.float64)
        data[:, bad] = -7.0  # garbage the reader must accept at masked pixels only
        data[:, scan.N // 2, scan.N // 2 + 3] = 4e9
        del f[cxi.DETECTOR_DATA]
        f.create_dataset(cxi.DETECTOR_DATA, data=data)
        f.create_dataset(cxi.MASK, data=np.where(bad, 1, 0).astype(np.uint32))
    _edit(path, mask)
    return path, bad


def test_detector_mask_is_carried_and_masked_pixels_are_never_read(tmp_path, scan):
    path, bad = _masked_cxi(tmp_path, scan)
    ds = load_dataset(path)
    assert np.array_equal(ds.valid, ~bad)
    assert np.array_equal(ds.measured[:, ~bad], scan.diffraction[:, ~bad]) and not ds.measured[:, bad].any()
    assert ds.nphotons == pytest.approx(float((scan.diffraction[:, ~bad].astype(np.float64) ** 2).sum(-1).mean()))
    save_dataset(tmp_path / "m.npz", ds)  # NPZ holds it as bad_pixels (Ptychodus' PtychoPINN key)
    back = load_dataset(tmp_path / "m.npz")
    assert np.array_equal(back.valid, ds.valid) and fingerprint(back) == fingerprint(ds)
    pair = load_dataset(save_scan(tmp_path / "p" / "diffraction.h5", ds)[0])
    assert np.array_equal(pair.valid, ds.valid)


def test_negative_counts_at_unmasked_pixels_are_refused(tmp_path, scan):
    path = save_scan(tmp_path / "n.cxi", scan)[0]

    def negative(f):
        data = f[cxi.DETECTOR_DATA][()].astype(np.float64)
        data[2, 5, 6] = -1.0
        del f[cxi.DETECTOR_DATA]
        f.create_dataset(cxi.DETECTOR_DATA, data=data)
    _edit(path, negative)
    with pytest.raises(InputError) as err:
        load_dataset(path)
    assert err.value.key == cxi.DATA and "(2, 5, 6)" in err.value.expected


def _wide_cxi(tmp_path: Path, scan) -> Path:
    """The scan's patterns in the middle of a wider detector (N × N+8): what a real detector gives."""
    path = save_scan(tmp_path / "w.cxi", scan)[0]

    def widen(f):
        data = f[cxi.DETECTOR_DATA][()]
        wide = np.full(data.shape[:2] + (data.shape[2] + 8,), 3, data.dtype)
        wide[:, :, 4:-4] = data
        del f[cxi.DETECTOR_DATA]
        f.create_dataset(cxi.DETECTOR_DATA, data=wide)
    return _edit(path, widen)


def test_non_square_detector_needs_a_stated_crop(tmp_path, scan):
    path = _wide_cxi(tmp_path, scan)
    with pytest.raises(InputError) as err:
        load_dataset(path)
    assert err.value.key == cxi.DATA and "--crop" in err.value.expected and "32x40" in err.value.expected
    ds = load_dataset(path, options=ScanOptions(crop=scan.N))
    assert np.array_equal(ds.diffraction, scan.diffraction)
    assert ds.pixel_size_m == pytest.approx(20e-9, rel=1e-12)
    assert any("cropped to the central 32x32" in n for n in ds.geometry.notes)
    with pytest.raises(InputError) as err:
        load_dataset(path, options=ScanOptions(crop=33))
    assert err.value.source == "--crop"


def test_crop_to_fewer_pixels_coarsens_the_object_pixel_and_resamples_the_probe(tmp_path, scan):
    ds = load_dataset(save_scan(tmp_path / "s.cxi", scan)[0], options=ScanOptions(crop=16))
    assert ds.N == 16 and ds.pixel_size_m == pytest.approx(40e-9, rel=1e-12)  # Δ = λz/(16·p)
    np.testing.assert_array_equal(ds.diffraction, scan.diffraction[:, 8:24, 8:24])
    assert ds.object is None  # sampled at 20 nm, not 40: not used as ground truth, and the notes say so
    assert any("object" in n and "not used" in n for n in ds.geometry.notes)
    np.testing.assert_allclose(ds.positions - ds.positions[0], (scan.positions - scan.positions[0]) / 2, atol=1e-9)


def test_resampled_probe_keeps_the_far_field_of_the_kept_pixels():
    rng = np.random.default_rng(0)
    big = (rng.standard_normal((64, 64)) + 1j * rng.standard_normal((64, 64))).astype(np.complex64)
    small = resample_probe(big, 32)
    far_big = physics.forward_intensity(big, np.ones((64, 64), np.complex64))
    far_small = physics.forward_intensity(small, np.ones((32, 32), np.complex64))
    np.testing.assert_allclose(far_small, far_big[16:48, 16:48], rtol=1e-4, atol=1e-4 * far_big.max())


# ------------------------------------------------------------------------------------------- other files
def test_probe_from_another_file_and_product_for_positions(tmp_path, scan):
    save_scan(tmp_path / "full.cxi", scan)
    bare = save_scan(tmp_path / "bare.cxi", replace(scan, probe=None))[0]
    _edit(bare, lambda f: f.__delitem__(cxi.TRANSLATION))
    with pytest.raises(InputError) as err:
        load_dataset(bare)
    assert err.value.key == cxi.TRANSLATION and "--product" in err.value.expected
    ds = load_dataset(bare, require_probe=True, options=ScanOptions(product=str(tmp_path / "full.cxi")))
    np.testing.assert_allclose(ds.positions, scan.positions, atol=1e-9)
    assert np.array_equal(ds.probe, scan.probe)
    save_dataset(tmp_path / "probe.npz", scan)
    other = load_dataset(tmp_path / "full.cxi", options=ScanOptions(probe=str(tmp_path / "probe.npz")))
    assert np.array_equal(other.probe, scan.probe)


def test_ptychodus_pair_matches_positions_to_patterns_by_index(tmp_path, scan):
    d, p = save_scan(tmp_path / "pair", scan)
    order = np.arange(scan.M)[::-1]

    def shuffle(f):
        for key in ("probe_position_indexes", "probe_position_x_m", "probe_position_y_m"):
            values = f[key][()][order]
            del f[key]
            f.create_dataset(key, data=values)
        del f["pinnacle"]
    _edit(p, shuffle)
    back = load_dataset(tmp_path / "pair")
    np.testing.assert_allclose(back.positions, scan.positions, atol=1e-9)


# ------------------------------------------------------------------------------------ bad files via the CLI
def _beamline_cxi(tmp_path: Path, scan) -> Path:
    """A CXI as a beamline writes one: patterns, geometry, positions, a probe; no object, no extension groups."""
    def strip(f):
        for group in ("/entry_1/image_2", cxi.PTYCHODUS, cxi.PINNACLE):
            del f[group]
    return _edit(save_scan(tmp_path / "bad.cxi", scan)[0], strip)


def _cxi_without(path_in_file: str):
    def build(tmp_path: Path, scan) -> Path:
        return _edit(_beamline_cxi(tmp_path, scan), lambda f: f.__delitem__(path_in_file))
    return build


def _pair_without_product(tmp_path: Path, scan) -> Path:
    d, p = save_scan(tmp_path / "pair", scan)
    p.unlink()
    return d


def _pair_without(key: str):
    def build(tmp_path: Path, scan) -> Path:
        d, p = save_scan(tmp_path / "pair", scan)
        _edit(p, lambda f: f.__delitem__(key))
        return d
    return build


def _pair_energy_unknown(tmp_path: Path, scan) -> Path:
    """Energy 0 (Ptychodus' 'unknown') and no object pixel size stated: nothing gives the pixel size."""
    d, p = save_scan(tmp_path / "pair", scan)

    def unknown(f):
        f.attrs["photon_energy_eV"] = 0.0
        for item in ("object", "probe"):
            for a in ("pixel_width_m", "pixel_height_m"):
                del f[item].attrs[a]
    _edit(p, unknown)
    return d


#: name → (builder, the HDF5 path the message must name, command-line extras)
BAD_FILES = {
    "cxi_no_positions": (_cxi_without(cxi.TRANSLATION), cxi.TRANSLATION, ()),
    "cxi_no_energy": (_cxi_without(cxi.ENERGY), cxi.ENERGY, ()),
    "cxi_no_distance": (_cxi_without(cxi.DISTANCE), cxi.DISTANCE, ()),
    "cxi_no_detector_pixel": (_cxi_without(cxi.X_PIXEL), cxi.X_PIXEL, ()),
    "cxi_no_patterns": (_cxi_without(cxi.DETECTOR_DATA), cxi.DATA, ()),
    "cxi_no_probe_for_training": (_cxi_without("/entry_1/image_1"), cxi.PROBE, ("--require-probe",)),
    "cxi_non_square_detector": (_wide_cxi, cxi.DATA, ()),
    "pair_no_product": (_pair_without_product, "file", ()),
    "pair_no_positions": (_pair_without("probe_position_x_m"), "probe_position_x_m", ()),
    "pair_no_energy": (_pair_energy_unknown, "photon_energy_eV", ()),
    "pair_no_indexes": (lambda t, s: _edit(save_scan(t / "pair", s)[0], lambda f: f.__delitem__("indexes")),
                        "indexes", ()),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_exits_2_naming_the_hdf5_path(name, tmp_path, capsys, scan):
    build, key, extra = BAD_FILES[name]
    path = build(tmp_path, scan)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    if extra == ("--require-probe",):  # training needs the probe: `pinnacle train` refuses before any run
        rc, out, err = _cli(capsys, "train", path, "--runs", tmp_path / "runs", "--no-progress")
    else:
        rc, out, err = _cli(capsys, "validate", path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("pinnacle: error: ") and f": {key}: expected" in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written


def test_bad_cxi_through_a_subprocess_is_one_line(tmp_path, scan):
    path = _cxi_without(cxi.ENERGY)(tmp_path, scan)
    proc = subprocess.run([sys.executable, "-m", "console", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (f"pinnacle: error: {path}: {cxi.ENERGY}: expected the photon energy to compute "
                                   "the object pixel λ·z/(N·p); it is missing (or pass --energy-ev)")


def test_product_file_given_as_data_is_refused(tmp_path, scan):
    _, p = save_scan(tmp_path / "pair", scan)
    with pytest.raises(InputError) as err:
        load_dataset(p)
    assert err.value.key == "patterns" and "--product" in err.value.expected


# ---------------------------------------------------------------------------------------------- simulate
def test_simulate_writes_cxi_with_a_round_object_pixel(tmp_path, capsys):
    args = ["simulate", "--N", "64", "--positions", "9", "--size", "110", "--seed", "3"]
    rc, out, err = _cli(capsys, args[0], tmp_path / "a.cxi", *args[1:])
    assert rc == 0, err
    assert "object pixel 10 nm" in out
    assert _cli(capsys, args[0], tmp_path / "b.cxi", *args[1:])[0] == 0
    assert (tmp_path / "a.cxi").read_bytes() == (tmp_path / "b.cxi").read_bytes()  # same seed, same bytes
    side = json.loads((tmp_path / "a.cxi.json").read_text())
    ds = load_dataset(tmp_path / "a.cxi")
    assert side["fingerprint"] == fingerprint(ds) and side["geometry"]["object_pixel_m"] == ds.pixel_size_m
    assert ds.pixel_size_m == pytest.approx(10e-9, rel=1e-12) and ds.format == "cxi"
    assert _cli(capsys, args[0], tmp_path / "c.npz", *args[1:])[0] == 0  # the same scan as NPZ
    npz = load_dataset(tmp_path / "c.npz")
    assert not npz.geometry.known  # NPZ: no geometry unless asked for, bytes as before
    assert np.array_equal(npz.diffraction, ds.diffraction) and np.allclose(npz.positions, ds.positions, atol=1e-9)


def test_console_lists_beamline_files_but_not_products(tmp_path, scan):
    from console.readers import inspect_dataset, list_datasets

    save_scan(tmp_path / "s.cxi", scan)
    save_scan(tmp_path / "pair" / "diffraction.h5", scan)
    save_scan(tmp_path / "pair" / "x.npz", scan)
    names = [p.name for p in list_datasets(str(tmp_path / "pair"), tmp_path / "none")]
    assert names == ["diffraction.h5", "x.npz"]
    assert [p.name for p in list_datasets(str(tmp_path), tmp_path / "none")] == ["s.cxi"]
    info = inspect_dataset(tmp_path / "s.cxi")
    assert info.error is None and dict(info.summary)["patterns"] == "9"


# ------------------------------------------------------------------------------- reconstruction, end to end
@pytest.mark.tf
def test_cxi_reconstructs_like_the_npz_of_the_same_scan(tmp_path, capsys):
    """One simulated scan as NPZ and as a beamline CXI (positions from metres): a bundle trained on the CXI scores
    the same on both files (float32 round-off of the stitching), and the product carries Δ = λz/(Np) = 10 nm and
    the CXI's own positions in metres; Ptychodus (when installed) reads that product back unchanged."""
    pytest.importorskip("tensorflow")
    import importlib.util

    from engine.recon import load_recon

    sim = ["--N", "64", "--positions", "49", "--size", "112", "--seed", "4"]
    assert _cli(capsys, "simulate", tmp_path / "s.npz", *sim)[0] == 0
    assert _cli(capsys, "simulate", tmp_path / "s.cxi", *sim)[0] == 0
    _edit(tmp_path / "s.cxi", lambda f: f.__delitem__(cxi.PINNACLE))  # as from elsewhere: metres only
    rc, out, err = _cli(capsys, "train", tmp_path / "s.cxi", "--test", tmp_path / "s.cxi", "--epochs", "2",
                        "--runs", tmp_path / "runs", "--no-progress")
    assert rc == 0, err
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    rc, out, err = _cli(capsys, "infer", run / "bundle", tmp_path / "s.npz", "--runs", tmp_path / "runs2",
                        "--no-progress")
    assert rc == 0, err
    (run_npz,) = [p for p in (tmp_path / "runs2").iterdir() if p.is_dir()]
    m_cxi = json.loads((run / "metrics.json").read_text())
    m_npz = json.loads((run_npz / "metrics.json").read_text())
    for part in ("phase", "amplitude"):
        for name in ("ssim", "mae"):
            assert m_cxi[part][name] == pytest.approx(m_npz[part][name], abs=1e-4), (part, name)
    rec_cxi, rec_npz = load_recon(run / "recon.npz"), load_recon(run_npz / "recon.npz")
    assert rec_cxi.origin == rec_npz.origin
    assert np.abs(rec_cxi.object - rec_npz.object).max() <= 1e-4 * np.abs(rec_npz.object).max()

    expected = object_pixel_m(12398.419843320026, 0.48, 75e-6, 64)
    assert expected == pytest.approx(10e-9, rel=1e-12)
    with h5py.File(run / "product.h5") as f, h5py.File(tmp_path / "s.cxi") as c:
        assert f["object"].attrs["pixel_width_m"] == pytest.approx(expected, rel=1e-12)
        assert f["probe"].attrs["pixel_width_m"] == pytest.approx(expected, rel=1e-12)
        assert f.attrs["photon_energy_eV"] == pytest.approx(12398.419843320026, rel=1e-12)
        assert f.attrs["detector_object_distance_m"] == 0.48
        pos_m = np.stack([f["probe_position_x_m"][()], f["probe_position_y_m"][()]], axis=1)
        np.testing.assert_allclose(pos_m, c[cxi.TRANSLATION][()][:, :2], rtol=0, atol=1e-6 * expected)
        assert f["pinnacle"].attrs["pixel_size_source"].startswith("computed")
        assert len(f["loss_values"][()]) == 2
    with h5py.File(run_npz / "product.h5") as f:  # the NPZ states no geometry: the product says so
        assert f["object"].attrs["pixel_width_m"] == 1e-8 and f.attrs["photon_energy_eV"] == 0.0
        assert "unknown" in f["pinnacle"].attrs["pixel_size_source"]
    assert (run / "product.cxi").is_file()
    if importlib.util.find_spec("ptychodus") is not None:
        from ptychodus.api.io import load_product

        product = load_product(run / "product.h5")
        np.testing.assert_array_equal(product.object_.get_array()[0], rec_cxi.object)
        with h5py.File(tmp_path / "s.cxi") as c:
            np.testing.assert_array_equal(product.probes.get_array()[0, 0], c[cxi.PROBE][()])
            t = c[cxi.TRANSLATION][()]
        np.testing.assert_allclose(product.probe_positions.get_coordinates_x_m(), t[:, 0], rtol=0, atol=1e-15)
        np.testing.assert_allclose(product.probe_positions.get_coordinates_y_m(), t[:, 1], rtol=0, atol=1e-15)


def test_validate_states_unknown_geometry_and_the_mask(tmp_path, capsys, scan):
    save_dataset(tmp_path / "plain.npz", simulated_scan(geometry=False))
    rc, out, err = _cli(capsys, "validate", tmp_path / "plain.npz")
    assert rc == 0 and "unknown (the file states no energy" in out
    path, bad = _masked_cxi(tmp_path, scan)
    rc, out, err = _cli(capsys, "validate", path, "--json")
    s = json.loads(out)
    assert rc == 0 and s["format"] == "cxi" and s["masked_pixels"] == int(bad.sum())
    assert s["geometry"]["source"] == "computed" and s["geometry"]["object_pixel_m"] == pytest.approx(20e-9)


def test_training_input_honours_the_mask(tmp_path, scan):
    """The pipeline hands the mask to the loss and zeros masked pixels in the network input and the scales."""
    from engine.config import ModelConfig, RunConfig, TrainingConfig
    from engine.pipeline import prepare_training

    path, bad = _masked_cxi(tmp_path, scan)
    ds = load_dataset(path)
    cfg = RunConfig(model=ModelConfig(N=32, n_filters_scale=1), training=TrainingConfig(epochs=1))
    data, consts = prepare_training(ds, cfg)
    assert np.array_equal(consts.valid, ~bad)
    assert not data.amplitude[:, bad].any() and np.array_equal(data.amplitude[:, ~bad], ds.diffraction[:, ~bad])


def test_a_larger_detector_for_a_smaller_model_suggests_the_crop(tmp_path, scan):
    from engine.pipeline import load_data

    path = save_scan(tmp_path / "s.cxi", scan)[0]
    with pytest.raises(InputError) as err:
        load_data(path, False, N=16)
    assert "--crop 16" in err.value.expected
    assert load_data(path, False, N=16, options=ScanOptions(crop=16)).N == 16
