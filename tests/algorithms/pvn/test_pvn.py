"""PVN math: the mean-over-actions TD rule's fixed point, the pinball thresholds, the hash indicators, principal angles."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from algorithms.pvn import gridworld, pvn


def _random_mdp(seed, s=6, a=3):
    rng = np.random.default_rng(seed)
    p = rng.random((s, a, s)) ** 3
    return p / p.sum(-1, keepdims=True)


class TestSuccessorMeasureTD(chex.TestCase):

    def test_target_hand_computed(self):
        q_t = jnp.array([[1.0, 2.0], [3.0, 6.0]])  # [A=2, T=2]
        y = pvn.successor_measure_target(jnp.array([1.0, 0.0]), jnp.float32(1.0), q_t, gamma=0.5)
        np.testing.assert_allclose(y, [1.0 + 0.5 * 2.0, 0.5 * 4.0])
        y0 = pvn.successor_measure_target(jnp.array([1.0, 0.0]), jnp.float32(0.0), q_t, gamma=0.5)
        np.testing.assert_allclose(y0, [1.0, 0.0])  # termination: discount 0 ends the measure

    @chex.variants(with_jit=True, without_jit=True)
    def test_loss_value_and_gradient_only_through_the_taken_action(self):
        q = jnp.array([[0.5, 0.0], [1.0, 2.0]])
        loss_fn = self.variant(lambda q: pvn.successor_measure_td_loss(
            q, jnp.int32(1), jnp.array([1.0, 0.0]), jnp.float32(1.0), jnp.zeros((2, 2)), gamma=0.9))
        np.testing.assert_allclose(loss_fn(q), 0.5 * np.mean([0.0, 4.0]))
        g = jax.grad(loss_fn)(q)
        np.testing.assert_allclose(g, [[0.0, 0.0], [0.0, 1.0]])

    def test_expected_td_converges_to_the_uniform_successor_measure(self):
        """Semi-gradient TD on the expected loss over all (x, a, x') → V = (I − γP^unif)⁻¹ r (paper Sec. 4)."""
        p = _random_mdp(0)
        s, a, _ = p.shape
        gamma = 0.8
        r = np.eye(s)[:, :4]  # T = 4 indicator tasks r_i = 𝟙[x = i]
        xs, acts, nxt = np.meshgrid(np.arange(s), np.arange(a), np.arange(s), indexing="ij")
        weight = jnp.asarray(p.reshape(-1) / s / a)  # uniform over (x, a), x' ~ P

        def loss(q, q_bar):
            per = jax.vmap(lambda x, u, y: pvn.successor_measure_td_loss(
                q[x], u, jnp.asarray(r, jnp.float32)[x], jnp.float32(1.0), q_bar[y], gamma=gamma))(
                xs.reshape(-1), acts.reshape(-1), nxt.reshape(-1))
            return jnp.sum(weight * per) * 4  # mean over tasks inside

        @jax.jit
        def step(q, _):
            g = jax.grad(loss)(q, q)
            return q - 0.5 * s * a * g, None

        q, _ = jax.lax.scan(step, jnp.zeros((s, a, 4)), None, length=400)
        exact = np.asarray(pvn.successor_measure(jnp.asarray(gridworld.uniform_policy_matrix(p), jnp.float32),
                                                 gamma=gamma)) @ r
        np.testing.assert_allclose(np.asarray(q).mean(axis=1), exact, atol=1e-4)
        # and Q itself: r(x) + γ Σ P(x'|x,a) V(x')
        np.testing.assert_allclose(q, r[:, None, :] + gamma * np.einsum("xay,yt->xat", p, exact), atol=1e-4)

    @pytest.mark.slow
    def test_sampled_td_from_a_skewed_behaviour_policy_is_off_policy(self):
        """Sampled transitions of a non-uniform behaviour policy still give the *uniform* policy's measure."""
        p = _random_mdp(1)
        s, a, _ = p.shape
        gamma = 0.7
        behaviour = np.array([0.7, 0.2, 0.1])
        r = jnp.asarray(np.eye(s)[:, :3], jnp.float32)
        p_j, b_j = jnp.asarray(p), jnp.asarray(np.log(behaviour))

        def step(carry, k):
            q, q_bar, t = carry
            kx, ka, ky = jax.random.split(k, 3)
            x = jax.random.randint(kx, (64,), 0, s)
            u = jax.random.categorical(ka, b_j, shape=(64,))
            y = jax.random.categorical(ky, jnp.log(p_j[x, u] + 1e-12))
            g = jax.grad(lambda q: jnp.mean(jax.vmap(lambda x, u, y: pvn.successor_measure_td_loss(
                q[x], u, r[x], jnp.float32(1.0), q_bar[y], gamma=gamma))(x, u, y)))(q)
            lr = 20.0 / (1.0 + t / 300.0)
            q = q - lr * g
            return (q, pvn.ema(q, q_bar, decay=0.9), t + 1), None

        q0 = jnp.zeros((s, a, 3))
        (q, _, _), _ = jax.jit(lambda: jax.lax.scan(step, (q0, q0, 0.0), jax.random.split(jax.random.PRNGKey(0), 3000)))()
        v = np.asarray(q).mean(axis=1)
        uniform = np.linalg.solve(np.eye(s) - gamma * p.mean(1), np.asarray(r))
        behaviour_value = np.linalg.solve(np.eye(s) - gamma * np.einsum("a,xay->xy", behaviour, p), np.asarray(r))
        assert np.abs(v - uniform).max() < 0.05
        assert np.abs(uniform - behaviour_value).max() > 0.1  # the two differ: the test can fail


class TestThresholds:

    def test_pinball_loss_hand_computed(self):
        values = jnp.array([[0.0], [2.0]])
        loss = pvn.quantile_threshold_loss(values, jnp.array([1.0]), proportion=0.25)  # τ = 0.75
        np.testing.assert_allclose(loss, np.mean([(-1.0) * (0.75 - 1.0), 1.0 * 0.75]))

    @pytest.mark.parametrize("proportion", [0.01, pytest.param(0.1, marks=pytest.mark.slow)])
    def test_pinball_regression_makes_the_indicator_fire_on_proportion_p(self, proportion):
        key_data, key_eval = jax.random.split(jax.random.PRNGKey(0))
        scales = jnp.array([1.0, 3.0, 0.2])
        data = jax.random.normal(key_data, (20_000, 3)) * scales + jnp.array([0.0, 5.0, -2.0])
        opt = optax.adam(optax.linear_schedule(1e-1, 1e-3, 3000))

        def step(carry, k):
            th, st = carry
            batch = data[jax.random.randint(k, (512,), 0, data.shape[0])]
            g = jax.grad(lambda t: pvn.quantile_threshold_loss(batch, t, proportion=proportion))(th)
            upd, st = opt.update(g, st)
            return (optax.apply_updates(th, upd), st), None

        th0 = jnp.zeros(3)
        (th, _), _ = jax.jit(lambda: jax.lax.scan(step, (th0, opt.init(th0)), jax.random.split(key_data, 3000)))()
        fresh = jax.random.normal(key_eval, (50_000, 3)) * scales + jnp.array([0.0, 5.0, -2.0])
        rate = np.asarray(jax.vmap(pvn.threshold_indicators, in_axes=(0, None))(fresh, th)).mean(0)
        np.testing.assert_allclose(rate, proportion, atol=0.35 * proportion)


class TestHash:

    def test_deterministic_and_keyed(self):
        obs = (jax.random.uniform(jax.random.PRNGKey(0), (10, 10, 4)) < 0.1).astype(jnp.float32)
        params = pvn.hash_params(jax.random.PRNGKey(1), num_tasks=64, input_size=400)
        a = pvn.hash_codes(obs, params, num_bits=7)
        b = jax.jit(lambda o: pvn.hash_codes(o, params, num_bits=7))(obs)
        np.testing.assert_array_equal(a, b)
        assert a.dtype == jnp.uint32 and int(a.max()) < 128
        other = pvn.hash_codes(obs, pvn.hash_params(jax.random.PRNGKey(2), num_tasks=64, input_size=400), num_bits=7)
        assert np.mean(np.asarray(a) != np.asarray(other)) > 0.9

    def test_hand_computed_multiply_shift(self):
        params = pvn.HashParams(multipliers=jnp.array([[3, 5]], jnp.uint32), offsets=jnp.array([7], jnp.uint32))
        x = jnp.array([2.0, 1.0])
        expected = ((3 * 2 + 5 * 1 + 7) % 2**32) >> (32 - 4)
        assert int(pvn.hash_codes(x, params, num_bits=4)[0]) == expected == 0
        big = pvn.HashParams(multipliers=jnp.array([[2**31 + 1]], jnp.uint32), offsets=jnp.array([0], jnp.uint32))
        assert int(pvn.hash_codes(jnp.array([3.0]), big, num_bits=4)[0]) == ((3 * (2**31 + 1)) % 2**32) >> 28

    def test_spreads_distinct_observations_over_the_buckets(self):
        """Each task's indicator fires on ≈ 2⁻ᵐ of distinct observations, and buckets are near uniform."""
        obs = (jax.random.uniform(jax.random.PRNGKey(3), (2048, 10, 10, 1)) < 0.2).astype(jnp.float32)
        params = pvn.hash_params(jax.random.PRNGKey(4), num_tasks=16, input_size=100)
        bits = pvn.num_hash_bits(1 / 16)
        assert bits == 4
        codes = np.asarray(jax.vmap(lambda o: pvn.hash_codes(o, params, num_bits=bits))(obs))
        fire = (codes == 0).mean(0)
        np.testing.assert_allclose(fire.mean(), 1 / 16, atol=0.008)
        assert fire.min() > 1 / 16 * 0.6 and fire.max() < 1 / 16 * 1.4
        counts = np.stack([np.bincount(codes[:, t], minlength=16) for t in range(16)])
        expected = 2048 / 16
        chi2 = ((counts - expected) ** 2 / expected).sum(1)  # 15 dof: mean 15, sd ≈ 5.5
        assert np.median(chi2) < 30
        ind = np.asarray(jax.vmap(lambda o: pvn.hash_indicators(o, params, num_bits=bits))(obs))
        np.testing.assert_array_equal(ind, (codes == 0).astype(np.float32))
        assert np.mean(np.abs(np.corrcoef(ind.T)[np.triu_indices(16, 1)])) < 0.05  # tasks are not copies


def test_principal_angles_match_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 4)), rng.normal(size=(20, 3))
    b = np.concatenate([a[:, :1] + 0.1 * b[:, :1], b[:, 1:]], axis=1)
    got = np.sort(np.asarray(pvn.principal_angles(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))))
    np.testing.assert_allclose(got, np.sort(scipy.linalg.subspace_angles(a, b)), atol=1e-4)
    same = pvn.principal_angles(jnp.asarray(a, jnp.float32), jnp.asarray(a @ rng.normal(size=(4, 4)), jnp.float32))
    np.testing.assert_allclose(same, 0.0, atol=2e-3)


def test_successor_measure_solves_the_bellman_equation():
    p = gridworld.uniform_policy_matrix(gridworld.four_rooms().transitions)
    psi = np.asarray(pvn.successor_measure(jnp.asarray(p, jnp.float32), gamma=0.9))
    np.testing.assert_allclose(psi, np.eye(len(p)) + 0.9 * p @ psi, atol=1e-4)
    np.testing.assert_allclose(psi.sum(1), 1 / (1 - 0.9), rtol=1e-4)  # a measure of mass 1/(1 − γ)
