"""Against the real client: Ptychodus 1.7's own loaders read Pinnacle's product.h5, product.cxi and scan files back
with the same object, probe, positions (metres) and geometry; Pinnacle reads the CXI and HDF5 files that
Ptychodus' writers make. Ptychodus is a test dependency installed without its application dependencies (its
readers need only h5py and numpy); without it this file skips and says why.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("ptychodus.api.io", reason="ptychodus is not installed (pip install --no-deps ptychodus==1.7.0, "
                    "see requirements-test-nodeps.txt): these tests read files with Ptychodus' own loaders")

from ptychodus.api.diffraction import (DiffractionDatasetLayoutNode, DiffractionMetadata,  # noqa: E402
                                       SimpleDiffractionArray, SimpleDiffractionDataset)
from ptychodus.api.geometry import ImageExtent, PixelGeometry  # noqa: E402
from ptychodus.api.io import load_diffraction_data, load_product, save_diffraction_data, save_product  # noqa: E402
from ptychodus.api.object import Object, ObjectCenter  # noqa: E402
from ptychodus.api.probe import ProbeSequence  # noqa: E402
from ptychodus.api.probe_positions import ProbePosition, ProbePositionSequence  # noqa: E402
from ptychodus.api.product import Product, ProductMetadata  # noqa: E402
from ptychodus.plugins.cxi_file import CXIDiffractionFileReader, CXIDiffractionFileWriter, CXIProductFileIO  # noqa: E402

from engine.dataset import load_dataset  # noqa: E402
from engine.formats import save_scan  # noqa: E402
from engine.formats.cxi import counts_of  # noqa: E402
from engine.formats.geometry import ScanOptions, center_of_object, to_metres  # noqa: E402
from engine.product import write_product, write_product_cxi  # noqa: E402
from tests.dataset_cases import DETECTOR_PIXEL_M, DISTANCE_M, ENERGY_EV, simulated_scan  # noqa: E402

DX = 20e-9  # λz/(Np) of the test geometry at N = 32


@pytest.fixture(scope="module")
def scan():
    ds = simulated_scan()
    return replace(ds, geometry=replace(ds.geometry, origin_m=(1.5e-6, -2.25e-6)))  # a frame not at 0


def _recon_args(scan, origin=(3, 5)):
    """A reconstruction-shaped product: a sub-grid of the object whose pixel (0, 0) is object pixel ``origin``."""
    x0, y0 = origin
    obj = scan.object[y0:y0 + 60, x0:x0 + 64]
    return dict(obj=obj, origin=origin, probe=scan.probe, positions=scan.positions, geometry=scan.geometry,
                name="run-1", photon_count=scan.nphotons, costs=np.array([2.0, 1.25, np.nan], np.float32),
                provenance={"backend": "tensorflow"})


def _check_product(product, scan, args):
    x0, y0 = args["origin"]
    np.testing.assert_array_equal(product.object_.get_array()[0], args["obj"])
    np.testing.assert_array_equal(product.probes.get_array()[0, 0], scan.probe)
    pos_m = to_metres(scan.positions, scan.geometry.origin_m, DX)
    np.testing.assert_allclose(product.probe_positions.get_coordinates_x_m(), pos_m[:, 0], rtol=0, atol=1e-18)
    np.testing.assert_allclose(product.probe_positions.get_coordinates_y_m(), pos_m[:, 1], rtol=0, atol=1e-18)
    geometry = product.object_.get_geometry()
    assert geometry.pixel_width_m == pytest.approx(DX, rel=1e-12) and geometry.pixel_height_m == geometry.pixel_width_m
    # Ptychodus places each position on the object array exactly where Pinnacle stitched it
    np.testing.assert_allclose(geometry.map_probe_positions_to_object_x_px(product.probe_positions),
                               scan.xcoords - x0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(geometry.map_probe_positions_to_object_y_px(product.probe_positions),
                               scan.ycoords - y0, rtol=0, atol=1e-6)
    assert product.metadata.photon_energy_eV == pytest.approx(ENERGY_EV, rel=1e-12)
    assert product.metadata.detector_distance_m == DISTANCE_M
    assert product.probes.get_pixel_geometry().width_m == pytest.approx(DX, rel=1e-12)
    losses = [(int(v.epoch), float(v.value)) for v in product.losses]
    assert losses[:2] == [(0, 2.0), (1, 1.25)] and len(losses) == 3 and np.isnan(losses[2][1])


def test_ptychodus_reads_pinnacles_product_h5(tmp_path, scan):
    args = _recon_args(scan)
    _check_product(load_product(write_product(tmp_path / "product.h5", **args)), scan, args)


def test_ptychodus_reads_pinnacles_product_cxi(tmp_path, scan):
    args = _recon_args(scan)
    _check_product(CXIProductFileIO().read(write_product_cxi(tmp_path / "product.cxi", **args)), scan, args)


def test_ptychodus_reads_pinnacles_scan_cxi(tmp_path, scan):
    valid = np.ones((32, 32), bool)
    valid[0, :] = False
    ds = replace(scan, valid=valid)
    path = save_scan(tmp_path / "scan.cxi", ds)[0]
    diff = CXIDiffractionFileReader().read(path)
    meta = diff.get_metadata()
    assert meta.photon_energy_eV == pytest.approx(ENERGY_EV, rel=1e-12)
    assert meta.detector_distance_m == DISTANCE_M and meta.detector_pixel_geometry.width_m == DETECTOR_PIXEL_M
    patterns = np.concatenate([a.get_patterns() for a in diff])
    np.testing.assert_array_equal(patterns, counts_of(scan.diffraction))
    np.testing.assert_array_equal(diff.get_bad_pixels(), ~valid)
    product = CXIProductFileIO().read(path)  # the same file also holds the probe, the object and the positions
    np.testing.assert_array_equal(product.object_.get_array()[0], scan.object)
    np.testing.assert_allclose(product.probe_positions.get_coordinates_x_m(),
                               to_metres(scan.positions, scan.geometry.origin_m, DX)[:, 0], rtol=0, atol=1e-18)


def test_ptychodus_reads_pinnacles_hdf5_pair(tmp_path, scan):
    d, p = save_scan(tmp_path / "pair", scan)
    data = load_diffraction_data(d)
    np.testing.assert_array_equal(data._patterns, counts_of(scan.diffraction))
    assert data.get_pixel_geometry().width_m == DETECTOR_PIXEL_M
    product = load_product(p)
    np.testing.assert_array_equal(product.object_.get_array()[0], scan.object)
    assert product.metadata.photon_energy_eV == ENERGY_EV


# ------------------------------------------------------------------------------- written by Ptychodus
def _ptychodus_product(scan) -> Product:
    pos_m = to_metres(scan.positions, scan.geometry.origin_m, DX)
    cx, cy = center_of_object(scan.geometry.origin_m, (0, 0), scan.object.shape, DX)
    return Product(
        metadata=ProductMetadata(name="ptychodus", comments="", detector_distance_m=DISTANCE_M,
                                 photon_energy_eV=ENERGY_EV, probe_photon_count=0.0, exposure_time_s=0.0,
                                 mass_attenuation_m2_per_kg=0.0, tomography_angle_deg=0.0),
        probe_positions=ProbePositionSequence([ProbePosition(i, x, y) for i, (x, y) in enumerate(pos_m)]),
        probes=ProbeSequence(scan.probe.astype(np.complex64), None, PixelGeometry(DX, DX)),
        object_=Object(scan.object.astype(np.complex64), PixelGeometry(DX, DX), ObjectCenter(cx, cy)),
        losses=[])


def _same_scan(got, scan, valid=None):
    np.testing.assert_array_equal(got.diffraction, scan.diffraction)
    np.testing.assert_allclose(got.positions, scan.positions, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got.probe, scan.probe)
    np.testing.assert_array_equal(got.object, scan.object)
    assert got.pixel_size_m == pytest.approx(DX, rel=1e-12)
    assert got.geometry.energy_ev == pytest.approx(ENERGY_EV, rel=1e-12)
    assert (got.valid is None) if valid is None else np.array_equal(got.valid, valid)


def test_pinnacle_reads_a_cxi_written_by_ptychodus(tmp_path, scan):
    counts = counts_of(scan.diffraction)
    bad = np.zeros((32, 32), bool)
    bad[7, 9] = True
    meta = DiffractionMetadata(num_patterns_per_array=[scan.M], pattern_dtype=counts.dtype,
                               detector_extent=ImageExtent(32, 32), detector_distance_m=DISTANCE_M,
                               detector_pixel_geometry=PixelGeometry(DETECTOR_PIXEL_M, DETECTOR_PIXEL_M),
                               photon_energy_eV=ENERGY_EV)
    dataset = SimpleDiffractionDataset(meta, DiffractionDatasetLayoutNode.create_root(),
                                       [SimpleDiffractionArray("scan", np.arange(scan.M), counts)], bad)
    CXIDiffractionFileWriter().write(tmp_path / "diffraction.cxi", dataset)
    CXIProductFileIO().write(tmp_path / "product.cxi", _ptychodus_product(scan))
    got = load_dataset(tmp_path / "diffraction.cxi", require_probe=True,
                       options=ScanOptions(product=str(tmp_path / "product.cxi")))
    assert got.format == "cxi"
    _same_scan(got, scan, valid=~bad)


def test_pinnacle_reads_an_hdf5_pair_written_by_ptychodus(tmp_path, scan):
    from ptychodus.api.assemble import AssembledDiffractionData

    counts = counts_of(scan.diffraction)
    save_diffraction_data(tmp_path / "diffraction.h5", AssembledDiffractionData(
        np.arange(scan.M), counts, PixelGeometry(DETECTOR_PIXEL_M, DETECTOR_PIXEL_M), np.zeros((32, 32), bool)))
    save_product(tmp_path / "product.h5", _ptychodus_product(scan))
    got = load_dataset(tmp_path)
    assert got.format == "ptychodus"
    _same_scan(got, scan)
