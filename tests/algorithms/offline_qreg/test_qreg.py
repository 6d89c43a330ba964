"""Qsarsa math: SARSA targets (dataset next action, terminal vs timeout), regulariser gradient flow, baselines."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.offline_qreg import networks, qreg
from algorithms.offline_qreg import train as oq
from algorithms.td3.learner import Batch


def test_sarsa_target_terminal_zeroes_bootstrap_timeout_does_not():
    r = jnp.array([1.0, 1.0, 1.0])
    discount = jnp.array([1.0, 0.0, 1.0])  # mid-episode, terminal, timeout (timeouts keep discount 1)
    q_next = jnp.array([10.0, 10.0, 10.0])
    np.testing.assert_allclose(qreg.sarsa_target(r, discount, q_next, gamma=0.9), [10.0, 1.0, 10.0])


def test_sarsa_loss_by_hand_and_no_gradient_through_target():
    assert float(qreg.sarsa_loss(jnp.array([1.0, 3.0]), jnp.array([0.0, 1.0]))) == pytest.approx((1 + 4) / 2)
    g = jax.grad(lambda t: qreg.sarsa_loss(jnp.ones(2), t))(jnp.zeros(2))
    np.testing.assert_array_equal(g, 0.0)


def _batch(b=16, obs=4, act=2, seed=0, discount=None):
    rng = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)  # noqa: E731
    d = jnp.ones(b) if discount is None else discount
    return Batch(f(b, obs), jnp.clip(f(b, act), -1, 1), f(b), d, f(b, obs), jnp.clip(f(b, act), -1, 1))


def test_sarsa_loss_uses_the_datasets_next_action():
    q_net = networks.make_q_network((8,))
    params = q_net.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)), jnp.zeros((1, 2)))
    target_params = q_net.init(jax.random.PRNGKey(1), jnp.zeros((1, 4)), jnp.zeros((1, 2)))
    loss_fn = oq.sarsa_loss_fn(q_net, gamma=0.9)
    batch = _batch()
    q = q_net.apply(params, batch.observation, batch.action)
    y = batch.reward + 0.9 * batch.discount * q_net.apply(target_params, batch.next_observation, batch.next_action)
    assert float(loss_fn(params, target_params, batch)) == pytest.approx(float(jnp.mean((q - y) ** 2)), rel=1e-5)
    other = batch._replace(next_action=-batch.next_action)
    assert float(loss_fn(params, target_params, other)) != pytest.approx(float(loss_fn(params, target_params, batch)))
    # terminal transitions ignore the next state-action completely
    terminal = batch._replace(discount=jnp.zeros(16))
    assert float(loss_fn(params, target_params, terminal)) == pytest.approx(
        float(loss_fn(params, target_params, terminal._replace(next_action=-batch.next_action))))


def test_sarsa_fixed_point_on_a_loop():
    """Every transition gives reward 1 and continues (timeouts included): Q_sarsa → 1/(1 − γ) = 2 for γ = 0.5."""
    cfg = dataclasses.replace(oq.PRESETS["smoke"][1], hidden=(16,), batch_size=32, updates_per_call=400,
                              learning_rate=3e-3, gamma=0.5, sarsa_tau=0.05)
    q_net = networks.make_q_network(cfg.hidden)
    n = 64
    rng = np.random.default_rng(0)
    data = oq.Data(observations=jnp.asarray(rng.normal(size=(n, 3)), jnp.float32),
                   actions=jnp.asarray(rng.uniform(-1, 1, (n, 2)), jnp.float32), rewards=jnp.ones(n),
                   discounts=jnp.ones(n), next_observations=jnp.asarray(rng.normal(size=(n, 3)), jnp.float32),
                   next_actions=jnp.asarray(rng.uniform(-1, 1, (n, 2)), jnp.float32))
    init, run = oq.make_sarsa_trainer(cfg, q_net, 3, 2)
    state = init(jax.random.PRNGKey(0))
    for _ in range(3):
        state, losses = run(state, data)
    q = q_net.apply(state.params, data.observations, data.actions)
    np.testing.assert_allclose(np.asarray(q), 2.0, atol=0.15)


def test_critic_regularizer_by_hand_and_q_sarsa_is_a_constant():
    q_pi = jnp.array([[1.0, 2.0], [3.0, 5.0]])
    qs = jnp.array([0.0, 4.0])
    assert float(qreg.critic_regularizer(q_pi, qs)) == pytest.approx((1 + 4 + 1 + 1) / 4)
    np.testing.assert_array_equal(jax.grad(lambda s: qreg.critic_regularizer(q_pi, s))(qs), 0.0)


def test_td3_bc_and_bc_by_hand():
    q = jnp.array([2.0, -2.0, 4.0])
    pi = jnp.zeros((3, 1))
    a = jnp.ones((3, 1))
    expected = -2.5 * q.mean() / (jnp.abs(q).mean() + 1e-6) + 1.0
    assert float(qreg.td3_bc_actor_loss(q, pi, a, alpha=2.5)) == pytest.approx(float(expected), rel=1e-5)
    assert float(qreg.behavior_cloning(pi, a)) == pytest.approx(1.0)


def test_spearman_against_ranks():
    x = jnp.array([0.1, 0.5, 0.3, 0.9])
    assert float(qreg.spearman(x, x ** 3)) == pytest.approx(1.0)
    assert float(qreg.spearman(x, -x)) == pytest.approx(-1.0)
    y = jnp.array([1.0, 2.0, 4.0, 3.0])  # ranks x: 0 2 1 3 ; y: 0 1 3 2; Σd² = 6 -> 1 - 6·6/(4·15)
    assert float(qreg.spearman(x, y)) == pytest.approx(1 - 36 / 60)


def _setup(algorithm, **changes):
    cfg = dataclasses.replace(oq.PRESETS["smoke"][1], algorithm=algorithm, hidden=(8,), **changes)
    net, q_net, init, _, _ = oq.make_trainer(cfg, 4, 2)
    q_params = q_net.init(jax.random.PRNGKey(7), jnp.zeros((1, 4)), jnp.zeros((1, 2)))
    state = init(jax.random.PRNGKey(0), q_params)
    critic_loss, actor_loss = oq.make_losses(cfg, net, q_net)
    return state, critic_loss, actor_loss


FLOAT_FIELDS = ("actor", "critic", "actor_target", "critic_target", "extra")


def _grad_state(fn, state):
    """Gradient of fn(state) with respect to every float parameter tree of the state."""
    sub = {k: getattr(state, k) for k in FLOAT_FIELDS}
    return jax.grad(lambda t: fn(state._replace(**t)))(sub)


def _norm(tree):
    return float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree)))


@pytest.mark.parametrize("algorithm", oq.ALGORITHMS)
def test_critic_gradients_reach_only_the_critic(algorithm):
    """Through the critic loss no gradient reaches the actor, the targets or Q_sarsa (Qsarsa-AC's π̃ and Q_sarsa are constants)."""
    state, critic_loss, _ = _setup(algorithm)
    batch, key = _batch(), jax.random.PRNGKey(3)
    g_state = _grad_state(lambda s: critic_loss(state.critic, s, batch, key)[0], state)
    for name in ("actor", "actor_target", "critic_target", "extra"):
        assert _norm(g_state[name]) == 0.0, name
    g_critic = jax.grad(lambda c: critic_loss(c, state, batch, key)[0])(state.critic)
    assert (_norm(g_critic) > 0) == (algorithm != "bc")


def test_qsarsa_ac_regularizer_adds_a_critic_gradient():
    s_reg, loss_reg, _ = _setup("qsarsa_ac", critic_reg_weight=1.0)
    s_off, loss_off, _ = _setup("qsarsa_ac", critic_reg_weight=0.0)
    batch, key = _batch(), jax.random.PRNGKey(3)
    g_reg = jax.grad(lambda c: loss_reg(c, s_reg, batch, key)[0])(s_reg.critic)
    g_off = jax.grad(lambda c: loss_off(c, s_off, batch, key)[0])(s_off.critic)
    td3_state, td3_loss, _ = _setup("td3")
    g_td3 = jax.grad(lambda c: td3_loss(c, td3_state, batch, key)[0])(td3_state.critic)
    chex.assert_trees_all_close(g_off, g_td3)  # λ_c = 0 is TD3's critic
    assert not np.allclose(jax.tree.leaves(g_reg)[0], jax.tree.leaves(g_off)[0])
    # the regulariser's own gradient equals that of E[Σᵢ(Qᵢ(s, π̃(s)) − Q_sarsa(s, π̃(s)))²]/2 alone
    net = networks.make_actor_critic(2, (8,))
    q_net = networks.make_q_network((8,))
    pi = net.actor(s_reg.actor, batch.observation)
    qs = q_net.apply(s_reg.extra["q_sarsa"], batch.observation, pi)
    g_alone = jax.grad(lambda c: qreg.critic_regularizer(net.critic(c, batch.observation, pi), qs))(s_reg.critic)
    diff = jax.tree.map(lambda a, b: a - b, g_reg, g_off)
    chex.assert_trees_all_close(diff, g_alone, atol=1e-5)


@pytest.mark.parametrize("algorithm", oq.ALGORITHMS)
def test_actor_gradients_reach_only_the_actor(algorithm):
    state, _, actor_loss = _setup(algorithm)
    batch = _batch()
    g_critic = jax.grad(lambda c: actor_loss(state.actor, c, state, batch)[0])(state.critic)
    g_state = _grad_state(lambda s: actor_loss(state.actor, state.critic, s, batch)[0], state)
    assert _norm(g_critic) == 0.0 and _norm(g_state["extra"]) == 0.0
    assert _norm(jax.grad(lambda a: actor_loss(a, state.critic, state, batch)[0])(state.actor)) > 0


def test_qsarsa_ac2_actor_regularizer_changes_only_the_actor_gradient():
    s2, _, loss2 = _setup("qsarsa_ac2", actor_reg_weight=1.0)
    s0, _, loss0 = _setup("qsarsa_ac2", actor_reg_weight=0.0)
    batch = _batch()
    g2 = jax.grad(lambda a: loss2(a, s2.critic, s2, batch)[0])(s2.actor)
    g0 = jax.grad(lambda a: loss0(a, s0.critic, s0, batch)[0])(s0.actor)
    assert not np.allclose(jax.tree.leaves(g2)[0], jax.tree.leaves(g0)[0])
    # λ_a = 0 leaves the normalised improvement alone, which is Qsarsa-AC's actor
    s1, _, loss1 = _setup("qsarsa_ac")
    chex.assert_trees_all_close(g0, jax.grad(lambda a: loss1(a, s1.critic, s1, batch)[0])(s1.actor))


@pytest.mark.slow
def test_one_update_is_deterministic_and_finite():
    cfg = dataclasses.replace(oq.PRESETS["smoke"][1], algorithm="qsarsa_ac", hidden=(8,), batch_size=8)
    net, q_net, init, _, one = oq.make_trainer(cfg, 4, 2)
    state = init(jax.random.PRNGKey(0), q_net.init(jax.random.PRNGKey(1), jnp.zeros((1, 4)), jnp.zeros((1, 2))))
    b = _batch(b=32)
    data = oq.Data(b.observation, b.action, b.reward, b.discount, b.next_observation, b.next_action)
    s1, m1 = one(state, data)
    s1b, _ = one(state, data)
    chex.assert_trees_all_close(s1, s1b)
    assert all(np.isfinite(np.asarray(v)).all() for k, v in m1.items() if k != "actor_loss")
    s_other, _ = one(state._replace(key=jax.random.PRNGKey(5)), data)
    assert not np.allclose(s_other.critic["q1/linear_0"]["w"], s1.critic["q1/linear_0"]["w"])
