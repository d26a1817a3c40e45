"""Cross-backend parity, levels 1 and 2 (docs/parity.md): the same canonical weights and batch in TF and in torch.

Each backend runs in its own child process (engine.parity.probe); this process imports neither framework. The
assertions are the checks of ``pinnacle parity`` itself (engine.parity.checks: level1_checks, level2_checks), so the
command and the suite cannot drift apart. CI size (n_filters_scale 1), N = 64, gridsize 1 and 2.

Level 2 compares what one training step computes — every parameter tensor's gradient, the optimiser's rule on
given gradients, and the update over the components whose gradient is above round-off — never the parameters
after one Adam step elementwise, whose round-off-sized components take a ±lr step with a sign the CPU's kernels
decide (the AVX-512 failure of issue 10). Three deliberately broken PyTorch backends (a sitecustomize import hook
in the child only) show that level 2 catches and names a sign error in one layer's gradient, a dropped loss term
and a wrong Adam β.
"""
from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest

from engine import grouping
from engine.parity import checks as parity_checks
from engine.backend_api import PhysicsConstants, TrainingData
from engine.config import ModelConfig, RunConfig, TrainingConfig
from engine.parity.probe import Case, run_in_child, write_inputs
from engine.parity.report import failure_line
from engine.scaling import compute_scales
from engine.weights import init_weights
from tests.synthetic import make_synthetic

pytestmark = [
    pytest.mark.tf, pytest.mark.torch,
    pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs TensorFlow"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs PyTorch"),
]
N = 64
GRIDSIZES = (1, 2)


def make_case(gridsize: int, seed: int = 0, batch: int = 4) -> Case:
    syn = make_synthetic(N=N, M=16, seed=seed, step=4.0, nphotons=1e6)
    model = ModelConfig(N=N, n_filters_scale=1, gridsize=gridsize)
    cfg = RunConfig(model=model, training=TrainingConfig(seed=seed))
    scales = compute_scales(syn["diffraction"], syn["probe"])
    groups = grouping.make_groups(syn["positions"], gridsize, N, seed=seed)
    data = TrainingData(syn["diffraction"], groups, groups, scales.input_scale)
    consts = PhysicsConstants(syn["probe"], scales.photon_scale, scales.input_scale, N, model.channels)
    weights = init_weights(model, seed)
    return Case(cfg, weights, consts, data.batch(groups, np.arange(batch)),
                parity_checks.given_gradients(weights, seed))


def level2(case: Case, name: str, tf_out, torch_out) -> list[parity_checks.Check]:
    return parity_checks.level2_checks(name, case.weights, case.cfg.training.learning_rate,
                                       parity_checks.reduction_length(case.batch), tf_out, torch_out, case.given)


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """(cases, {backend: outputs}): one child process per backend, all cases in it."""
    tmp = tmp_path_factory.mktemp("parity")
    cases = {f"g{g}": make_case(g) for g in GRIDSIZES}
    write_inputs(tmp / "in.npz", cases)
    outputs = {b: run_in_child(b, tmp / "in.npz", tmp / f"{b}.npz", timeout=600) for b in ("tensorflow", "torch")}
    return cases, outputs, tmp


@pytest.mark.parametrize("gridsize", GRIDSIZES)
def test_level1_same_weights_same_patches_and_loss(probed, gridsize):
    cases, out, _ = probed
    name = f"g{gridsize}"
    tf_out, torch_out = out["tensorflow"][name], out["torch"][name]
    B = len(cases[name].batch)
    assert tf_out.objects.shape == torch_out.objects.shape == (B, gridsize**2, N, N)
    assert np.abs(tf_out.objects).max() > 0.1  # a real prediction, not zeros
    assert all(loss > 0 for loss in torch_out.losses.values())
    checks = parity_checks.level1_checks(name, tf_out, torch_out)
    assert len(checks) == 3 and all(c.passed for c in checks), [failure_line(c) for c in checks]


@pytest.mark.parametrize("gridsize", GRIDSIZES)
def test_level2_gradients_optimiser_and_step_agree(probed, gridsize):
    cases, out, _ = probed
    name = f"g{gridsize}"
    checks = level2(cases[name], name, out["tensorflow"][name], out["torch"][name])
    n_tensors = len(cases[name].weights)
    assert sum(c.subject.startswith("gradient ") for c in checks) == n_tensors  # every tensor's gradient
    assert {c.subject for c in checks} >= {"optimiser rule", "update vector", "update per component", "update size"}
    assert all(c.passed for c in checks), [failure_line(c) for c in checks if not c.passed]


#: Kernel choices of other machines, emulated here: oneDNN and ATen dispatch limited to AVX2 (what an AVX2 CPU
#: runs), and TensorFlow without oneDNN with ATen's non-vectorised kernels (another summation order altogether).
OTHER_KERNELS = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "no-onednn": {"TF_ENABLE_ONEDNN_OPTS": "0", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


@pytest.mark.parametrize("kernels", list(OTHER_KERNELS))
def test_levels_1_and_2_hold_with_another_cpus_kernels(probed, tmp_path, monkeypatch, kernels):
    cases, _, tmp = probed
    for key, value in OTHER_KERNELS[kernels].items():
        monkeypatch.setenv(key, value)
    out = {b: run_in_child(b, tmp / "in.npz", tmp_path / f"{b}.npz", timeout=600) for b in ("tensorflow", "torch")}
    for name, case in cases.items():
        checks = parity_checks.level1_checks(name, out["tensorflow"][name], out["torch"][name])
        checks += level2(case, name, out["tensorflow"][name], out["torch"][name])
        assert all(c.passed for c in checks), [failure_line(c) for c in checks if not c.passed]


def test_gradient_tolerance_is_derived_from_float32_round_off():
    # γ_K = K·u/(1 − K·u) with u = 2⁻²⁴; two backends, cancellation up to 10×
    assert parity_checks.gamma(1) == pytest.approx(2.0**-24, rel=1e-6)
    assert parity_checks.gradient_tolerance(4 * 64 * 64) == pytest.approx(2 * 10 * 16384 * 2.0**-24, rel=1e-3)
    assert parity_checks.gradient_tolerance(4 * 64 * 64) < 0.05  # a sign error (2) or a dropped term (order 1) is far out


# ------------------------------------------------------------------------------------- broken on purpose
HOOK = textwrap.dedent('''
    """Test-only: break engine.torch.{module} right after it is imported (children of this test only)."""
    import importlib.abc
    import importlib.machinery
    import sys


    class _Break(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "engine.torch.{module}":
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
    {patch}

            spec.loader.exec_module = exec_module
            return spec


    sys.meta_path.insert(0, _Break())
''')

BREAKS = {
    # the gradient of one layer's kernel comes out with the wrong sign
    "sign of one gradient": ("network", """
                init = module.PtychoNet.__init__

                def patched(self, cfg):
                    init(self, cfg)
                    self.phase_decoder[0].conv1.weight.register_hook(lambda g: -g)

                module.PtychoNet.__init__ = patched"""),
    # the Poisson deviance without its λ term (the gradient 1 − n/λ becomes −n/λ)
    "dropped loss term": ("physics", """
                import torch

                def deviance(lam, n):
                    lam, n = lam.to(torch.float64), n.to(torch.float64)
                    ratio = torch.where(n > 0, n, torch.ones_like(n)) / (lam + module.LOSS_EPS)
                    return torch.mean(-n + n * torch.log(ratio))

                module.poisson_deviance = deviance
                module.LOSSES["poisson"] = deviance"""),
    # Adam's second-moment decay 0.99 instead of Keras' 0.999
    "wrong Adam beta": ("model", """
                module.ADAM_BETAS = (0.9, 0.99)"""),
}


def _broken_torch(tmp_path, monkeypatch, case: Case, which: str):
    module, patch = BREAKS[which]
    hook = tmp_path / "hook"
    hook.mkdir()
    body = textwrap.indent(textwrap.dedent(patch).strip("\n"), " " * 12)
    (hook / "sitecustomize.py").write_text(HOOK.replace("{module}", module).replace("{patch}", body))
    monkeypatch.setenv("PYTHONPATH", str(hook))
    write_inputs(tmp_path / "in.npz", {"g1": case})
    return run_in_child("torch", tmp_path / "in.npz", tmp_path / "torch.npz", timeout=600)["g1"]


@pytest.mark.parametrize("which", list(BREAKS))
def test_level2_catches_and_names_a_broken_backend(probed, tmp_path, monkeypatch, which):
    cases, out, _ = probed
    case = cases["g1"]
    checks = level2(case, "g1", out["tensorflow"]["g1"], _broken_torch(tmp_path, monkeypatch, case, which))
    failed = {c.subject for c in checks if not c.passed}
    if which == "sign of one gradient":
        # named: that tensor's gradient and nothing upstream of it (its own gradient is flipped, not the signal)
        assert "gradient phase_decoder.0.conv1.weight" in failed
        assert not any(s.startswith("gradient ") and "phase_decoder.0.conv1.weight" not in s for s in failed)
        (bad,) = [c for c in checks if c.subject == "gradient phase_decoder.0.conv1.weight"]
        assert bad.value > 1.0  # an order-1 error (2 for a pure sign flip), not round-off
        assert "phase_decoder.0.conv1.weight" in failure_line(bad)
    elif which == "dropped loss term":
        assert sum(s.startswith("gradient ") for s in failed) >= len(case.weights) // 2  # every path to the loss
    else:
        assert "optimiser rule" in failed  # named
        assert not any(s.startswith("gradient ") for s in failed), failed  # the gradients are right; the rule is not
