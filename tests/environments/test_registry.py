"""Registry: every id, JAX vs envpool, and the unknown-id error with suggestions."""
import pytest

import environments
from environments import registry

# Listing envpool's ids imports envpool.
pytestmark = pytest.mark.envpool


def test_registered_ids_hold_envpool_and_jax_ids():
    ids = environments.registered_ids()
    for env_id in ("Pong-v5", "CartPole-v1", "Breakout-MinAtar", "MinAtar/Breakout",
                   "gymnax/CartPole-v1"):
        assert env_id in ids
    assert list(ids) == sorted(set(ids))


@pytest.mark.parametrize("env_id, expected", [
    ("Breakout-MinAtar", True), ("MinAtar/Seaquest", True), ("gymnax/CartPole-v1", True),
    ("Pong-v5", False), ("CartPole-v1", False),
])
def test_is_jax_env(env_id, expected):
    assert environments.is_jax_env(env_id) is expected


@pytest.mark.parametrize("bad, suggestion", [
    ("Pong-v4", "Pong-v5"),
    ("Breakout-Minatar", "Breakout-MinAtar"),
    ("minatar/breakout", "MinAtar/Breakout"),
])
def test_unknown_id_message_names_closest_ids(bad, suggestion):
    with pytest.raises(environments.UnknownEnvironmentError) as info:
        environments.is_jax_env(bad)
    message = str(info.value)
    assert repr(bad) in message and repr(suggestion) in message
    assert info.value.suggestions[0] == suggestion


def test_unknown_id_error_is_a_value_error_from_both_factories():
    assert issubclass(environments.UnknownEnvironmentError, ValueError)
    with pytest.raises(ValueError, match="'Pong-v5'"):
        environments.make("Pong-v4")
    with pytest.raises(ValueError, match="'Breakout-MinAtar'"):
        environments.make_jax("Breakout-Minatar")


def test_wrong_factory_names_the_right_one():
    with pytest.raises(ValueError, match="make_jax"):
        environments.make("Breakout-MinAtar")
    with pytest.raises(ValueError, match=r"environments\.make\("):
        environments.make_jax("CartPole-v1")


def test_jax_ids_resolve_to_gymnax_ids():
    assert registry.JAX_ENV_IDS["MinAtar/SpaceInvaders"] == "SpaceInvaders-MinAtar"
    assert registry.JAX_ENV_IDS["gymnax/CartPole-v1"] == "CartPole-v1"


def test_atari_protocols():
    train = environments.atari_protocol("atari100k")
    assert train.episodic_life and train.repeat_action_probability == 0.0
    assert train.noop_max == 30 and train.max_episode_steps == 27_000
    evaluation = environments.atari_protocol("atari100k", evaluation=True)
    assert not evaluation.episodic_life
    assert evaluation.envpool_kwargs() == {**train.envpool_kwargs(), "episodic_life": False}
    machado = environments.atari_protocol("atari200m")
    assert machado.repeat_action_probability == 0.25 and not machado.episodic_life
    with pytest.raises(ValueError, match="atari100k"):
        environments.atari_protocol("atari10m")
