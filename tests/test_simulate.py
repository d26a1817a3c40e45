"""The simulator: seeded and bit-reproducible, physically consistent with the numpy oracle, inputs validated."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest

from console.cli import main as cli_main
from engine import physics
from engine import simulate as sim
from engine.config import SimulationConfig
from engine.errors import ConfigError

# Small scans keep every test well under a second.
SMALL = dict(N=32, n_positions=20, object_size=80, scan_step=4.0, probe_radius=5.0, nphotons=1e4)


def small(**kw) -> SimulationConfig:
    return SimulationConfig(**{**SMALL, **kw})


def positions(a: dict) -> np.ndarray:
    return np.stack([a["xcoords"], a["ycoords"]], axis=1)


@pytest.fixture(scope="module")
def scan() -> dict:
    return sim.simulate(small(seed=3))


# ------------------------------------------------------------------------------------------ reproducibility
def test_same_seed_gives_identical_arrays(scan):
    again = sim.simulate(small(seed=3))
    assert list(again) == list(sim.NPZ_KEYS)
    for key in sim.NPZ_KEYS:
        assert again[key].dtype == scan[key].dtype
        assert again[key].tobytes() == scan[key].tobytes(), key


def test_same_seed_gives_identical_files(tmp_path):
    cfg = small(seed=5, n_positions=12)
    sim.write_simulation(tmp_path / "a.npz", cfg)
    sim.write_simulation(tmp_path / "b.npz", cfg)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_different_seeds_differ(scan):
    other = sim.simulate(small(seed=4))
    for key in ("objectGuess", "xcoords", "diffraction", "Y"):
        assert not np.array_equal(other[key], scan[key]), key


def test_scan_kind_does_not_change_the_object(scan):
    """Object, scan and noise draw from independent streams of the seed."""
    other = sim.simulate(small(seed=3, scan_kind="random"))
    assert np.array_equal(other["objectGuess"], scan["objectGuess"])
    assert not np.array_equal(other["xcoords"], scan["xcoords"])


# ---------------------------------------------------------------------------------------------- physics
def test_dtypes_and_shapes(scan):
    M, N, H = SMALL["n_positions"], SMALL["N"], SMALL["object_size"]
    expect = {"diffraction": ((M, N, N), np.float32), "xcoords": ((M,), np.float64), "ycoords": ((M,), np.float64),
              "probeGuess": ((N, N), np.complex64), "objectGuess": ((H, H), np.complex64),
              "Y": ((M, N, N), np.complex64), "scan_index": ((M,), np.int64)}
    for key, (shape, dtype) in expect.items():
        assert scan[key].shape == shape and scan[key].dtype == dtype, key


def test_ground_truth_patches_match_the_physics_oracle(scan):
    ref = physics.extract_patches(scan["objectGuess"], positions(scan), SMALL["N"])
    assert np.abs(scan["Y"] - ref).max() < 1e-5


def test_sample_patches_integer_positions_are_exact_slices():
    obj = sim.make_object("grf", 64, 16, np.random.default_rng(0))
    pos = np.array([[20.0, 30.0], [40.0, 33.0]])
    got = sim.sample_patches(obj, pos, 16)
    assert np.array_equal(got[0], obj[22:38, 12:28])
    assert np.array_equal(got[1], obj[25:41, 32:48])


def test_mean_expected_counts_equal_nphotons_and_measured_within_poisson_error():
    cfg = small(seed=8, n_positions=40)
    a, info = sim.simulate_with_info(cfg)
    expected = physics.forward_intensity(a["probeGuess"], a["Y"]).astype(np.float64).sum(axis=(-2, -1))
    assert expected.mean() == pytest.approx(cfg.nphotons, rel=1e-4)
    assert info["nphotons_expected"] == pytest.approx(cfg.nphotons, rel=1e-4)
    measured = (a["diffraction"].astype(np.float64) ** 2).sum(axis=(-2, -1))
    sigma_of_mean = math.sqrt(cfg.nphotons / cfg.n_positions)  # each pattern's total is Poisson
    assert abs(measured.mean() - cfg.nphotons) < 5 * sigma_of_mean
    assert info["nphotons_measured"] == pytest.approx(measured.mean(), rel=1e-12)


def test_diffraction_is_sqrt_of_poisson_counts_of_the_forward_model(scan):
    counts = scan["diffraction"].astype(np.float64) ** 2
    assert np.abs(counts - np.round(counts)).max() < 1e-3 * max(1.0, counts.max()) ** 0.5
    lam = physics.forward_intensity(scan["probeGuess"], scan["Y"]).astype(np.float64)
    # Poisson: mean deviation over the bright pixels is consistent with variance = mean
    bright = lam > 50
    z = (counts[bright] - lam[bright]) / np.sqrt(lam[bright])
    assert abs(z.mean()) < 5 / math.sqrt(bright.sum())
    assert 0.9 < z.std() < 1.1


# ----------------------------------------------------------------------------------------------- probes
@pytest.mark.parametrize("kind", ["disk", "gaussian"])
@pytest.mark.parametrize("defocus", [0.0, 3.0])
def test_probe_is_contained_in_the_central_region(kind, defocus):
    probe = sim.make_probe(kind, 64, 10.0, defocus)
    assert probe.dtype == np.complex64 and probe.shape == (64, 64)
    p2 = np.abs(probe.astype(np.complex128)) ** 2
    assert p2[16:48, 16:48].sum() / p2.sum() >= 0.999
    yy, xx = np.mgrid[:64, :64]
    assert (p2 * yy).sum() / p2.sum() == pytest.approx(32, abs=1e-3)  # centred on pixel (N//2, N//2)
    assert (p2 * xx).sum() / p2.sum() == pytest.approx(32, abs=1e-3)


def test_probe_shapes_follow_their_definitions():
    disk = sim.make_probe("disk", 64, 10.0)
    assert abs(disk[32, 42]) == pytest.approx(0.5, abs=1e-6)  # tanh edge at r = radius
    gauss = sim.make_probe("gaussian", 64, 8.0)  # sigma = radius / 2 = 4
    assert abs(gauss[32, 36]) == pytest.approx(math.exp(-0.5), rel=1e-6)
    focus = sim.make_probe("disk", 64, 10.0, defocus=1.2)
    assert np.angle(focus[32, 42]) == pytest.approx(1.2, abs=1e-5)  # defocus·(r/radius)² at r = radius
    assert np.angle(focus[32, 37]) == pytest.approx(0.3, abs=1e-5)


@pytest.mark.parametrize("kind", ["disk", "gaussian"])
def test_probe_too_large_for_the_central_region_is_refused(kind):
    with pytest.raises(ConfigError) as err:
        sim.make_probe(kind, 64, 20.0)
    assert err.value.key == "probe_radius"


# ------------------------------------------------------------------------------------------------ scans
@pytest.mark.parametrize("kind", ["raster", "random", "fermat"])
def test_every_patch_stays_inside_the_object(kind):
    N, size, M = 32, 80, 37
    pos = sim.make_scan(kind, M, size, N, 4.0, 0.5, np.random.default_rng(1))
    assert pos.shape == (M, 2) and pos.dtype == np.float64
    lo = np.floor(pos) - N // 2
    hi = np.ceil(pos) - N // 2 + N
    assert lo.min() >= 1 and hi.max() <= size - 1  # one pixel of margin
    assert len(np.unique(pos, axis=0)) == M


def test_raster_is_centred_row_major_and_jitter_bounded():
    N, size, M, step, jitter = 32, 100, 14, 5.0, 0.7  # 4 columns, the last row partly filled
    pos = sim.make_scan("raster", M, size, N, step, jitter, np.random.default_rng(2))
    grid = sim.make_scan("raster", M, size, N, step, 0.0, np.random.default_rng(2))
    assert np.abs(pos - grid).max() <= jitter
    assert np.abs(pos - grid).max() > 0.5 * jitter
    centre = size / 2
    assert grid[:4, 0] == pytest.approx(centre + step * np.array([-1.5, -0.5, 0.5, 1.5]))
    assert grid[::4, 1] == pytest.approx(centre + step * np.array([-1.5, -0.5, 0.5, 1.5]))


def test_fermat_spacing_is_about_the_step():
    from scipy.spatial import cKDTree

    pos = sim.make_scan("fermat", 100, 160, 32, 5.0, 0.0, np.random.default_rng(0))
    d, _ = cKDTree(pos).query(pos, k=2)
    assert 0.8 < np.median(d[:, 1]) / 5.0 < 1.2
    assert np.linalg.norm(pos.mean(axis=0) - 80.0) < 2.0


def test_scan_that_does_not_fit_is_refused_naming_object_size():
    with pytest.raises(ConfigError) as err:
        sim.simulate(small(n_positions=400))
    assert err.value.key == "object_size"


# ---------------------------------------------------------------------------------------------- objects
@pytest.mark.parametrize("kind", ["lines", "grf", "dead_leaves"])
def test_object_ranges_border_and_independent_fields(kind):
    N, size = 32, 96
    obj = sim.make_object(kind, size, N, np.random.default_rng(11))
    amp, phase = np.abs(obj), np.angle(obj)
    assert obj.dtype == np.complex64 and obj.shape == (size, size)
    assert amp.min() >= sim.AMP_MIN - 1e-6 and amp.max() <= 1 + 1e-6
    assert np.abs(phase).max() <= sim.PHASE_MAX + 1e-6
    edge = N // 8
    border = np.ones((size, size), bool)
    border[edge:-edge, edge:-edge] = False
    assert np.abs(obj[border] - 1).max() < 1e-6  # constant (amplitude 1, phase 0) at the edge
    inner = slice(N // 2, size - N // 2)
    a, p = amp[inner, inner].ravel(), phase[inner, inner].ravel()
    assert a.std() > 0.03 and p.std() > 0.05  # there is structure
    assert abs(np.corrcoef(a, p)[0, 1]) < 0.8  # amplitude and phase are different fields


@pytest.mark.parametrize("kind", ["lines", "grf", "dead_leaves"])
def test_object_is_well_sampled(kind):
    """Little power near Nyquist, so the band-limited interpolant of the object is faithful."""
    obj = sim.make_object(kind, 96, 32, np.random.default_rng(12)).astype(np.complex128)
    spec = np.abs(np.fft.fft2(obj - obj.mean())) ** 2
    ky, kx = np.meshgrid(np.fft.fftfreq(96), np.fft.fftfreq(96), indexing="ij")
    high = np.hypot(ky, kx) > 0.4
    assert spec[high].sum() / spec.sum() < 1e-3


def test_taper_is_zero_at_the_edge_and_one_inside():
    w = sim.border_taper((100, 100), 32)
    assert w[:3].max() == 0 and w[:, -3:].max() == 0
    assert w[16:84, 16:84].min() == 1.0
    assert np.all(np.diff(w[50, :50]) >= 0)


# -------------------------------------------------------------------------------------- files and sidecar
def test_write_simulation_writes_npz_and_sidecar(tmp_path):
    cfg = small(seed=6, n_positions=12)
    path = tmp_path / "scan.npz"
    meta = sim.write_simulation(path, cfg)
    side = json.loads((tmp_path / "scan.npz.json").read_text())
    assert side == meta
    assert side["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert side["parameters"] == dataclasses.asdict(cfg)
    assert side["generator"] == sim.GENERATOR and side["numpy_version"] == np.__version__
    with np.load(path, allow_pickle=False) as npz:
        assert list(npz.files) == list(sim.NPZ_KEYS)
        for key in npz.files:
            assert side["arrays"][key]["sha256"] == sim.array_sha256(npz[key])
        measured = float((npz["diffraction"].astype(np.float64) ** 2).sum(axis=(-2, -1)).mean())
    assert side["nphotons_measured"] == pytest.approx(measured, rel=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.npz", "scan.npz.json"]


def test_bad_config_writes_nothing(tmp_path):
    with pytest.raises(ConfigError):
        sim.write_simulation(tmp_path / "x.npz", small(probe_radius=15.0))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_simulate_writes_and_summarises(tmp_path, capsys):
    out = tmp_path / "cli.npz"
    rc = cli_main(["simulate", str(out), "--N", "32", "--positions", "9", "--size", "72", "--probe-radius", "5",
                   "--object", "grf", "--probe", "gaussian", "--scan", "fermat", "--step", "4", "--seed", "2"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert len(captured.out.strip().splitlines()) == 1 and "9 patterns" in captured.out
    side = json.loads((tmp_path / "cli.npz.json").read_text())
    assert side["parameters"]["object_kind"] == "grf" and side["parameters"]["scan_kind"] == "fermat"
    assert side["parameters"]["probe_kind"] == "gaussian" and side["parameters"]["seed"] == 2


@pytest.mark.parametrize("args, option", [
    (["--object", "stars"], "--object"),
    (["--positions", "0"], "--positions"),
    (["--probe-radius", "14"], "--probe-radius"),  # legal for the config, but leaks out of the central region
    (["--positions", "300"], "--size"),  # does not fit the object
    (["--nphotons", "-1"], "--nphotons"),
    (["--N", "31"], "--N"),
])
def test_cli_bad_values_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, args, option):
    rc = cli_main(["simulate", str(tmp_path / "bad.npz"), "--N", "32", "--size", "72", "--probe-radius", "5",
                   "--positions", "9", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith(f"pinnacle: error: {option}: expected")
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_an_output_that_is_not_npz(tmp_path, capsys):
    assert cli_main(["simulate", str(tmp_path / "scan.h5")]) == 2
    assert capsys.readouterr().err.startswith("pinnacle: error: ")
    assert list(tmp_path.iterdir()) == []
