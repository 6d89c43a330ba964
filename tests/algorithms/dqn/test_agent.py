"""The value-based agent's math and wiring (DQN, Rainbow/DER, DrQ(ε) share it)."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.dqn import agent as agent_lib
from algorithms.dqn import train as dqn
from algorithms.drq import train as drq
from algorithms.rainbow import train as rainbow
from core import parallel
from core.types import EnvSpec, StepType, TimeStep, Transition

SCRIPTS = {"dqn": dqn, "rainbow": rainbow, "drq": drq}


def _linear_apply(params, observation, key=None):
    """Q(s) = s · W: a 'network' whose outputs are easy to compute by hand."""
    return observation @ params


def _batch(observation, action, reward, discount, next_observation):
    return Transition(observation=jnp.asarray(observation, jnp.float32), action=jnp.asarray(action, jnp.int32),
                      reward=jnp.asarray(reward, jnp.float32), discount=jnp.asarray(discount, jnp.float32),
                      next_observation=jnp.asarray(next_observation, jnp.float32),
                      next_action=jnp.zeros(len(action), jnp.int32))


class ScalarLossTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_double_q_hand_computed(self):
        online = jnp.array([[1.0, 0.0], [0.0, 2.0]])  # Q(s) = [s0, 2 s1]
        target = jnp.array([[3.0, 0.0], [0.0, 1.0]])  # Q̄(s) = [3 s0, s1]
        batch = _batch([[1.0, 1.0], [2.0, 0.0]], [1, 0], [1.0, 0.5], [0.9, 0.0], [[1.0, 1.0], [1.0, 1.0]])
        loss = self.variant(lambda p, t, b: agent_lib.value_loss(
            p, t, b, jax.random.PRNGKey(0), apply=_linear_apply, atoms=None, double_q=True, huber=False,
            augment_pad=0, channels_first=False))(online, target, batch)
        # Example 0: q = 2, online argmax at s' is action 1 (2 > 1), Q̄(s', 1) = 1 → δ = 1 + 0.9·1 − 2 = −0.1.
        # Example 1: q = 2, discount 0 → δ = 0.5 − 2 = −1.5.
        np.testing.assert_allclose(loss.priority, [0.1, 1.5], rtol=1e-6)
        np.testing.assert_allclose(loss.loss, [0.5 * 0.01, 0.5 * 2.25], rtol=1e-6)

    def test_without_double_q_the_target_network_selects(self):
        online = jnp.array([[1.0, 0.0], [0.0, 2.0]])
        target = jnp.array([[3.0, 0.0], [0.0, 1.0]])
        batch = _batch([[1.0, 1.0]], [1], [1.0], [0.9], [[1.0, 1.0]])
        loss = agent_lib.value_loss(online, target, batch, jax.random.PRNGKey(0), apply=_linear_apply, atoms=None,
                                    double_q=False, huber=True, augment_pad=0, channels_first=False)
        # max_a Q̄(s', a) = 3 → δ = 1 + 2.7 − 2 = 1.7; Huber(1.7) = 1.7 − 0.5.
        np.testing.assert_allclose(loss.priority, [1.7], rtol=1e-6)
        np.testing.assert_allclose(loss.loss, [1.2], rtol=1e-6)


def _numpy_projection(atoms, probs, reward, discount):
    """Categorical projection of Bellemare et al. 2017, Algorithm 1, written independently."""
    v_min, v_max = atoms[0], atoms[-1]
    dz = atoms[1] - atoms[0]
    out = np.zeros_like(probs)
    for p, z in zip(probs, atoms):
        tz = np.clip(reward + discount * z, v_min, v_max)
        b = (tz - v_min) / dz
        lo, hi = int(np.floor(b)), int(np.ceil(b))
        if lo == hi:
            out[lo] += p
        else:
            out[lo] += p * (hi - b)
            out[hi] += p * (b - lo)
    return out


def test_c51_loss_is_cross_entropy_to_the_projected_double_q_target():
    atoms = np.linspace(-2.0, 2.0, 5)
    rng = np.random.default_rng(0)
    online_logits = rng.normal(size=(2, 3, 5)).astype(np.float32)  # [B, A, N] at s
    next_online = rng.normal(size=(2, 3, 5)).astype(np.float32)  # at s′, online (selects)
    next_target = rng.normal(size=(2, 3, 5)).astype(np.float32)  # at s′, target (evaluates)

    def apply(params, observation, key=None):  # the "observation" picks a fixed logit table
        tables = {"online": (online_logits, next_online), "target": (None, next_target)}[params]
        return jnp.where(observation[:, None, None] == 0, tables[0] if tables[0] is not None else 0.0, tables[1])

    batch = _batch([0.0, 0.0], [2, 0], [0.7, -0.3], [0.9, 0.0], [1.0, 1.0])
    out = agent_lib.value_loss("online", "target", batch, jax.random.PRNGKey(0), apply=apply,
                               atoms=jnp.asarray(atoms, jnp.float32), double_q=True, huber=True, augment_pad=0,
                               channels_first=False)
    softmax = lambda x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)
    for i, (a, r, d) in enumerate([(2, 0.7, 0.9), (0, -0.3, 0.0)]):
        a_star = int(np.argmax((softmax(next_online[i]) * atoms).sum(-1)))
        target = _numpy_projection(atoms, softmax(next_target[i])[a_star], r, d)
        expected = -(target * np.log(softmax(online_logits[i])[a])).sum()
        np.testing.assert_allclose(out.loss[i], expected, rtol=1e-5)
    np.testing.assert_array_equal(out.priority, out.loss)


def test_augmentation_makes_the_loss_depend_on_the_key_and_pad_zero_does_not():
    obs = jax.random.uniform(jax.random.PRNGKey(0), (4, 10, 10, 3))
    params = jax.random.normal(jax.random.PRNGKey(1), (300, 2))
    apply = lambda p, o, key=None: o.reshape(o.shape[0], -1) @ p
    batch = Transition(observation=obs, action=jnp.zeros(4, jnp.int32), reward=jnp.ones(4), discount=jnp.ones(4),
                       next_observation=obs[::-1], next_action=jnp.zeros(4, jnp.int32))
    loss = lambda key, pad: agent_lib.value_loss(params, params, batch, key, apply=apply, atoms=None, double_q=True,
                                                 huber=True, augment_pad=pad, channels_first=False).loss
    k1, k2 = jax.random.PRNGKey(2), jax.random.PRNGKey(3)
    assert not np.allclose(loss(k1, 1), loss(k2, 1))
    np.testing.assert_array_equal(loss(k1, 0), loss(k2, 0))


def _spec(shape=(4,), num_actions=2):
    return EnvSpec(env_id="test", observation_shape=shape, observation_dtype=jnp.float32, num_actions=num_actions)


def _fill(agent, state, steps, shape=(4,), seed=0, reward=1.0):
    rng = np.random.default_rng(seed)
    observe = jax.jit(agent.observe)
    for t in range(steps):
        step_type = StepType.FIRST if t == 0 else (StepType.LAST if t % 17 == 0 else StepType.MID)
        timestep = TimeStep(step_type=jnp.full((1,), step_type, jnp.int8), reward=jnp.full((1,), reward, jnp.float32),
                            discount=jnp.full((1,), 0.0 if step_type == StepType.LAST else 1.0, jnp.float32),
                            observation=jnp.asarray(rng.normal(size=(1, *shape)), jnp.float32))
        state, _ = observe(state, timestep)
    return state


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_importance_weights_scale_the_per_example_losses():
    cfg = dataclasses.replace(rainbow.PRESETS["smoke"][1], batch_size=8)
    agent = agent_lib.make_agent(cfg, _spec(), mesh=parallel.local_mesh(1))
    state = _fill(agent, agent.init(jax.random.PRNGKey(0)), 60)
    state, batch, _, _, key = jax.jit(agent.sample)(state)
    ones = jnp.ones(8)
    weight = jnp.linspace(0.1, 1.0, 8)
    update = jax.jit(agent.learner_update)
    _, loss_ones, priority = update(state.train, batch, ones, key)
    _, loss_weighted, priority_w = update(state.train, batch, weight, key)
    np.testing.assert_allclose(loss_ones, priority.mean(), rtol=1e-5)  # C51: priority = per-example loss
    np.testing.assert_allclose(loss_weighted, (weight * priority).mean(), rtol=1e-5)
    np.testing.assert_array_equal(priority, priority_w)


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_prioritized_learn_sets_sampled_priorities_to_loss_power_alpha():
    cfg = dataclasses.replace(rainbow.PRESETS["smoke"][1], batch_size=8, priority_exponent=0.5)
    agent = agent_lib.make_agent(cfg, _spec(), mesh=parallel.local_mesh(1))
    state = _fill(agent, agent.init(jax.random.PRNGKey(0)), 60)
    sampled, batch, indices, weight, key = jax.jit(agent.sample)(state)
    chex.assert_shape(weight, (8,))
    np.testing.assert_allclose(weight.max(), 1.0, rtol=1e-6)  # IS weights normalised by their max
    _, _, priority = jax.jit(agent.learner_update)(sampled.train, batch, weight, key)
    after = jax.jit(agent.learn)(state)
    np.testing.assert_allclose(after.replay.priority[indices.row, indices.env], (priority + 1e-6) ** 0.5, rtol=1e-5)
    assert int(after.train.step) == 1 and float(after.replay.max_priority) >= float((priority.max() + 1e-6) ** 0.5) - 1e-6


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_noisy_agent_evaluates_without_noise():
    cfg = rainbow.PRESETS["smoke"][1]
    agent = agent_lib.make_agent(cfg, _spec(), mesh=parallel.local_mesh(1))
    params = agent.init(jax.random.PRNGKey(0)).train.params
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, 4))
    a1 = agent.act_greedy(params, obs, jax.random.PRNGKey(2), 0.0)
    a2 = agent.act_greedy(params, obs, jax.random.PRNGKey(3), 0.0)
    np.testing.assert_array_equal(a1, a2)


def test_reward_clip_stores_clipped_rewards_and_reports_raw_returns():
    cfg = dataclasses.replace(dqn.PRESETS["smoke"][1], reward_clip=True)
    agent = agent_lib.make_agent(cfg, _spec(), mesh=parallel.local_mesh(1))
    state = _fill(agent, agent.init(jax.random.PRNGKey(0)), 18, reward=5.0)
    np.testing.assert_array_equal(np.asarray(state.replay.reward[:18, 0]), np.ones(18))
    # The episode of time steps t = 0..17 (LAST at 17) returned 18 rewards of 5, unclipped.
    np.testing.assert_allclose(float(state.returns_sum), 5.0 * 18)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_preset_validates(script):
    for name, (description, cfg) in SCRIPTS[script].PRESETS.items():
        assert description
        cfg.validate()


@pytest.mark.parametrize("script", ["rainbow", "drq"])
def test_agent_step_is_deterministic_per_key_and_differs_across_keys(script):
    cfg = SCRIPTS[script].PRESETS["smoke"][1]
    from algorithms.dqn.loop import env_spec
    spec = env_spec(cfg)
    agent = agent_lib.make_agent(cfg, spec, mesh=parallel.local_mesh(1))

    def run(seed):
        state = agent.init(jax.random.PRNGKey(seed))
        obs = jnp.zeros((1, *spec.observation_shape), spec.observation_dtype)
        timestep = TimeStep(step_type=jnp.zeros((1,), jnp.int8), reward=jnp.zeros((1,)), discount=jnp.ones((1,)),
                            observation=obs)
        state, _ = jax.jit(agent.observe)(state, timestep)
        return state.train.params

    a, b, c = run(0), run(0), run(1)
    chex.assert_trees_all_equal(a, b)
    chex.assert_trees_all_equal_shapes(a, c)
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c)))
