"""engine/torch/refine.py specifics (the shared refinement tests, both backends: tests/test_refine.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[2]

# One step on the fixture in a fresh interpreter, then which heavy modules the step pulled in.
_FIRST_STEP = """
import sys
import numpy as np
from engine import refine as R
from engine.dataset import load_dataset
from engine.pipeline import stitch_grid
from engine.scaling import compute_scales
import engine.torch.refine as T

ds = load_dataset("fixtures/test.npz")
cfg = R.RefineConfig()
shape, origin = stitch_grid(ds)
s = np.float32(compute_scales(ds.measured, ds.probe).photon_scale)
problem = R.make_problem(ds.measured ** 2, ds.positions, ds.probe * s, shape, origin, cfg.margin, valid=ds.valid)
obj = T._as_tensor(R.start_object(shape, cfg.margin), "cpu")
probe = T._as_tensor(ds.probe * s, "cpu")
before = "sympy" in sys.modules
T.Refiner(problem, cfg).step(obj, probe, np.arange(8), update_probe=True)
print(before, "sympy" in sys.modules)
"""


def test_the_first_refinement_step_does_not_import_sympy():
    """torch.autograd.grad with ``grad_outputs`` imports torch.fx's symbolic shapes and sympy on its first call
    (0.4 s: most of a short refinement's first epoch); the step takes the same product as a scalar's gradient."""
    proc = subprocess.run([sys.executable, "-c", _FIRST_STEP], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "False"]
