"""KSMe and MICo representation losses: hand-computed targets, fixed points, stop-gradients, shapes."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.ksme import losses

REWARD = jnp.array([1.0, 0.0])
REWARD_KERNEL = np.array([[1.0, 0.5], [0.5, 1.0]])  # 1 − ½|r_i − r_j|


def test_ksme_target_by_hand():
    next_rep = jnp.eye(2)  # dot-product kernel of the next states: the identity
    target = losses.ksme_target(next_rep, REWARD, cumulative_gamma=0.5)
    np.testing.assert_allclose(target, [[1.5, 0.5], [0.5, 1.5]], rtol=1e-6)
    normalized = losses.ksme_target(next_rep, REWARD, cumulative_gamma=0.5, normalize=True)
    np.testing.assert_allclose(normalized, 0.5 * REWARD_KERNEL + 0.5 * np.eye(2), rtol=1e-6)


def test_rewards_are_mapped_onto_the_unit_interval():
    r = losses.normalized_reward(jnp.array([-1.0, 0.0, 1.0, 3.0]), reward_min=-1.0, reward_max=1.0)
    np.testing.assert_allclose(r, [0.0, 0.5, 1.0, 1.0])
    # Atari's clipped rewards −1 and 1 are as far apart as MinAtar's 0 and 1.
    atari = losses.ksme_target(jnp.zeros((2, 3)), jnp.array([-1.0, 1.0]), cumulative_gamma=0.9, reward_min=-1.0)
    np.testing.assert_allclose(atari, REWARD_KERNEL, rtol=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9])
def test_ksme_loss_vanishes_at_the_kernel_fixed_point(gamma):
    # Two absorbing states (x' = x): the fixed point is k = k_R/(1 − γ); features φ with φφᵀ = k.
    phi = jnp.asarray(np.linalg.cholesky(REWARD_KERNEL / (1.0 - gamma)), jnp.float32)
    loss = losses.ksme_loss(phi, phi, phi, REWARD, cumulative_gamma=gamma)
    assert float(loss) < 1e-10
    # Away from it the loss is positive.
    assert float(losses.ksme_loss(2 * phi, 2 * phi, 2 * phi, REWARD, cumulative_gamma=gamma)) > 1e-3


def test_cosine_ksme_with_the_normalized_kernel_has_a_reachable_fixed_point():
    # Normalised kernel fixed point of two absorbing states is k_R itself, whose diagonal is 1:
    # unit vectors with these inner products are matched exactly by the cosine similarity.
    phi = jnp.asarray(3.0 * np.linalg.cholesky(REWARD_KERNEL), jnp.float32)  # scale is irrelevant to cosine
    loss = losses.ksme_loss(phi, phi, phi, REWARD, cumulative_gamma=0.9, similarity="cosine", normalize=True)
    assert float(loss) < 1e-10


def test_ksme_loss_equals_the_double_loop_over_pairs():
    key = jax.random.PRNGKey(0)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    online, target, nxt = (jax.random.normal(k, (5, 3)) for k in (k1, k2, k3))
    reward = jax.random.uniform(k4, (5,))
    gamma = 0.97
    expected = 0.0
    for i in range(5):
        for j in range(5):
            goal = 1 - 0.5 * abs(reward[i] - reward[j]) + gamma * float(jnp.dot(nxt[i], nxt[j]))
            delta = float(jnp.dot(online[i], target[j])) - goal
            expected += 0.5 * delta ** 2 if abs(delta) <= 1 else abs(delta) - 0.5
    got = losses.ksme_loss(online, target, nxt, reward, cumulative_gamma=gamma)
    np.testing.assert_allclose(got, expected / 25, rtol=1e-5)


def test_gradients_flow_through_the_online_representation_only():
    key = jax.random.PRNGKey(1)
    online, target, nxt = (jax.random.normal(k, (4, 3)) for k in jax.random.split(key, 3))
    reward = jnp.array([0.0, 1.0, 0.5, 0.2])
    for fn in (lambda o, t, n: losses.ksme_loss(o, t, n, reward, cumulative_gamma=0.9),
               lambda o, t, n: losses.mico_loss(o, t, n, reward, cumulative_gamma=0.9)):
        g_online, g_target, g_next = jax.grad(fn, argnums=(0, 1, 2))(online, target, nxt)
        assert float(jnp.abs(g_online).sum()) > 0
        np.testing.assert_array_equal(g_target, 0.0)
        np.testing.assert_array_equal(g_next, 0.0)


def test_mico_distance_by_hand():
    a = jnp.array([[1.0, 0.0]])
    b = jnp.array([[0.0, 2.0]])
    # ψ(a, b) = ½(1 + 4) + β·π/2; ψ(a, a) = ‖a‖² (angle 0, up to the √ε guard).
    np.testing.assert_allclose(losses.mico_distance_matrix(a, b, beta=0.1), [[2.5 + 0.1 * np.pi / 2]], rtol=1e-6)
    np.testing.assert_allclose(losses.mico_distance_matrix(a, a, beta=0.1), [[1.0]], atol=1e-5)
    np.testing.assert_allclose(losses.angular_distance(a, -a), [[np.pi]], atol=1e-4)


def test_mico_target_and_finite_gradient_at_parallel_vectors():
    nxt = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    target = losses.mico_target(nxt, REWARD, cumulative_gamma=0.5, beta=0.1)
    np.testing.assert_allclose(target, [[0.5, 1.5], [1.5, 0.5]], atol=1e-4)  # |Δr| + ½·‖φ'‖²
    grad = jax.grad(lambda o: losses.mico_loss(o, nxt, nxt, REWARD, cumulative_gamma=0.5))(nxt)
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_mixed_loss():
    assert float(losses.mixed_loss(jnp.array(2.0), jnp.array(10.0), weight=0.01)) == pytest.approx(2.08)


class TestShapes(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_shapes_and_dtypes(self):
        rep = jnp.ones((6, 4), jnp.float32)
        reward = jnp.zeros((6,), jnp.float32)
        ksme = self.variant(lambda o, t, n, r: losses.ksme_loss(o, t, n, r, cumulative_gamma=0.9))
        mico = self.variant(lambda o, t, n, r: losses.mico_loss(o, t, n, r, cumulative_gamma=0.9))
        for fn in (ksme, mico):
            out = fn(rep, rep, rep, reward)
            chex.assert_shape(out, ())
            chex.assert_type(out, jnp.float32)
        chex.assert_shape(losses.similarity_matrix(rep, rep[:3]), (6, 3))

    def test_bad_input(self):
        with pytest.raises(AssertionError):
            losses.ksme_loss(jnp.ones((4, 3)), jnp.ones((4, 2)), jnp.ones((4, 3)), jnp.ones(4), cumulative_gamma=0.9)
        with pytest.raises(ValueError, match="unknown similarity"):
            losses.similarity_matrix(jnp.ones((2, 2)), jnp.ones((2, 2)), similarity="rbf")
