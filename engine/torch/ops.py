"""The level-0 parity ops of engine/torch/physics.py and engine/torch/refine.py: engine.physics' and engine.refine's
signatures, numpy in and numpy out (built by engine.level0.level0_ops; the physics ops under inference_mode)."""
from __future__ import annotations

import numpy as np
import torch

from engine.level0 import level0_ops
from engine.torch import physics


def tensor(a, dtype) -> torch.Tensor:
    """``a`` (an array or a scalar) as a CPU tensor of numpy dtype ``dtype`` (C-ordered: from_numpy shares it)."""
    return torch.from_numpy(np.asarray(a, dtype=dtype, order="C"))


(fourier_shift, merge_group, reextract_group, forward_intensity, poisson_deviance, amplitude_mae,
 refine_patches, refine_gradients) = level0_ops(physics, "engine.torch.refine", tensor, torch.inference_mode)
