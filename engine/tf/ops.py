"""The level-0 parity ops of engine/tf/physics.py and engine/tf/refine.py: engine.physics' and engine.refine's
signatures, numpy in and numpy out (built by engine.level0.level0_ops; eager, for tests and the parity report)."""
from __future__ import annotations

import numpy as np

from engine.tf.framework import tf  # first: imports TF without matplotlib.pyplot
from engine.level0 import level0_ops
from engine.tf import physics


def tensor(a, dtype) -> tf.Tensor:
    """``a`` (an array or a scalar) as a constant of numpy dtype ``dtype``."""
    return tf.constant(np.asarray(a, dtype=dtype))


(fourier_shift, merge_group, reextract_group, forward_intensity, poisson_deviance, amplitude_mae,
 refine_patches, refine_gradients) = level0_ops(physics, "engine.tf.refine", tensor)
