"""Beamline file formats: CXI and Ptychodus' HDF5 files in, CXI / Ptychodus / NPZ out (docs/data.md).

``load_scan(path, options)`` reads an HDF5 scan (told by content: a CXI file, a Ptychodus ``diffraction.h5`` with
its ``product.h5``, or a directory holding them) into the same validated ``engine.dataset.Dataset`` an NPZ gives;
``engine.dataset.load_dataset`` calls it for anything that is not a zip. ``save_scan(path, ds)`` writes NPZ, CXI or
a Ptychodus pair by the output's name. This module imports no h5py at import time (``pinnacle --help`` stays fast)
and nothing from ``engine.dataset`` (which imports ``engine.formats.geometry``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from engine.errors import InputError
from engine.formats.geometry import Geometry, ScanOptions, resolve

#: What ``save_scan`` writes, by the output's name.
OUTPUT_KINDS = {".npz": "npz", ".cxi": "cxi", ".h5": "ptychodus", ".hdf5": "ptychodus"}


# ------------------------------------------------------------------------------------------------- read
def sniff(path: Path, source: str) -> str:
    """"cxi" | "ptychodus" (diffraction.h5) | "product" (a product file only), by content."""
    from engine.formats import cxi, h5, ptychodus

    with h5.open_h5(path, source) as f:
        if ptychodus.is_diffraction(f):
            return "ptychodus"
        if cxi.is_cxi(f):
            return "cxi"
        if ptychodus.is_product(f):
            return "product"
        keys = sorted(f.keys())[:8]
    raise InputError(source, "file", f"expected a CXI file (/entry_1) or Ptychodus diffraction.h5 (patterns, indexes)"
                     f"; this HDF5 file holds {keys or 'nothing'}")


def load_scan(path: str | Path, options: ScanOptions | None = None, *, require_probe: bool = False):
    """An HDF5 scan (CXI, Ptychodus) as a validated Dataset; InputError naming the HDF5 path that is missing."""
    from engine.formats import cxi, ptychodus
    from engine.formats.assemble import assemble

    options = options or ScanOptions()
    path = Path(path)
    if path.is_dir():
        path = path / ptychodus.DIFFRACTION_FILE
    source = str(path)
    kind = sniff(path, source)
    if kind == "product":
        raise InputError(source, "patterns", "expected diffraction patterns; this is a Ptychodus product (positions, "
                         "probe, object): pass its diffraction.h5, or give this file as --product / --probe-from")
    if kind == "cxi":
        diff, product = cxi.read_cxi(path, source)
        if options.product is not None:
            product = read_product_file(options.product, "--product")
    else:
        diff = ptychodus.read_diffraction(path, source)
        pfile = Path(options.product) if options.product else ptychodus.companion_product(path)
        if not pfile.is_file():
            raise InputError(str(pfile), "file", "expected Ptychodus' product.h5 (positions, probe, energy, distance) "
                             f"next to {path.name} (or pass --product FILE); nothing is at this path")
        product = read_product_file(pfile, "--product" if options.product else None)
    probe_file = read_product_file(options.probe, "--probe-from", need_probe=True) if options.probe else None
    return assemble(diff, product, options, require_probe=require_probe, source=source, probe_file=probe_file)


def read_product_file(path: str | Path, option: str | None, *, need_probe: bool = False):
    """The product part (positions, probe, object, energy, distance) of a Ptychodus product.h5, a CXI file or an
    NPZ (probeGuess only); ``option`` names the command-line option that gave the file, for messages."""
    from engine.formats import cxi, h5, ptychodus
    from engine.formats.parts import ProductParts

    p, source = Path(path), str(path)
    if not p.is_file():
        raise InputError(option or source, source, "expected an existing file (NPZ, CXI or Ptychodus product.h5)")
    if not h5.is_hdf5(p):
        from engine.dataset import _read_npz

        arrays = _read_npz(p, source)
        if "probeGuess" not in arrays:
            raise h5.missing(source, "probeGuess", "a probe (N, N)")
        return ProductParts(source=source, probe=arrays["probeGuess"], probe_path="probeGuess")
    with h5.open_h5(p, source) as f:
        is_cxi = cxi.is_cxi(f)
    # anything else is read as Ptychodus' product.h5, whose reader names each key it lacks
    parts = cxi.read_cxi(p, source, need_data=False)[1] if is_cxi else ptychodus.read_product(p, source)
    if need_probe and parts.probe is None:
        raise h5.missing(source, parts.probe_path, "a probe")
    return parts


def apply_options(ds, options: ScanOptions, *, require_probe: bool = False):
    """Command-line options on an NPZ scan: geometry overrides and a probe from another file."""
    source = ds.source
    if options.crop is not None and options.crop != ds.N:
        raise InputError("--crop", str(options.crop), f"expected {ds.N} or nothing for an NPZ scan ({source} holds "
                         f"{ds.N}x{ds.N} patterns; the crop applies to CXI and Ptychodus detectors)")
    if options.product is not None:
        raise InputError("--product", options.product, f"expected a CXI or Ptychodus scan ({source} is an NPZ, which "
                         "holds its own positions)")
    g = ds.geometry
    given = {"energy": options.energy_ev, "distance": options.distance_m, "detector pixel": options.detector_pixel_m}
    if any(v is not None for v in given.values()):
        pick = lambda o, v: o if o is not None else v  # noqa: E731
        new = resolve(ds.N, pick(options.energy_ev, g.energy_ev), pick(options.distance_m, g.distance_m),
                      pick(options.detector_pixel_m, g.detector_pixel_m),
                      g.object_pixel_m if g.source == "stated" else None,
                      overridden=tuple(k for k, v in given.items() if v is not None))
        g = replace(new, origin_m=g.origin_m, notes=g.notes)
    probe = ds.probe
    if options.probe is not None:
        parts = read_product_file(options.probe, "--probe-from", need_probe=True)
        from engine.formats.assemble import fit_probe

        probe, notes = fit_probe(parts, ds.N, g, (ds.N, ds.N))
        g = replace(g, notes=g.notes + tuple(notes))
    if require_probe and probe is None:
        raise InputError(source, "probeGuess", "expected key 'probeGuess' ((N, N) complex64 probe), required for "
                         "training; it is missing (or pass --probe-from FILE)")
    return replace(ds, geometry=g, probe=probe)


# ------------------------------------------------------------------------------------------------ write
def output_kind(path: str | Path) -> str:
    """npz | cxi | ptychodus from the output's name (a directory or diffraction.h5 is a Ptychodus pair)."""
    p = Path(path)
    kind = OUTPUT_KINDS.get(p.suffix.lower())
    if kind is None and (p.is_dir() or p.suffix == ""):
        kind = "ptychodus"
    if kind is None:
        raise InputError(str(path), None, "expected an output ending in .npz, .cxi, or a directory / diffraction.h5 "
                         "for Ptychodus' diffraction.h5 + product.h5")
    if kind == "ptychodus" and p.suffix and p.name != "diffraction.h5":
        raise InputError(str(path), None, "expected a directory or a path named diffraction.h5 (Ptychodus' layout: "
                         "diffraction.h5 + product.h5 side by side)")
    return kind


def save_scan(path: str | Path, ds) -> list[Path]:
    """Write ``ds`` as NPZ, CXI or a Ptychodus pair (by the name of ``path``); returns the files written.

    CXI and Ptychodus files store positions in metres: a scan without a known geometry is refused (InputError)
    rather than written with an invented pixel size.
    """
    from engine.dataset import from_arrays, save_dataset

    kind = output_kind(path)
    p = Path(path)
    if kind == "npz":
        save_dataset(p, ds)
        return [p]
    checked = from_arrays(ds.arrays(), str(path))  # the contract holds before anything is written
    checked = replace(checked, geometry=replace(ds.geometry, notes=()), format=ds.format)
    require_geometry(ds, kind)
    if kind == "cxi":
        from engine.formats.cxi import write_cxi

        return [write_cxi(p, ds=checked)]
    from engine.formats.ptychodus import write_pair

    if p.suffix:
        p = p.parent
    if ds.probe is None:
        raise InputError(ds.source, "probeGuess", "expected a probe: Ptychodus' product.h5 always holds one")
    p.mkdir(parents=True, exist_ok=True)
    return list(write_pair(p, checked, scan_product(checked)))


def scan_product(ds):
    """The product.h5 of a scan: its probe, positions and ground-truth object, or (Ptychodus requires an object) a
    unit placeholder over the scan, marked as such so that Pinnacle never takes it for ground truth."""
    import numpy as np

    from engine.formats.cxi import product_of

    p = product_of(ds)
    if ds.object is not None:
        return p
    pos, N = ds.positions, ds.N
    lo = np.floor(pos.min(axis=0)).astype(int) - N // 2
    hi = np.ceil(pos.max(axis=0)).astype(int) + N - N // 2
    ones = np.ones((int(hi[1] - lo[1]), int(hi[0] - lo[0])), np.complex64)
    return replace(p, object=ones, object_origin_px=(int(lo[0]), int(lo[1])), object_role="placeholder")


def require_geometry(ds, kind: str) -> None:
    g: Geometry = ds.geometry
    names = {"cxi": "CXI", "ptychodus": "Ptychodus HDF5"}
    if not g.known:
        raise InputError(ds.source, "geometry", f"expected the photon energy, detector distance and detector pixel "
                         f"(--energy-ev, --distance-m, --detector-pixel-m) to write {names[kind]}: it stores "
                         "positions in metres, and this scan states no pixel size")
    if kind == "ptychodus" and not g.detector_pixel_m:
        raise InputError(ds.source, "geometry", "expected the detector pixel size (--detector-pixel-m): Ptychodus' "
                         "diffraction.h5 stores it")
