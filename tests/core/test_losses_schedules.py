import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from core import losses, schedules


class DoubleQTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_double_q_hand_computed(self):
        q_tm1 = jnp.array([1.0, 2.0, 3.0])
        q_t_selector = jnp.array([0.0, 5.0, 1.0])  # online argmax = action 1
        q_t_value = jnp.array([10.0, 20.0, 30.0])  # target evaluates action 1 → 20
        td = self.variant(losses.double_q_td_error)(q_tm1, jnp.array(2), jnp.array(1.0), jnp.array(0.5),
                                                    q_t_value, q_t_selector)
        # δ = 1 + 0.5·20 − 3 = 8
        np.testing.assert_allclose(td, 8.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_termination_discount_zero_ignores_bootstrap(self):
        td = self.variant(losses.double_q_td_error)(
            jnp.array([1.0, 2.0]), jnp.array(0), jnp.array(3.0), jnp.array(0.0),
            jnp.array([100.0, 100.0]), jnp.array([1.0, 0.0]))
        np.testing.assert_allclose(td, 2.0)

    def test_q_learning_uses_max(self):
        td = losses.q_learning_td_error(jnp.array([1.0, 2.0]), jnp.array(1), jnp.array(0.0),
                                        jnp.array(1.0), jnp.array([4.0, 7.0]))
        np.testing.assert_allclose(td, 5.0)


def test_huber_quadratic_inside_linear_outside():
    x = jnp.array([0.5, -2.0, 3.0])
    np.testing.assert_allclose(losses.huber_loss(x), [0.125, 1.5, 2.5])
    np.testing.assert_allclose(losses.squared_loss(x), [0.125, 2.0, 4.5])


def test_categorical_projection_hand_computed():
    z = jnp.array([0.0, 1.0, 2.0])
    # Mass 1 at 0.5 splits equally between atoms 0 and 1; mass at 5 clips onto atom 2.
    np.testing.assert_allclose(losses.categorical_projection(jnp.array([0.5, 5.0, -1.0]),
                                                             jnp.array([0.6, 0.3, 0.1]), z),
                               [0.3 + 0.1, 0.3, 0.3], atol=1e-6)


def test_categorical_loss_zero_entropy_target_matches_cross_entropy():
    atoms = jnp.array([-1.0, 0.0, 1.0])
    logits_tm1 = jnp.log(jnp.array([[0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]]))
    logits_t = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # discount 0 and reward 0 → the target is a point mass on atom 0 (value 0).
    loss = losses.categorical_double_q_loss(atoms, logits_tm1, jnp.array(0), jnp.array(0.0), jnp.array(0.0),
                                            logits_t, jnp.array([0.0, 0.0]))
    np.testing.assert_allclose(loss, -np.log(0.3), rtol=1e-5)


def test_linear_schedule_endpoints_and_midpoint():
    f = jax.jit(lambda t: schedules.linear_schedule(t, start=1.0, end=0.1, duration=100, begin=50))
    np.testing.assert_allclose([f(0), f(50), f(100), f(150), f(10_000)], [1.0, 1.0, 0.55, 0.1, 0.1], rtol=1e-6)


def test_exponential_interpolation_bbf_update_horizon():
    f = lambda t: schedules.exponential_interpolation(t, start=10.0, end=3.0, duration=10_000)
    np.testing.assert_allclose([f(0), f(5_000), f(10_000), f(20_000)],
                               [10.0, np.sqrt(30.0), 3.0, 3.0], rtol=1e-5)


def test_annealed_discount_is_log_linear_in_horizon():
    f = lambda t: schedules.annealed_discount(t, start=0.97, end=0.997, duration=10_000)
    np.testing.assert_allclose([f(0), f(10_000)], [0.97, 0.997], rtol=1e-6)
    np.testing.assert_allclose(1 - f(5_000), np.sqrt(0.03 * 0.003), rtol=1e-4)


def test_exponential_interpolation_rejects_nonpositive():
    with pytest.raises(ValueError, match="positive"):
        schedules.exponential_interpolation(0, start=0.0, end=1.0, duration=10)
