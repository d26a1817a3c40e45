"""The network of engine/weights.py as a Keras 3 functional model whose layers carry the canonical parameter names.

engine/weights.py is normative. Keras convolutions run channels-last (the layout oneDNN is fastest with on CPU),
so the model takes the channels-first ``(B, C, N, N)`` input of the backend API, transposes once at the input and
once at each output. Layer ``encoder.0.conv0`` holds canonical ``encoder.0.conv0.weight``/``.bias``; its HWIO
kernel converts through engine.weights.to_hwio/from_hwio — the only place that transpose lives.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from engine.tf.framework import keras  # first: imports TF without matplotlib.pyplot

from keras import layers, ops  # noqa: E402  (after the framework import above)
from engine.config import ModelConfig
from engine.weights import from_hwio, require_fit, to_hwio


def _hidden(slope: float):
    """The hidden layers' activation: leaky ReLU of ``slope`` (0: ReLU, exactly as bundles before the slope)."""
    return functools.partial(keras.activations.leaky_relu, negative_slope=float(slope)) if slope else "relu"


def _conv(name: str, filters: int, activation) -> layers.Conv2D:
    return layers.Conv2D(filters, 3, strides=1, padding="same", use_bias=True, activation=activation,
                         data_format="channels_last", name=name)


def _block(x, prefix: str, filters: int, slope: float):
    """act(conv0) → act(conv1), act the leaky ReLU of ``slope``; the caller pools or upsamples."""
    x = _conv(f"{prefix}.conv0", filters, _hidden(slope))(x)
    return _conv(f"{prefix}.conv1", filters, _hidden(slope))(x)


def build_network(cfg: ModelConfig) -> keras.Model:
    """x (B, C, N, N) float32 → (amplitude, phase), each (B, C, N, N): predicted N/2 centre, zero elsewhere."""
    N, C = cfg.N, cfg.channels
    inp = keras.Input(shape=(C, N, N), dtype="float32", name="x")
    x = layers.Permute((2, 3, 1), name="to_channels_last")(inp)
    for i, f in enumerate(cfg.encoder_filters):
        x = _block(x, f"encoder.{i}", f, cfg.relu_slope)
        x = layers.MaxPooling2D(2, name=f"encoder.{i}.pool")(x)
    bottleneck = x
    outputs = []
    for head, activation in (("amp", "sigmoid"), ("phase", "tanh")):
        y = bottleneck
        for j, f in enumerate(cfg.decoder_filters):
            y = _block(y, f"{head}_decoder.{j}", f, cfg.relu_slope)
            y = layers.UpSampling2D(2, interpolation="nearest", name=f"{head}_decoder.{j}.upsample")(y)
        y = _conv(f"{head}_head", C, activation=activation)(y)
        if head == "phase":
            y = layers.Rescaling(math.pi, name="phase_scale")(y)  # π·tanh
        else:
            y = layers.Rescaling(float(cfg.amplitude_max), name="amp_scale")(y)  # amplitude_max·sigmoid
        n = N // 2
        p = (N - n) // 2
        y = layers.ZeroPadding2D(((p, N - n - p), (p, N - n - p)), name=f"{head}_pad")(y)
        outputs.append(layers.Permute((3, 1, 2), name=f"{head}_channels_first")(y))
    return keras.Model(inp, outputs, name="ptychonet")


def conv_layers(model: keras.Model) -> dict[str, layers.Conv2D]:
    """Canonical layer name → Conv2D layer."""
    return {layer.name: layer for layer in model.layers if isinstance(layer, layers.Conv2D)}


def load_canonical(model: keras.Model, weights: dict[str, np.ndarray], cfg: ModelConfig | None = None) -> None:
    """Copy canonical numpy weights into ``model`` (exact; refuses anything but the canonical tensors)."""
    require_fit(cfg, weights)
    convs = conv_layers(model)
    names = {f"{layer}.{part}" for layer in convs for part in ("weight", "bias")}
    if names != set(weights):
        odd = sorted(names.symmetric_difference(weights))[0]
        raise ValueError(f"weights do not fit the model: tensor {odd} is missing or unexpected")
    for name, layer in convs.items():
        kernel = to_hwio(np.asarray(weights[f"{name}.weight"], np.float32))
        bias = np.asarray(weights[f"{name}.bias"], np.float32)
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)


def canonical_variables(model: keras.Model) -> list[tuple[str, "keras.Variable"]]:
    """[(canonical name, variable)] in engine.weights.parameter_specs order (kernels are HWIO variables)."""
    out = []
    for name, layer in conv_layers(model).items():
        out += [(f"{name}.weight", layer.kernel), (f"{name}.bias", layer.bias)]
    return out


def canonical_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """The model's parameters as canonical numpy arrays (float32 copies, OIHW), in parameter_specs order."""
    convs = conv_layers(model)
    out: dict[str, np.ndarray] = {}
    for name, layer in convs.items():
        out[f"{name}.weight"] = from_hwio(np.asarray(ops.convert_to_numpy(layer.kernel), np.float32))
        out[f"{name}.bias"] = np.array(ops.convert_to_numpy(layer.bias), np.float32)
    return out

