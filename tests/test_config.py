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
