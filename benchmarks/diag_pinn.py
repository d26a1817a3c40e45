"""Where the PINN's error comes from, in figures (docs/performance.md "Diagnosing the PINN").

    python benchmarks/diag_pinn.py TRAIN.npz [--test HELD_OUT.npz] [--bundle BUNDLE] [--train-epochs 3]

1. The loss of the TRUE object through the model's own physics, against the Poisson noise floor: with the photon
   scale fitted to the data and with the one Pinnacle estimates (engine.scaling), on the network's predicted
   centre only, and after the overlap constraint's merge → re-extract at gridsize 2 and 3. Whatever sits above
   the floor here, no network can remove.
2. The ranges the heads must reach: the largest |O|·(estimated/fitted scale) against ModelConfig.amplitude_max.
3. Per-pattern ambiguities: how far the probe is from the twin condition P(r) = conj(P(−r)) (0: every pattern is
   equally well explained by the object and by its twin conj(O(−r))), and how different a patch is from its twin.
4. With --bundle: the network's input scale, its head outputs on held-out patterns, and how far each predicted
   patch is from the truth and from the truth's twin (a network that cannot tell them apart sits in between); the
   contrast of its amplitude and phase detail against the truth's (slope of predicted on true); and the hidden
   units never positive on those patterns, per layer (with plain ReLU such a unit is dead: no gradient).
5. With --train-epochs (PyTorch): per-layer gradient norms over a short training run.
Nothing is asserted; the figures are printed with the load average.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def deviance(probe, patches, scale, counts) -> float:
    from engine import physics

    lam = physics.forward_intensity(probe, patches, scale).astype(np.float64)
    return physics.poisson_deviance(lam, counts)


def twin(p: np.ndarray) -> np.ndarray:
    """conj(p(−r)) about patch pixel (N//2, N//2)."""
    return np.conj(np.roll(np.flip(p, axis=(-2, -1)), 1, axis=(-2, -1)))


def weighted_distance(a: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per patch: ‖s·a − t‖_w / ‖t‖_w after the best complex factor s (global phase and scale)."""
    s = np.sum(w * np.conj(a) * t, axis=(-2, -1)) / np.maximum(np.sum(w * np.abs(a) ** 2, axis=(-2, -1)), 1e-30)
    r = s[:, None, None] * a - t
    return np.sqrt(np.sum(w * np.abs(r) ** 2, axis=(-2, -1)) / np.sum(w * np.abs(t) ** 2, axis=(-2, -1)))


def physics_floor(ds, n_groups: int = 128) -> None:
    from engine import grouping, physics
    from engine.scaling import compute_scales

    N = ds.N
    counts = ds.measured.astype(np.float64) ** 2
    truth = physics.extract_patches(ds.object, ds.positions, N).astype(np.complex128)
    unit = physics.forward_intensity(ds.probe, truth, 1.0).astype(np.float64)
    fitted = float(np.sqrt(counts.sum() / unit.sum()))
    estimated = compute_scales(ds.measured, ds.probe).photon_scale
    print("1. loss of the true object through the model's physics (Poisson deviance per pixel)")
    print(f"   photon scale: fitted to the data {fitted:.4f}, estimated by engine.scaling {estimated:.4f}")
    print(f"   true patches, fitted scale (the noise floor)        {deviance(ds.probe, truth, fitted, counts):10.4f}")
    print(f"   true patches, estimated scale                       {deviance(ds.probe, truth, estimated, counts):10.4f}")
    centre = truth * physics.center_mask(N, N // 2)
    print(f"   the predicted N/2 centre only, fitted scale         {deviance(ds.probe, centre, fitted, counts):10.4f}")
    for g in (2, 3):
        groups = grouping.make_groups(ds.positions, g, N, None, 0, grouping.default_neighbours(g))
        sel = np.arange(min(n_groups, len(groups)))
        members = groups.indices[sel]
        region, _ = physics.merge_group(centre[members], groups.offsets[sel])
        back = physics.reextract_group(region, groups.offsets[sel], N)
        floor = deviance(ds.probe, truth[members], fitted, counts[members])
        merged = deviance(ds.probe, back, fitted, counts[members])
        print(f"   gridsize {g}: merge → re-extract of the truth      {merged:10.4f}   (floor {floor:.4f} on these groups)")
    print("2. head ranges")
    print(f"   largest |O| the amplitude head must reach: {np.abs(ds.object).max() * fitted / estimated:.4f} "
          f"(|O|max {np.abs(ds.object).max():.4f} × fitted/estimated scale); the phase head spans ±π, the object "
          f"{np.angle(ds.object).min():+.3f}..{np.angle(ds.object).max():+.3f} rad")
    p = ds.probe.astype(np.complex128)
    asym = float(np.linalg.norm(p - twin(p[None])[0]) / np.linalg.norm(p))
    w = np.abs(p) ** 2
    print("3. ambiguities of a single pattern")
    print(f"   probe vs its twin conj(P(−r)): {asym:.3g} (0: the twin conj(O(−r)) of every patch fits its pattern "
          "exactly as well)")
    print(f"   a true patch vs its twin (probe-weighted, after phase/scale): median "
          f"{np.median(weighted_distance(twin(truth), truth, w)):.3f} — what a network that cannot tell them apart "
          "loses per pattern")


def network(bundle_path: str, ds, backend: str) -> None:
    from engine import physics
    from engine.backend_api import PhysicsConstants
    from engine.backends import load_backend
    from engine.bundle import load_bundle
    from engine.pipeline import inference_groups
    from engine.scaling import compute_scales

    b = load_bundle(bundle_path)
    be = load_backend(backend)
    N, cfg = ds.N, b.run_config
    sc = compute_scales(ds.measured, ds.probe)
    consts = PhysicsConstants(ds.probe, b.scales.photon_scale, sc.input_scale, N, cfg.model.channels)
    groups = inference_groups(ds, cfg)
    x = (ds.measured[groups.indices] * np.float32(sc.input_scale)).astype(np.float32)
    pred = be.predict(cfg.model, b.weights, consts, x, groups.offsets, 64, progress=None)[:, 0]
    truth = physics.extract_patches(ds.object, ds.positions[groups.indices[:, 0]], N)
    w = np.abs(ds.probe) ** 2
    d0, d1 = weighted_distance(pred, truth, w), weighted_distance(pred, twin(truth), w)
    centre = physics.center_mask(N, N // 2) > 0
    amp = np.abs(pred)[:, centre]
    print(f"4. network ({bundle_path}, {len(b.history)} epochs, amplitude_max {cfg.model.amplitude_max})")
    print(f"   input: mean total x² per pattern {np.mean(np.sum(x.astype(np.float64) ** 2, axis=(-2, -1))):.1f} "
          f"(target (N/2)² = {(N / 2) ** 2:.0f}), max x {x.max():.1f}, median {np.median(x):.3g}")
    print(f"   amplitude head on the centre: min {amp.min():.3f}, median {np.median(amp):.3f}, max {amp.max():.3f}")
    print(f"   predicted patch vs truth: median {np.median(d0):.3f}; vs the truth's twin {np.median(d1):.3f}; "
          f"closer to the twin: {int(np.sum(d1 < d0))} of {len(d0)} patches")
    ka, ca, kp, cp = contrast(pred, truth, centre & (w > 0.01 * w.max()))
    print(f"   contrast on the lit centre (slope of predicted on true, per-patch means removed; 1 = full contrast): "
          f"amplitude {ka:.3f} (correlation {ca:.3f}), phase {kp:.3f} (correlation {cp:.3f})")
    dead_units(cfg.model, b.weights, x[:128])


def contrast(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> tuple[float, float, float, float]:
    """(amplitude slope, correlation, phase slope, correlation) of the predicted patches against the true ones on
    ``mask``, pooled over patches after removing each patch's mean (and, for the phase, its global phase offset):
    a slope below 1 is detail the network predicts too faintly, whatever its shape."""
    def slope(a: np.ndarray, t: np.ndarray) -> tuple[float, float]:
        a = a - a.mean(axis=1, keepdims=True)
        t = t - t.mean(axis=1, keepdims=True)
        at, tt, aa = float(np.sum(a * t)), float(np.sum(t * t)), float(np.sum(a * a))
        return at / tt, at / np.sqrt(tt * aa)

    p, t = pred[:, mask], truth[:, mask]
    offset = np.exp(-1j * np.angle(np.sum(p * np.conj(t), axis=1, keepdims=True)))  # per-patch global phase
    return (*slope(np.abs(p), np.abs(t)), *slope(np.angle(p * offset * np.conj(t)) + np.angle(t), np.angle(t)))


def dead_units(model_cfg, weights, x: np.ndarray) -> None:
    """Hidden units that are never positive on any of these inputs: with plain ReLU (relu_slope 0) they pass no
    gradient, so they stay dead; counted per layer with PyTorch (the network is the same in both backends)."""
    import torch

    from engine.torch.network import PtychoNet, load_canonical

    net = PtychoNet(model_cfg)
    load_canonical(net, weights)
    pre: dict[str, torch.Tensor] = {}
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.Conv2d) and not name.endswith("head"):
            module.register_forward_hook(lambda m, i, o, name=name: pre.__setitem__(name, o.detach()))
    with torch.no_grad():
        net(torch.from_numpy(x))
    dead = {name: int((~(o > 0).any(dim=(0, 2, 3))).sum()) for name, o in pre.items()}
    total = {name: o.shape[1] for name, o in pre.items()}
    print(f"   units never positive on these {len(x)} patterns (relu_slope {model_cfg.relu_slope}; with 0 they are "
          f"dead): {sum(dead.values())} of {sum(total.values())}")
    print("   " + ", ".join(f"{n.replace('_decoder', 'D')} {dead[n]}/{total[n]}" for n in pre))


def gradient_norms(ds, epochs: int, gridsize: int) -> None:
    import torch

    from engine import grouping
    from engine.config import ModelConfig, RunConfig, TrainingConfig
    from engine.pipeline import prepare_training
    from engine.torch.model import PinnModel
    from engine.weights import init_weights

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    cfg = RunConfig(model=ModelConfig(N=ds.N, n_filters_scale=1, gridsize=gridsize),
                    training=TrainingConfig(epochs=epochs, neighbours=grouping.default_neighbours(gridsize)),
                    backend="torch")
    data, consts = prepare_training(ds, cfg)
    module = PinnModel(cfg, consts, init_weights(cfg.model, 0))
    opt = module.configure_optimizers()
    names = [n for n, _ in module.net.named_parameters() if n.endswith("weight")]
    print(f"5. gradient norms per layer (weights), PyTorch, gridsize {gridsize}, CI size, lr 1e-3")
    print("   " + " ".join(f"{n.replace('_decoder', 'D').replace('.weight', ''):>12s}" for n in names[:12]))
    for epoch in range(epochs):
        norms, losses = [], []
        for sel in grouping.batches(grouping.epoch_order(len(data.train), 0, epoch), 16):
            b = data.batch(data.train, sel)
            opt.zero_grad()
            loss = module.loss(tuple(torch.from_numpy(a) for a in (b.x, b.counts, b.offsets)))
            loss.backward()
            losses.append(float(loss.detach()))
            norms.append([float(p.grad.norm()) for n, p in module.net.named_parameters() if n.endswith("weight")])
            opt.step()
        m = np.median(np.array(norms), axis=0)
        print(f"   epoch {epoch + 1}: mean loss {np.mean(losses):.4g}; median per-step norm: "
              + " ".join(f"{v:12.3g}" for v in m[:12]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train")
    ap.add_argument("--test")
    ap.add_argument("--bundle")
    ap.add_argument("--backend", default="tensorflow")
    ap.add_argument("--train-epochs", type=int, default=0)
    ap.add_argument("--gridsize", type=int, default=1)
    args = ap.parse_args()
    from engine.dataset import load_dataset

    one, five, _ = os.getloadavg()
    print(f"diag_pinn: load average {one:.2f} / {five:.2f}")
    ds = load_dataset(args.train)
    physics_floor(ds)
    if args.bundle:
        network(args.bundle, load_dataset(args.test or args.train), args.backend)
    if args.train_epochs:
        gradient_norms(ds, args.train_epochs, args.gridsize)


if __name__ == "__main__":
    main()
