"""PPO math: GAE against hand-computed cases and a naive loop, the clipped loss by hand."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.minigrid_transfer import ppo


def _naive_gae(value, bootstrap, reward, discount, lam):
    out, next_adv = np.zeros_like(value), 0.0
    for t in reversed(range(len(value))):
        delta = reward[t] + discount[t] * bootstrap[t] - value[t]
        next_adv = delta + discount[t] * lam[t] * next_adv
        out[t] = next_adv
    return out


class GAETest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_lambda_one_equals_discounted_return_minus_value(self):
        rng = np.random.default_rng(0)
        value, reward = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
        bootstrap = np.append(value[1:], 0.7).astype(np.float32)
        gamma = 0.9
        adv = self.variant(ppo.generalized_advantage_estimation)(
            value, bootstrap, reward, np.full(6, gamma, np.float32), np.ones(6, np.float32))
        returns = [sum(gamma ** (k - t) * reward[k] for k in range(t, 6)) + gamma ** (6 - t) * 0.7 for t in range(6)]
        np.testing.assert_allclose(adv, np.array(returns) - value, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_lambda_zero_is_the_td_error(self):
        value = np.array([1.0, 2.0, 3.0], np.float32)
        bootstrap = np.array([2.0, 3.0, 5.0], np.float32)
        reward = np.array([0.5, -1.0, 2.0], np.float32)
        discount = np.array([0.9, 0.0, 0.9], np.float32)
        adv = self.variant(ppo.generalized_advantage_estimation)(value, bootstrap, reward, discount, np.zeros(3, np.float32))
        np.testing.assert_allclose(adv, [0.5 + 1.8 - 1.0, -1.0 - 2.0, 2.0 + 4.5 - 3.0], rtol=1e-6)


def test_episode_ends_stop_the_recursion_and_truncation_bootstraps():
    rng = np.random.default_rng(1)
    T = 12
    value, bootstrap, reward = (rng.normal(size=T).astype(np.float32) for _ in range(3))
    terminated = np.zeros(T, bool); terminated[3] = True
    truncated = np.zeros(T, bool); truncated[7] = True
    discount = (0.97 * ~terminated).astype(np.float32)
    lam = (0.9 * ~(terminated | truncated)).astype(np.float32)
    adv = np.asarray(ppo.generalized_advantage_estimation(value, bootstrap, reward, discount, lam))
    np.testing.assert_allclose(adv, _naive_gae(value, bootstrap, reward, discount, lam), rtol=1e-5, atol=1e-5)
    assert adv[3] == pytest.approx(reward[3] - value[3])  # terminated: no bootstrap
    assert adv[7] == pytest.approx(reward[7] + 0.97 * bootstrap[7] - value[7], rel=1e-5)  # truncated: bootstraps


def test_clipped_surrogate_by_hand():
    log_prob = jnp.log(jnp.array([1.5, 0.5, 1.1, 0.5]))
    old = jnp.zeros(4)
    adv = jnp.array([2.0, -1.0, 1.0, 1.0])
    # r·A vs clip(r)·A, the min: 1.5·2 → 1.2·2 = 2.4; 0.5·−1 = −0.5 vs 0.8·−1 = −0.8 → −0.8; 1.1; 0.5 (unclipped side)
    expected = -np.mean([2.4, -0.8, 1.1, 0.5])
    assert float(ppo.clipped_surrogate_loss(log_prob, old, adv, epsilon=0.2)) == pytest.approx(expected, rel=1e-6)


def test_ppo_loss_at_the_old_policy():
    logits = jnp.zeros((5, 4))
    action = jnp.array([0, 1, 2, 3, 0])
    old = jnp.full(5, -jnp.log(4.0))
    adv = jnp.array([1.0, -1.0, 2.0, 0.0, 3.0])
    loss = jax.jit(lambda *a: ppo.ppo_loss(*a, epsilon=0.2, vf_coef=0.5, ent_coef=0.01, normalize_advantage=False))(
        logits, jnp.ones(5), action, old, adv, jnp.full(5, 3.0))
    assert float(loss.entropy) == pytest.approx(np.log(4.0), rel=1e-6)
    assert float(loss.policy) == pytest.approx(-float(adv.mean()), rel=1e-6)  # ratio 1
    assert float(loss.value) == pytest.approx(0.5 * 4.0)
    assert float(loss.approx_kl) == pytest.approx(0.0, abs=1e-7) and float(loss.clip_fraction) == 0.0
    assert float(loss.total) == pytest.approx(float(loss.policy) + 0.5 * 2.0 - 0.01 * np.log(4.0), rel=1e-6)


def test_policy_gradient_raises_the_probability_of_advantaged_actions():
    logits = jnp.zeros((2, 3))
    action, adv = jnp.array([1, 2]), jnp.array([1.0, -1.0])
    old = jnp.full(2, -jnp.log(3.0))
    grad = jax.jit(jax.grad(lambda l: ppo.ppo_loss(l, jnp.zeros(2), action, old, adv, jnp.zeros(2), epsilon=0.2,
                                           vf_coef=0.0, ent_coef=0.0, normalize_advantage=False).total))(logits)
    assert grad[0, 1] < 0 and grad[1, 2] > 0  # descent raises logit 1 of sample 0, lowers logit 2 of sample 1
