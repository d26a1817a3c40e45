"""`pinnacle reconstruct`'s request, checked before the run exists: the method, the bundle, the refinement options
and the scan (engine/reconstruction.py runs it). Every bad input is an InputError naming the option or file."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import ConfigError, InputError

METHODS = ("pinn", "iterative", "hybrid")


@dataclass(frozen=True)
class ReconstructRequest:
    """What `pinnacle reconstruct` was asked, checked (``check_request``) before the run exists."""

    data: str
    method: str
    bundle: str | None
    backend: str
    refine: object  # engine.refine.RefineConfig
    batch_size: int | None = None


def default_method(bundle: str | None) -> str:
    return "hybrid" if bundle else "iterative"


def check_request(data: str, method: str | None, bundle: str | None, backend: str | None, epochs: int | None,
                  refine_probe: bool, batch_size: int | None = None, options=None, regularization: float | None = None,
                  phase_momentum: float | None = None):
    """(request, dataset, bundle or None) — every bad input is an InputError naming the option or file."""
    from engine import refine as R
    from engine.backends import canonical_name
    from engine.bundle import load_bundle
    from engine.config import InferenceConfig
    from engine.dataset import load_dataset
    from engine.pipeline import require_trained

    method = method or default_method(bundle)
    if method not in METHODS:
        raise InputError("--method", method, f"one of {', '.join(METHODS)}")
    if method in ("pinn", "hybrid") and not bundle:
        raise InputError("--bundle", None, f"a model bundle for --method {method} (the network's reconstruction); "
                         "without one use --method iterative")
    given = [o for o, v in (("--epochs", epochs), ("--refine-probe", refine_probe or None),
                            ("--regularization", regularization), ("--phase-momentum", phase_momentum))
             if v is not None]
    if method == "pinn" and given:
        raise InputError(given[0], None, "no refinement options with --method pinn (use hybrid or iterative)")
    name = canonical_name(backend)
    try:
        chosen = {k: v for k, v in (("epochs", epochs), ("regularization", regularization),
                                    ("low_frequency_gain", phase_momentum)) if v is not None}
        cfg = R.RefineConfig(**chosen, refine_probe=refine_probe)
    except ConfigError as exc:
        option = {"low_frequency_gain": "phase-momentum"}.get(exc.key, exc.key)
        raise InputError(f"--{option}", None, exc.expected) from None
    if batch_size is not None:
        try:
            InferenceConfig(batch_size=batch_size)
        except ConfigError as exc:
            raise InputError("--batch-size", None, exc.expected) from None
    b = None
    if bundle:
        b = load_bundle(bundle)
        require_trained(b, bundle)
    ds = load_dataset(data, require_probe=method == "iterative", options=options)
    if b is not None and ds.N != b.run_config.model.N:
        raise InputError(str(data), "diffraction", f"expected patterns of N = {b.run_config.model.N} (the bundle's "
                         f"N), got {ds.N}")
    if method != "pinn":
        check_refinable(data, ds, cfg)
        cfg = R.for_dose(cfg, ds.measured, keep_regularization=regularization is not None,
                         keep_phase_momentum=phase_momentum is not None)
    return ReconstructRequest(str(data), method, bundle, name, cfg, batch_size), ds, b


def check_refinable(source: str, ds, cfg) -> None:
    """Every position of ``ds`` inside the grid the refinement of ``cfg`` would build (an InputError naming
    ``source`` otherwise)."""
    from engine import refine as R
    from engine.pipeline import stitch_grid

    shape, origin = stitch_grid(ds)
    probe = ds.probe if ds.probe is not None else np.ones((ds.N, ds.N), np.complex64)
    try:
        R.make_problem(np.zeros((1, ds.N, ds.N), np.float32), ds.positions[:1], probe, shape, origin, cfg.margin)
    except ValueError as exc:
        raise InputError(source, "xcoords", f"expected positions inside the reconstruction grid ({exc})") from None
