import pytest

from engine.config import ModelConfig, RunConfig, SimulationConfig, TrainingConfig, from_dict, to_dict
from engine.errors import ConfigError


def test_defaults_follow_spec():
    m = ModelConfig()
    assert (m.N, m.n_filters_scale, m.gridsize) == (64, 2, 1)
    assert m.encoder_filters == (64, 128, 256) and m.decoder_filters == (128, 64)


@pytest.mark.parametrize("cls,kwargs,field", [
    (ModelConfig, {"N": 60}, "N"),
    (ModelConfig, {"gridsize": 0}, "gridsize"),
    (TrainingConfig, {"epochs": 0}, "epochs"),
    (TrainingConfig, {"learning_rate": 2.0}, "learning_rate"),
    (TrainingConfig, {"loss": "l2"}, "loss"),
    (SimulationConfig, {"object_kind": "cat"}, "object_kind"),
    (SimulationConfig, {"nphotons": -1.0}, "nphotons"),
    (RunConfig, {"backend": "jax"}, "backend"),
])
def test_one_clear_error_per_bad_field(cls, kwargs, field):
    with pytest.raises(ConfigError) as err:
        cls(**kwargs)
    assert err.value.key == field


def test_config_is_immutable_and_round_trips():
    cfg = RunConfig(model=ModelConfig(gridsize=2), training=TrainingConfig(epochs=3))
    with pytest.raises(Exception):
        cfg.backend = "torch"  # type: ignore[misc]
    assert from_dict(to_dict(cfg)) == cfg


def test_unknown_keys_refused():
    with pytest.raises(ConfigError):
        from_dict({"model": {"N": 64, "typo": 1}})


def test_a_config_written_before_amplitude_max_reads_as_the_sigmoid_network():
    from engine.config import RunConfig, from_dict, to_dict

    d = to_dict(RunConfig())
    assert d["model"]["amplitude_max"] == 2.0
    del d["model"]["amplitude_max"]  # a bundle from before the field existed
    assert from_dict(d).model.amplitude_max == 1.0


def test_a_config_written_before_relu_slope_reads_as_the_relu_network():
    from engine.config import ModelConfig, RunConfig, from_dict, to_dict

    d = to_dict(RunConfig())
    assert d["model"]["relu_slope"] == 0.1
    assert from_dict(d).model.relu_slope == 0.1  # a new bundle keeps its slope
    del d["model"]["relu_slope"]  # a bundle from before the field existed
    assert from_dict(d).model.relu_slope == 0.0
    with pytest.raises(ConfigError):
        ModelConfig(relu_slope=1.0)


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_relu_slope_changes_the_network_in_each_backend(backend):
    """The slope reaches the network in each backend (that both backends agree at each slope is parity level 1)."""
    import numpy as np

    from engine.config import ModelConfig
    from engine.weights import init_weights

    pytest.importorskip("tensorflow" if backend == "tensorflow" else "torch")
    cfg0, cfg1 = ModelConfig(N=32, n_filters_scale=1, relu_slope=0.0), ModelConfig(N=32, n_filters_scale=1)
    w = init_weights(cfg0, seed=3)
    x = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
    outs = []
    for cfg in (cfg0, cfg1):
        if backend == "torch":
            import torch

            from engine.torch.network import PtychoNet, load_canonical

            net = PtychoNet(cfg)
            load_canonical(net, w)
            with torch.no_grad():
                outs.append(net(torch.from_numpy(x))[0].numpy())
        else:
            from engine.tf.network import build_network, load_canonical

            model = build_network(cfg)
            load_canonical(model, w)
            outs.append(np.asarray(model(x)[0]))
    assert np.abs(outs[0] - outs[1]).max() > 1e-4  # the slope changes the network's output
