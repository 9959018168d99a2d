import pytest

from training.config import TrainConfig
from training.errors import ConfigError


def test_default_config_is_valid() -> None:
    TrainConfig().validate()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dim": 0}, "dim"),
        ({"window": 0}, "window"),
        ({"negative": 0}, "negative"),
        ({"epochs": 0}, "epochs"),
        ({"sample": -1.0}, "sample"),
        ({"lr": 0.0}, "lr"),
        ({"min_lr": 0.5}, "min_lr"),
        ({"min_n": 5, "max_n": 3}, "min_n"),
    ],
)
def test_invalid_settings_raise_config_error_naming_the_setting(
    changes: dict[str, object], message: str
) -> None:
    config = TrainConfig(**changes)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        config.validate()


def test_config_round_trips_through_a_dict_and_ignores_unknown_keys() -> None:
    config = TrainConfig(architecture="cbow", dim=32, lr=0.03)
    values = {**config.to_dict(), "from_a_future_version": True}
    assert TrainConfig.from_dict(values) == config


@pytest.mark.parametrize(("architecture", "lr"), [("skip-gram", 0.025), ("cbow", 0.05)])
def test_learning_rate_defaults_to_word2vecs_for_the_architecture(
    architecture: str, lr: float
) -> None:
    config = TrainConfig(architecture=architecture)  # type: ignore[arg-type]
    assert config.start_lr == lr
    assert config.to_dict()["lr"] == lr


def test_a_set_learning_rate_wins_over_the_architectures_default() -> None:
    assert TrainConfig(architecture="cbow", lr=0.01).start_lr == 0.01
