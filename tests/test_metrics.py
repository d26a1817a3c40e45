"""Metrics of docs/metrics.md: perfect scores for identical images, ambiguity removal, monotone response to noise, FRC,
the recon file round trip, and `pinnacle evaluate` end to end on a small synthetic dataset."""
from __future__ import annotations

import json

import numpy as np
import pytest

from console.cli import main
from engine import metrics as mt
from engine import physics
from engine.recon import load_recon, write_recon
from tests.synthetic import smooth_object

N = 32


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(3)
    obj = smooth_object(112, rng, sigma=2.0)
    g = np.arange(30, 83, 4.0)
    pos = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2) + rng.uniform(-0.5, 0.5, (len(g) ** 2, 2))
    return obj, pos


def test_scanned_region_is_box_of_centres_in_grid_frame():
    pos = np.array([[10.2, 20.7], [30.0, 25.5]])
    assert mt.scanned_region(pos, 16) == (20, 27, 10, 31)
    assert mt.scanned_region(pos, 16, origin=(5, 10)) == (10, 17, 5, 26)
    assert mt.scanned_region(pos, 16, shape=(22, 100)) == (20, 22, 10, 31)


def test_identical_images_score_perfect(scene):
    obj, pos = scene
    res = mt.evaluate(obj, (0, 0), obj, pos, N)
    for part in ("amplitude", "phase"):
        assert res[part]["mae"] == 0.0
        assert res[part]["psnr"] == np.inf
        assert res[part]["ssim"] == pytest.approx(1.0, abs=1e-12)
        assert res[part]["frc50_ring"] is None and res[part]["frc7_ring"] is None
    assert res["registration_shift_px"] == [0.0, 0.0]
    json.dumps(res)  # JSON-able (inf is a float json.dumps accepts; the CLI writes "inf")


def _ambiguous_copy(obj, dy=0.35, dx=-0.6, scale=1.3, offset=2.0, gy=0.05, gx=-0.08):
    """The truth, sub-pixel shifted, amplitude-scaled, phase-offset and phase-ramped: what a recon may return."""
    moved = physics.fourier_shift(obj.astype(np.complex128), dy, dx)
    yy, xx = np.mgrid[: obj.shape[0], : obj.shape[1]]
    return scale * moved * np.exp(1j * (offset + gy * yy + gx * xx))


def test_ambiguities_are_removed(scene):
    obj, pos = scene
    res = mt.evaluate(_ambiguous_copy(obj), (0, 0), obj, pos, N)
    assert res["registration_shift_px"] == pytest.approx([-0.35, 0.6], abs=0.05 + 1e-9)
    assert res["amplitude"]["scale"] == pytest.approx(1 / 1.3, rel=1e-3)
    for part in ("amplitude", "phase"):
        assert res[part]["ssim"] > 0.99, part
        assert res[part]["psnr"] > 40, part
    assert res["amplitude"]["mae"] < 5e-3
    assert res["phase"]["mae"] < 1e-2  # rad


def test_without_ambiguity_removal_the_copy_scores_badly(scene):
    """Guards the previous test: the same copy compared naively is far from perfect."""
    obj, pos = scene
    y0, y1, x0, x1 = mt.scanned_region(pos, N)
    bad = _ambiguous_copy(obj)[y0:y1, x0:x1]
    good = obj[y0:y1, x0:x1]
    pb, pg = mt.phase_to_unit(np.angle(bad)), mt.phase_to_unit(np.angle(good))
    assert mt.ssim(pb, pg) < 0.7 and mt.psnr(pb, pg) < 20


def test_recon_on_offset_grid(scene):
    obj, pos = scene
    crop = obj[10:100, 6:104]
    res = mt.evaluate(crop, (6, 10), obj, pos, N)
    assert res["amplitude"]["mae"] == 0.0 and res["phase"]["ssim"] == pytest.approx(1.0)


def test_noise_lowers_scores_monotonically(scene):
    obj, pos = scene
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(obj.shape) + 1j * rng.standard_normal(obj.shape)
    scores = [mt.evaluate(obj + s * noise, (0, 0), obj, pos, N) for s in (0.01, 0.03, 0.1, 0.3)]
    for part in ("amplitude", "phase"):
        for key in ("ssim", "psnr"):
            vals = [r[part][key] for r in scores]
            assert all(a > b for a, b in zip(vals, vals[1:])), (part, key, vals)
        maes = [r[part]["mae"] for r in scores]
        assert all(a < b for a, b in zip(maes, maes[1:])), (part, maes)


def test_remove_phase_ramp_handles_wrapping_ramps():
    rng = np.random.default_rng(1)
    ref = rng.uniform(-1, 1, (48, 40))
    yy, xx = np.mgrid[:48, :40]
    ramped = np.angle(np.exp(1j * (ref + 0.4 * yy - 0.7 * xx + 3.0)))  # wraps many times
    back = mt.remove_phase_ramp(ramped, ref)
    assert np.abs(np.angle(np.exp(1j * (back - ref)))).max() < 1e-9
    cplx = mt.remove_phase_ramp(np.exp(1j * ramped) * 0.5, np.exp(1j * ref))
    assert np.iscomplexobj(cplx) and np.allclose(cplx, 0.5 * np.exp(1j * ref))


def test_psnr_conventions():
    a = np.zeros((8, 8))
    b = np.full((8, 8), 0.1)  # MSE 0.01 → 20 dB at peak 1
    assert mt.psnr(a, b) == pytest.approx(20.0)
    assert mt.psnr_255(a, b) == pytest.approx(20.0 + 48.1308, abs=1e-3)
    assert mt.mae(a, b) == pytest.approx(0.1)


def test_frc_identical_is_one_and_independent_noise_is_low():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((64, 80))
    rings, curve = mt.frc(a, a)
    assert len(rings) == 32 and np.allclose(curve, 1.0)
    _, c2 = mt.frc(a, rng.standard_normal((64, 80)))
    assert np.abs(c2[4:]).mean() < 0.15


def test_frc_thresholds_on_synthetic_curve():
    curve = 1.0 - np.arange(32) / 31.0  # crosses 0.5 after ring 15.5 and 1/7 after ring 26.57
    th = mt.frc_thresholds(curve)
    assert th["frc50_ring"] == 16 and th["frc50_px"] == pytest.approx(64 / 16)
    assert th["frc7_ring"] == 27 and th["frc7_px"] == pytest.approx(64 / 27)
    assert mt.frc_thresholds(np.ones(10))["frc50_ring"] is None


# --------------------------------------------------------------------------------- recon file and CLI
def _dataset(path, obj, pos, with_object=True):
    arrays = dict(xcoords=pos[:, 0], ycoords=pos[:, 1], diffraction=np.ones((len(pos), N, N), np.float32))
    if with_object:
        arrays["objectGuess"] = obj
    np.savez(path, **arrays)
    return str(path)


def test_write_and_load_recon_round_trip(tmp_path, scene):
    obj, pos = scene
    out = write_recon(tmp_path / "r" / "recon.npz", obj[5:50, 7:60], (7, 5), pos, backend="torch", epochs=3)
    assert [p.name for p in out.parent.iterdir()] == ["recon.npz"]  # no temporary left behind
    rec = load_recon(out)
    assert rec.origin == (7, 5) and rec.object.dtype == np.complex64
    assert np.array_equal(rec.object, obj[5:50, 7:60]) and np.allclose(rec.positions, pos)
    assert rec.meta == {"backend": "torch", "epochs": 3}
    with np.load(out) as z:
        assert np.allclose(z["amplitude"], np.abs(obj[5:50, 7:60]))


def test_cli_evaluate_dataset_against_itself_is_perfect(tmp_path, scene, capsys):
    obj, pos = scene
    ds = _dataset(tmp_path / "ds.npz", obj, pos)
    assert main(["evaluate", ds, "--truth", ds, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for part in ("amplitude", "phase"):
        assert res[part]["ssim"] == pytest.approx(1.0) and res[part]["mae"] == 0 and res[part]["psnr"] == "inf"
    assert "conventions" in res
    assert main(["evaluate", ds, "--truth", ds]) == 0
    assert "inf" in capsys.readouterr().out


def test_cli_evaluate_recon_file(tmp_path, scene, capsys):
    obj, pos = scene
    ds = _dataset(tmp_path / "ds.npz", obj, pos)
    rec = write_recon(tmp_path / "recon.npz", _ambiguous_copy(obj)[4:108, 2:110], (2, 4), pos)
    assert main(["evaluate", str(rec), "--truth", ds, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["phase"]["ssim"] > 0.99


def test_cli_evaluate_bad_input_exits_2(tmp_path, scene, capsys):
    obj, pos = scene
    ds = _dataset(tmp_path / "ds.npz", obj, pos)
    no_truth = _dataset(tmp_path / "noobj.npz", obj, pos, with_object=False)
    assert main(["evaluate", ds, "--truth", no_truth]) == 2
    assert "objectGuess" in capsys.readouterr().err
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, object=np.array([{"a": 1}], dtype=object), origin_x=0, origin_y=0)
    assert main(["evaluate", str(pickled), "--truth", ds]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pinnacle: error:") and "Traceback" not in err
    missing = tmp_path / "missing.npz"
    np.savez(missing, object=obj, origin_x=0)
    assert main(["evaluate", str(missing), "--truth", ds]) == 2
    assert "origin_y" in capsys.readouterr().err


# ---------------------------------------------------- the previous implementation, kept to compare against
def previous_fit_phase_plane(z, mask=None):
    """``fit_phase_plane`` as it was before the plane fit was cached (numpy lstsq on the full design matrix)."""
    z = np.asarray(z, dtype=np.complex128)
    m = np.ones(z.shape, bool) if mask is None else np.asarray(mask, bool)
    zm = np.where(m, z, 0)
    gy = float(np.angle(np.sum(zm[1:] * np.conj(zm[:-1])))) if z.shape[0] > 1 else 0.0
    gx = float(np.angle(np.sum(zm[:, 1:] * np.conj(zm[:, :-1])))) if z.shape[1] > 1 else 0.0
    yy, xx = np.mgrid[: z.shape[0], : z.shape[1]].astype(np.float64)
    plane = gy * yy + gx * xx
    plane += float(np.angle(np.sum(zm * np.exp(-1j * plane))))
    resid = np.angle(z * np.exp(-1j * plane))
    A = np.stack([np.ones(m.sum()), yy[m], xx[m]], axis=1)
    coef, *_ = np.linalg.lstsq(A, resid[m], rcond=None)
    return plane + coef[0] + coef[1] * yy + coef[2] * xx


def previous_remove_phase_ramp(x, ref, mask=None):
    x = np.asarray(x)
    zx, zr = mt._as_complex(x), mt._as_complex(ref)
    corrected = zx * np.exp(1j * previous_fit_phase_plane(zr * np.conj(zx), mask))
    return corrected if np.iscomplexobj(x) else np.angle(corrected)


def previous_refine_shift(ref, recon, origin, region, start):
    """``refine_shift`` as it was: a full-grid 2-D exponential and inverse FFT per Nelder–Mead evaluation."""
    from scipy.optimize import minimize

    spec = np.fft.fft2(recon)
    ky = np.fft.fftfreq(recon.shape[0])[:, None]
    kx = np.fft.fftfreq(recon.shape[1])[None, :]

    def residual(d):
        moved = np.fft.ifft2(spec * np.exp(-2j * np.pi * (ky * d[0] + kx * d[1])))
        r = previous_remove_phase_ramp(mt._crop_recon(moved, origin, region), ref)
        s = float(np.real(np.vdot(r, ref)) / max(float(np.vdot(r, r).real), 1e-300))
        return float(np.mean(np.abs(ref - s * r) ** 2))

    x0 = np.asarray(start, dtype=np.float64)
    res = minimize(residual, x0, method="Nelder-Mead",
                   options={"xatol": 1e-3, "fatol": 1e-14, "initial_simplex": x0 + [[0, 0], [0.3, 0], [0, 0.3]]})
    d = res.x if res.fun < residual(x0) and np.all(np.abs(res.x - x0) <= 1.5) else x0
    return float(d[0]), float(d[1])


def previous_evaluate(recon_object, recon_origin, truth_object, positions, N, shift=None):
    """``evaluate`` as it was; ``shift`` (dy, dx), when given, replaces the registration (to measure how much
    each metric moves when the registration is off by its precision). The unchanged helpers are the engine's (the
    FRC window's equality with skimage's is tested on its own)."""
    rec = np.asarray(recon_object).astype(np.complex128)
    truth = np.asarray(truth_object).astype(np.complex128)
    ox, oy = (int(round(float(v))) for v in recon_origin)
    y0, y1, x0, x1 = mt.scanned_region(positions, N, shape=truth.shape)
    y0, x0 = max(y0, oy), max(x0, ox)
    y1, x1 = min(y1, oy + rec.shape[0]), min(x1, ox + rec.shape[1])
    region = (y0, y1, x0, x1)
    t = truth[y0:y1, x0:x1]
    if shift is None:
        coarse = previous_remove_phase_ramp(mt._crop_recon(rec, (ox, oy), region), t)
        dy, dx = mt.register_shift(t, coarse)
        if np.any(coarse != t):
            dy, dx = previous_refine_shift(t, rec, (ox, oy), region, (dy, dx))
    else:
        dy, dx = shift
    if dy or dx:
        rec = mt.apply_shift(rec, dy, dx)
    r = mt._crop_recon(rec, (ox, oy), region)
    amp_r, s = mt.scale_amplitude(np.abs(r), np.abs(t))
    amp_t = np.abs(t)
    r_aligned = previous_remove_phase_ramp(r, t)
    phase_t = np.angle(t)
    dphi = np.angle(r_aligned * np.conj(t))
    phase_r = phase_t + dphi
    return {
        "amplitude": {**mt._image_metrics(amp_r, amp_t, mt.mae(amp_r, amp_t)), "scale": s},
        "phase": mt._image_metrics(mt.phase_to_unit(phase_r), mt.phase_to_unit(phase_t), float(np.mean(np.abs(dphi)))),
        "registration_shift_px": [dy, dx],
        "region": [int(v) for v in region],
    }


def test_fit_phase_plane_equals_previous_lstsq_fit():
    """Same least-squares problem, solved once by SVD (before) and by centred normal equations (now). The design
    is well conditioned (cond ≲ 1e3 on these grids) and the planes span ≲ 1e2 rad, so they agree to ~1e-11 rad."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[:37, :52]
    z = 0.5 * np.exp(1j * (rng.uniform(-0.3, 0.3, (37, 52)) + 0.9 * yy - 1.7 * xx + 2.0))  # wraps many times
    holes = rng.random((37, 52)) > 0.3
    for mask in (None, holes, np.ones((37, 52), bool)):
        assert np.abs(mt.fit_phase_plane(z, mask) - previous_fit_phase_plane(z, mask)).max() < 1e-9
    row = z[:1]  # one row: no gradient along y
    assert np.abs(mt.fit_phase_plane(row) - previous_fit_phase_plane(row)).max() < 1e-9
    ref = rng.uniform(-1, 1, (37, 52))
    assert np.abs(mt.remove_phase_ramp(np.angle(z), ref, holes) - previous_remove_phase_ramp(np.angle(z), ref, holes)).max() < 1e-9


def _fixture_recon(blur, noise, seed):
    """The bundled test fixture's truth, and a recon-like copy of it: sub-pixel shifted, amplitude scaled,
    phase offset and ramped (``_ambiguous_copy``), optionally blurred, with complex noise, on an offset grid."""
    from scipy.ndimage import gaussian_filter

    from engine.fixtures import fixture_path

    with np.load(fixture_path("test.npz")) as z:
        truth, pos = z["objectGuess"], np.stack([z["xcoords"], z["ycoords"]], 1)
    rec = _ambiguous_copy(truth)
    if blur:
        rec = gaussian_filter(rec.real, blur) + 1j * gaussian_filter(rec.imag, blur)
    rng = np.random.default_rng(seed)
    rec = rec + noise * (rng.standard_normal(rec.shape) + 1j * rng.standard_normal(rec.shape))
    return rec[3:149, 5:150], (5, 3), truth, pos


@pytest.mark.parametrize("blur,noise", [(0.0, 0.05), (1.5, 0.2)])
def test_evaluate_matches_previous_implementation(blur, noise):
    """The registration agrees within its stated precision (1/20 px); every metric agrees within the change that
    a registration error of that size causes in the previous implementation (measured here: the previous
    pipeline evaluated with its shift moved by ±1/20 px along y and x), plus float64 round-off."""
    rec, origin, truth, pos = _fixture_recon(blur, noise, seed=12)
    new = mt.evaluate(rec, origin, truth, pos, 64)
    old = previous_evaluate(rec, origin, truth, pos, 64)
    precision = 1.0 / mt.UPSAMPLE_FACTOR
    assert np.abs(np.subtract(new["registration_shift_px"], old["registration_shift_px"])).max() <= precision
    assert new["region"] == old["region"]
    dy, dx = old["registration_shift_px"]
    moved = [previous_evaluate(rec, origin, truth, pos, 64, shift=(dy + a, dx + b))
             for a, b in ((precision, 0), (-precision, 0), (0, precision), (0, -precision))]
    for part in ("amplitude", "phase"):
        for key, base in old[part].items():
            if base is None:  # FRC threshold not crossed: must stay so
                assert new[part][key] is None, (part, key)
                continue
            tol = max(abs(m[part][key] - base) for m in moved if m[part][key] is not None)
            assert abs(new[part][key] - base) <= tol + 1e-9 * abs(base), (part, key, new[part][key], base, tol)


def test_radial_hann_equals_skimage_window():
    """The FRC window is skimage's radial Hann (docs/metrics.md), written out to skip a slow import."""
    from skimage.filters import window

    for side in (1, 2, 7, 64, 123, 146):
        assert np.abs(mt._radial_hann(side) - window("hann", (side, side))).max() < 1e-12, side


def test_registration_stays_within_the_positional_bound():
    """A periodic object correlates with itself one period away; a reconstruction placed by the scan positions
    cannot be off by that much: the shift stays within MAX_SHIFT_FRACTION·N of zero."""
    from engine.metrics import MAX_SHIFT_FRACTION, register_shift

    yy, xx = np.mgrid[:96, :96]
    stripes = np.exp(1j * np.sin(2 * np.pi * xx / 24.0)) * (1 + 0.1 * np.cos(2 * np.pi * yy / 24.0))
    moved = np.roll(stripes, 24, axis=1) * 0.5 + 0.5 * np.roll(stripes, 1, axis=1)  # a period away, and 1 px
    dy, dx = register_shift(stripes, moved, bound=MAX_SHIFT_FRACTION * 64)
    assert abs(dy) <= 8 and abs(dx) <= 8


def test_pixels_no_pattern_saw_are_not_compared():
    """Stitching exact true patches with the probe's weights leaves holes between random positions; with the
    probe known only the lit pixels count, so the exact patches score as exact (NRMSE at the stitch's round-off)."""
    from engine import physics
    from engine.config import SimulationConfig
    from engine.metrics import evaluate
    from engine.simulate import simulate

    arrays = simulate(SimulationConfig(scan_kind="random", n_positions=40, object_size=128, seed=3))
    obj, probe = arrays["objectGuess"], arrays["probeGuess"]
    pos = np.stack([arrays["xcoords"], arrays["ycoords"]], axis=1)
    N = probe.shape[0]
    patches = physics.extract_patches(obj, pos, N)
    stitched, weight = physics.stitch(patches, pos, physics.stitch_weight(probe, N // 2), obj.shape, (0, 0))
    box = evaluate(stitched, (0, 0), obj, pos, N)
    lit = evaluate(stitched, (0, 0), obj, pos, N, probe)
    assert lit["lit_fraction"] < 1.0  # there are holes
    assert box["complex"]["nrmse"] > 0.05  # holes counted as errors
    assert lit["complex"]["nrmse"] < 0.02 and lit["phase"]["ssim"] > box["phase"]["ssim"]
