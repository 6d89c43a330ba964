"""KSMe / MICo exact tabular math: identities, hand-computed example, bounds (arXiv 2310.19804)."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from algorithms.ksme import kernels

x64 = functools.partial(jax.enable_x64, True)  # float64 inside `with x64():` only, never globally

# The two-state chain of the hand-computed tests: state 0 pays 1 and moves to 0 or 1 with
# probability ½ each; state 1 pays 0 and is absorbing.
P2 = np.array([[0.5, 0.5], [0.0, 1.0]])
R2 = np.array([1.0, 0.0])
GAMMA2 = 0.9


def random_mdps(seed, num, num_states, *, concentration=1.0):
    """``num`` random chains: Dirichlet(concentration) rows, rewards uniform in [0, 1]."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(num_states, concentration), size=(num, num_states))
    r = rng.uniform(0.0, 1.0, size=(num, num_states))
    return P, r


def _metrics(P, r, gamma):
    """Every JAX function of the module on one MDP, so that one compilation serves all."""
    U = kernels.mico_distance(P, r, gamma=gamma)
    k = kernels.ksme_kernel(P, r, gamma=gamma)
    return {"U": U, "k": k, "d": kernels.ksme_distance(k), "reduced": kernels.reduced_mico(U),
            "values": kernels.value_function(P, r, gamma=gamma),
            "check": kernels.check_value_difference_bound(P, r, gamma=gamma)}


# Batches of N MDPs of S states, discounts spread over [0, 0.99]: one compiled shape for all.
N, S = 100, 5
GAMMAS = np.tile([0.0, 0.3, 0.6, 0.9, 0.99], N // 5)
metrics = jax.jit(jax.vmap(_metrics))
metrics_one = jax.jit(_metrics)  # a single MDP (the two-state and four-state examples)


def test_two_state_example_by_hand():
    # Closed form of each fixed-point equation, solved by hand (γ = 0.9):
    #   U(1,1) = γ U(1,1)                                  -> U11 = 0
    #   U(0,1) = 1 + γ (½ U(0,1) + ½ U(1,1))               -> U01 = 1 / (1 − 0.45) = 20/11
    #   U(0,0) = γ ¼ (U(0,0) + 2 U(0,1) + U(1,1))          -> U00 = 0.45 U01 / 0.775 = 360/341
    #   k(1,1) = 1 + γ k(1,1)                              -> k11 = 10
    #   k(0,1) = ½ + γ (½ k(0,1) + ½ k(1,1))               -> k01 = (0.5 + 4.5) / 0.55 = 100/11
    #   k(0,0) = 1 + γ ¼ (k(0,0) + 2 k(0,1) + k(1,1))      -> k00 = (1 + 0.225 (200/11 + 10)) / 0.775
    U00, U01, U11 = 360 / 341, 20 / 11, 0.0
    k11, k01 = 10.0, 100 / 11
    k00 = (1 + 0.225 * (200 / 11 + 10)) / 0.775
    d01 = k00 + k11 - 2 * k01
    assert abs(k00 - (10 - U00 / 2)) < 1e-12  # the hand values already satisfy k = 1/(1−γ) − U/2
    assert abs(d01 - 440 / 341) < 1e-12  # = U01 − ½U00 − ½U11
    with x64():
        m = metrics_one(P2, R2, GAMMA2)
        np.testing.assert_allclose(m["U"], [[U00, U01], [U01, U11]], rtol=0, atol=1e-12)
        np.testing.assert_allclose(m["k"], [[k00, k01], [k01, k11]], rtol=0, atol=1e-12)
        np.testing.assert_allclose(m["d"], [[0.0, d01], [d01, 0.0]], rtol=0, atol=1e-12)
        np.testing.assert_allclose(m["reduced"], m["d"], rtol=0, atol=1e-12)
        # V(1) = γ V(1) = 0, V(0) = 1 + γ ½ V(0) = 20/11: the MICo bound U01 is tight here.
        np.testing.assert_allclose(m["values"], [20 / 11, 0.0], rtol=0, atol=1e-12)


def test_two_state_example_bisimulation_and_bounds():
    # d(0,1) = 1 + γ W1(d)((½, ½), (0, 1)) = 1 + γ ½ d(0,1)  -> 20/11, equal to |V(0) − V(1)|.
    bisim = kernels.bisimulation_metric(P2, R2, gamma=GAMMA2, tol=1e-13)
    assert bisim.converged
    np.testing.assert_allclose(bisim.distance, [[0.0, 20 / 11], [20 / 11, 0.0]], atol=1e-11)
    with x64():
        m = metrics_one(P2, R2, GAMMA2)
        check = m["check"]
        assert bool(check.ksme_holds) and bool(check.mico_holds)
        np.testing.assert_allclose(check.ksme_bound[0, 1], np.sqrt((440 / 341) / (1 - GAMMA2)), atol=1e-12)
        np.testing.assert_allclose(check.mico_bound[0, 1], 20 / 11, atol=1e-12)
        # d_KSMe itself (no square root) is below |V(0) − V(1)| and below the bisimulation
        # metric here: neither value differences nor d_bisim are bounded by d_KSMe.
        d01 = float(m["d"][0, 1])
        assert d01 < float(check.value_difference[0, 1]) - 0.5
        assert d01 < bisim.distance[0, 1] - 0.5


def test_kernel_is_one_over_one_minus_gamma_minus_half_mico_and_distance_is_reduced_mico():
    with x64():
        for seed in range(2):
            P, r = random_mdps(seed, N, S)
            m = metrics(P, r, GAMMAS)
            U, k, d = m["U"], m["k"], m["d"]
            chex.assert_shape([U, k], (N, S, S))
            chex.assert_type([U, k], jnp.float64)
            np.testing.assert_allclose(k, 1.0 / (1.0 - GAMMAS[:, None, None]) - U / 2.0, rtol=0, atol=1e-8)
            np.testing.assert_allclose(d, m["reduced"], rtol=0, atol=1e-8)
            np.testing.assert_allclose(U, np.swapaxes(U, 1, 2), atol=1e-10)
            assert float(jnp.min(U)) >= -1e-10 and float(jnp.min(d)) >= -1e-8


def test_kernel_is_positive_semidefinite_for_rewards_in_unit_interval():
    with x64():
        for seed, concentration in ((10, 0.1), (11, 0.3), (12, 1.0), (13, 3.0)):
            P, r = random_mdps(seed, N, S, concentration=concentration)
            r[:25] = np.round(r[:25])  # rewards at the ends of [0, 1] as well
            assert float(np.min(np.linalg.eigvalsh(np.asarray(metrics(P, r, GAMMAS)["k"])))) >= -1e-9
        # Outside [0, 1] the reward kernel 1 − ½|r(x) − r(y)| can fail to be PSD: [[1, −4], [−4, 1]].
        k_bad = metrics_one(np.eye(2), np.array([0.0, 10.0]), 0.0)["k"]
        np.testing.assert_allclose(k_bad, [[1.0, -4.0], [-4.0, 1.0]], atol=1e-12)
        assert float(np.min(np.linalg.eigvalsh(np.asarray(k_bad)))) < -1.0


def test_fixed_point_iteration_converges_to_the_linear_solve():
    iterate = lambda n: jax.jit(jax.vmap(functools.partial(kernels.mico_fixed_point, gamma=0.9, num_iterations=n)))
    with x64():
        P, r = random_mdps(1, N, S)
        exact = metrics(P, r, np.full(N, 0.9))["U"]
        np.testing.assert_allclose(iterate(400)(P, r), exact, rtol=0, atol=1e-10)
        # After K applications from 0 the error is at most γ^K ‖U‖_∞ (and not yet 0 at K = 10).
        error = np.max(np.abs(iterate(10)(P, r) - exact), axis=(1, 2))
        assert np.all(error <= 0.9 ** 10 * np.max(exact, axis=(1, 2)) + 1e-12)
        assert np.all(error > 1e-3)


def test_mico_satisfies_its_fixed_point_equation_and_is_diffuse():
    with x64():
        P, r = random_mdps(2, N, S)
        U = metrics(P, r, GAMMAS)["U"]
        delta_r = np.abs(r[:, :, None] - r[:, None, :])
        rhs = delta_r + GAMMAS[:, None, None] * np.einsum("nxa,nab,nyb->nxy", P, U, P)
        np.testing.assert_allclose(U, rhs, rtol=0, atol=1e-9)
        # Diffuse: self-distances are positive once γ > 0 (the two-state example has U(0,0) = 360/341).
        diagonal = np.diagonal(U, axis1=1, axis2=2)
        assert np.all(diagonal[GAMMAS > 0] > 0) and np.all(diagonal[GAMMAS == 0] == 0)
        assert float(metrics_one(P2, R2, GAMMA2)["U"][0, 0]) > 1.0


def test_states_with_same_reward_and_next_state_distribution():
    P, r = random_mdps(3, 1, 4)
    P, r = P[0], r[0]
    P[1], r[1] = P[0], r[0]  # states 0 and 1 are behaviourally indistinguishable
    bisim = kernels.bisimulation_metric(P, r, gamma=0.5, tol=1e-10)
    assert bisim.converged and abs(bisim.distance[0, 1]) <= 1e-12
    assert np.all(bisim.distance[2:, :2] > 0)
    with x64():
        m = metrics_one(P, r, 0.5)
        U, d = m["U"], m["reduced"]
        assert float(U[0, 1]) > 1e-3  # MICo is diffuse: positive between equivalent states
        assert abs(float(d[0, 1])) < 1e-12  # the reduced MICo (= d_KSMe) is not


def test_bisimulation_bounds_value_differences_and_is_below_mico():
    with x64():
        for seed in range(4):
            P, r = random_mdps(100 + seed, 1, 4)
            P, r = P[0], r[0]
            bisim = kernels.bisimulation_metric(P, r, gamma=0.5, tol=1e-11)
            assert bisim.converged
            m = metrics_one(P, r, 0.5)
            values = np.asarray(m["values"])
            assert np.all(np.abs(values[:, None] - values[None, :]) <= bisim.distance + 1e-9)
            # W1 ≤ the independent coupling's expected cost, so d_bisim ≤ U (MICo) elementwise.
            U = np.asarray(m["U"])
            assert np.all(bisim.distance <= U + 1e-9)
            np.testing.assert_array_equal(bisim.distance, bisim.distance.T)


def test_kernel_embedding_reproduces_the_ksme_distance():
    with x64():
        P, r = random_mdps(4, N, S)
        m = metrics(P, r, GAMMAS)
        k, d = m["k"], m["d"]
        phi = jax.jit(jax.vmap(kernels.kernel_embedding))(k)
        chex.assert_shape(phi, (N, S, S))
        np.testing.assert_allclose(np.einsum("nxi,nyi->nxy", phi, phi), k, rtol=0, atol=1e-8)
        assert float(jnp.max(jax.jit(jax.vmap(kernels.embedding_distortion))(phi, d))) <= 1e-8
        # √d_KSMe is a Euclidean distance, so it satisfies the triangle inequality.
        root = np.sqrt(np.maximum(np.asarray(d), 0.0))
        assert np.all(root[:, :, None, :] <= root[:, :, :, None] + root[:, None, :, :] + 1e-9)


def test_value_difference_bound_on_a_thousand_random_mdps():
    with x64():
        violated_half, violated_raw = 0, 0
        for seed in range(10):  # 10 × 100 MDPs
            P, r = random_mdps(200 + seed, N, S, concentration=(0.3, 1.0)[seed % 2])
            r[:30] = np.round(r[:30])
            m = metrics(P, r, GAMMAS)
            result = m["check"]
            assert bool(jnp.all(result.ksme_holds)) and bool(jnp.all(result.mico_holds))
            gap = np.asarray(result.value_difference)
            # The bound is not loose by a factor 2 (the constant is attained at γ = 0, r ∈ {0, 1}),
            # and d_KSMe without the square root is no bound at all: both fail on some MDPs.
            violated_half += int(np.sum(np.any(gap > 0.5 * np.asarray(result.ksme_bound) + 1e-8, axis=(1, 2))))
            d = np.asarray(m["d"])
            violated_raw += int(np.sum(np.any(gap > d + 1e-8, axis=(1, 2))))
        assert violated_half > 0
        assert violated_raw > 0


class ShapesAndJit(chex.TestCase):
    """``chex.variants`` with and without ``jit``: shapes and dtypes in float32."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_shapes_and_dtypes(self):
        P, r = (jnp.asarray(a[0], jnp.float32) for a in random_mdps(5, 1, 4))

        @self.variant
        def run(P, r):
            out = _metrics(P, r, 0.9)
            out["U_iter"] = kernels.mico_fixed_point(P, r, gamma=0.9, num_iterations=200)
            out["phi"] = kernels.kernel_embedding(out["k"])
            out["distortion"] = kernels.embedding_distortion(out["phi"], out["d"])
            out["values"] = kernels.value_function(P, r, gamma=0.9)
            out["bound"] = kernels.value_difference_bound(out["k"], gamma=0.9)
            return out

        out = run(P, r)
        check = out.pop("check")
        square = [out[name] for name in ("U", "U_iter", "k", "d", "reduced", "phi", "bound")]
        chex.assert_shape(square + [check.value_difference, check.ksme_bound, check.mico_bound], (4, 4))
        chex.assert_shape([out["distortion"], check.ksme_holds, check.mico_holds], ())
        chex.assert_shape(out["values"], (4,))
        chex.assert_type(list(out.values()), jnp.float32)
        chex.assert_tree_all_finite(out)
        np.testing.assert_allclose(out["U_iter"], out["U"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(out["d"], out["reduced"], rtol=1e-4, atol=1e-4)
        assert float(out["distortion"]) < 1e-3
        assert bool(check.ksme_holds) and bool(check.mico_holds)

    def test_bad_shapes_fail(self):
        with self.assertRaises(AssertionError):
            kernels.mico_distance(jnp.ones((3, 4)) / 4, jnp.zeros(3), gamma=0.9)
        with self.assertRaises(AssertionError):
            kernels.ksme_kernel(jnp.eye(3), jnp.zeros((3, 1)), gamma=0.9)


def test_iterate_to_tolerance_reaches_the_linear_solves():
    P, r = random_mdps(7, 1, 6)
    P, r = P[0], r[0]
    with x64():
        delta_r = kernels.reward_differences(jnp.asarray(r))
        gamma, tol = 0.9, 1e-10
        mico = kernels.iterate_to_tolerance(jnp.asarray(P), delta_r, gamma=gamma, tol=tol, max_iterations=5000)
        ksme = kernels.iterate_to_tolerance(jnp.asarray(P), 1 - 0.5 * delta_r, gamma=gamma, tol=tol,
                                            max_iterations=5000)
        assert bool(mico.converged) and bool(ksme.converged)
        # Contraction: the error at exit is at most γ/(1 − γ)·tol.
        bound = gamma / (1 - gamma) * tol + 1e-12
        assert float(jnp.max(jnp.abs(mico.value - kernels.mico_distance(P, r, gamma=gamma)))) <= bound
        assert float(jnp.max(jnp.abs(ksme.value - kernels.ksme_kernel(P, r, gamma=gamma)))) <= bound
        capped = kernels.iterate_to_tolerance(jnp.asarray(P), delta_r, gamma=gamma, tol=tol, max_iterations=3)
        assert int(capped.num_iterations) == 3 and not bool(capped.converged)


def test_sampled_pairwise_td_estimate_converges_to_the_closed_form():
    P, r = random_mdps(3, 1, 5)
    P, r = jnp.asarray(P[0], jnp.float32), jnp.asarray(r[0], jnp.float32)
    k = kernels.ksme_kernel(P, r, gamma=0.9)
    estimate = jax.jit(lambda key: kernels.ksme_sampled_td(key, P, r, gamma=0.9, num_steps=20_000))
    error = float(jnp.max(jnp.abs(estimate(jax.random.PRNGKey(0)) - k)))
    scale = float(jnp.max(jnp.abs(k)))  # ≈ 1/(1 − γ) = 10, the error of the zero initialisation
    assert error < 0.02 * scale, (error, scale)


def test_truncated_embedding_distortion_falls_to_zero_with_the_dimension():
    P, r = random_mdps(11, 1, 6)
    with x64():
        k = kernels.ksme_kernel(P[0], r[0], gamma=0.9)
        d = kernels.ksme_distance(k)
        distortion = [float(kernels.embedding_distortion(kernels.kernel_embedding(k, num_features=n), d))
                      for n in range(1, 7)]
    assert all(a >= b - 1e-12 for a, b in zip(distortion, distortion[1:])), distortion
    assert distortion[0] > 1e-3 and distortion[-1] < 1e-10, distortion
