"""TD3: hand-computed targets, smoothing, Polyak, policy export, the learner's delayed updates, the script."""
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.td3 import learner as td3_learner
from algorithms.td3 import networks, td3
from environments import d4rl_style


def test_clipped_double_q_target_by_hand():
    y = td3.clipped_double_q_target(jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 0.0, 1.0]),
                                    jnp.array([10.0, 10.0, -4.0]), jnp.array([5.0, 1.0, 2.0]), gamma=0.9)
    np.testing.assert_allclose(y, [1 + 0.9 * 5, 2.0, 3 + 0.9 * -4], rtol=1e-6)


def test_target_is_not_differentiated():
    g = jax.grad(lambda q: td3.clipped_double_q_target(jnp.ones(2), jnp.ones(2), q, q + 1, gamma=0.9).sum())(jnp.ones(2))
    np.testing.assert_array_equal(g, 0.0)


def test_smoothed_target_action_stays_in_bounds_and_clips_noise():
    a = jnp.array([[0.99, -0.99, 0.0]] * 1000)
    out = td3.smoothed_target_action(jax.random.PRNGKey(0), a, noise_std=10.0, noise_clip=0.5)
    assert float(out.max()) <= 1.0 and float(out.min()) >= -1.0
    assert float(jnp.abs(out[:, 2]).max()) == pytest.approx(0.5)


def test_polyak_and_losses_by_hand():
    out = td3.polyak({"w": jnp.array([0.0])}, {"w": jnp.array([10.0])}, tau=0.1)
    np.testing.assert_allclose(out["w"], [1.0])
    assert float(td3.critic_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0]), jnp.array([1.0, 1.0]))) == pytest.approx(0.5 + 1.0)
    assert float(td3.actor_loss(jnp.array([1.0, 3.0]))) == pytest.approx(-2.0)


def test_exported_actor_matches_numpy_policy(tmp_path):
    net = networks.make_actor_critic(3, (16, 8))
    params = net.actor_init(jax.random.PRNGKey(1), jnp.zeros((1, 11)))
    obs = np.random.default_rng(0).normal(size=(5, 11)).astype(np.float32)
    path = str(tmp_path / "policy.npz")
    np.savez(path, **networks.actor_to_numpy(params))
    np.testing.assert_allclose(d4rl_style.MLPPolicy(path)(obs), net.actor(params, obs), atol=1e-5)


def _learner(delay=2):
    net = networks.make_actor_critic(2, (16, 16))
    learn = td3_learner.make_learner(net, learning_rate=1e-3, tau=0.005, policy_delay=delay,
                                     critic_loss_fn=td3_learner.td3_critic_loss(net, gamma=0.99, policy_noise=0.2,
                                                                                noise_clip=0.5),
                                     actor_loss_fn=td3_learner.td3_actor_loss(net))
    return net, learn


def _batches(k, b=8, seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    return td3_learner.Batch(f(k, b, 3), np.clip(f(k, b, 2), -1, 1), f(k, b), np.ones((k, b), np.float32),
                             f(k, b, 3), np.clip(f(k, b, 2), -1, 1))


def test_learner_delays_actor_and_targets_and_is_deterministic():
    net, learn = _learner(delay=2)
    state = learn.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)), jnp.zeros((1, 2)))
    batches = _batches(3)
    first = jax.tree.map(lambda x: x[0], batches)
    s1, m1 = jax.jit(learn.update)(state, first)  # step 0: critic + actor + targets
    assert not np.allclose(s1.actor["linear_0"]["w"], state.actor["linear_0"]["w"])
    s2, m2 = jax.jit(learn.update)(s1, jax.tree.map(lambda x: x[1], batches))  # step 1: critic only
    chex.assert_trees_all_equal(s2.actor, s1.actor)
    chex.assert_trees_all_equal(s2.actor_target, s1.actor_target)
    assert np.isnan(m2["actor_loss"]) and np.isfinite(m1["actor_loss"])
    s3, out = jax.jit(learn.update_many)(state, batches)
    s3b, _ = jax.jit(learn.update_many)(state, batches)
    chex.assert_trees_all_close(s3, s3b)
    assert int(s3.step) == 3 and out["critic_loss"].shape == (3,)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(s3.critic))


@pytest.mark.slow
@pytest.mark.envpool
def test_cli_rejects_bad_input(capsys):
    from algorithms.td3 import train
    from core import cli
    for argv, needle in ((["smoke", "--env-id", "Hoper-v4"], "Hopper-v4"), (["smoke", "--env-id", "CartPole-v1"], "discrete"),
                         (["smok"], "smoke"), (["smoke", "--gamma", "1.5"], "--gamma")):
        with pytest.raises(SystemExit) as exit_:
            cli.cli_main(train.PRESETS, train.main, argv=argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and needle in err


@pytest.mark.slow
@pytest.mark.envpool
@pytest.mark.timeout(900)
def test_smoke_main_writes_contract_files_and_resumes(tmp_path):
    import dataclasses
    from algorithms.td3 import train
    cfg = dataclasses.replace(train.PRESETS["smoke"][1], out_dir=str(tmp_path / "run"), progress=False)
    summary = train.main(cfg, preset="smoke")
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "learning_curve.png", "summary.json", "policy.npz",
                 "replay.hdf5"):
        assert os.path.exists(os.path.join(cfg.out_dir, name)), name
    assert summary["env_steps"] == 2000 and summary["headline"]["value"] is not None
    replay = d4rl_style.load(os.path.join(cfg.out_dir, "replay.hdf5"), env_id="Hopper-v4")
    inside = ~replay.episode_ends[:-1]
    np.testing.assert_array_equal(replay.next_actions[:-1][inside], replay.actions[1:][inside])
    # a finished run restarted in the same dir resumes from its last checkpoint (nothing left to do)
    again = train.main(cfg, preset="smoke")
    assert again["env_steps"] == 2000
    assert json.load(open(os.path.join(cfg.out_dir, "summary.json")))["algorithm"] == "td3"
    # export of an earlier kept checkpoint (the "medium" policy of a longer run); an unknown step is refused
    from algorithms.td3 import export
    out = export.export(cfg.out_dir, 1000)
    assert out["env_steps"] == 1000 and 0 < out["transitions"] <= 1000
    assert len(d4rl_style.load(os.path.join(cfg.out_dir, "replay.hdf5"), env_id="Hopper-v4").rewards) == out["transitions"]
    with pytest.raises(SystemExit) as exit_info:
        export.main([cfg.out_dir, "--step", "1500"])
    assert exit_info.value.code == 2
