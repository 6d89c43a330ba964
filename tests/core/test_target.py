"""Tests of core.target: periodic (hard) and EMA (Polyak) target-network updates."""
import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from core import target


def _trees():
    online = {"a": jnp.array([1.0, 2.0]), "b": {"c": jnp.array([[4.0]])}}
    old = {"a": jnp.array([3.0, 0.0]), "b": {"c": jnp.array([[-4.0]])}}
    return online, old


def _haiku_params(seed):
    net = hk.without_apply_rng(hk.transform(lambda x: hk.nets.MLP((4, 3))(x)))
    return net.init(jax.random.PRNGKey(seed), jnp.zeros((1, 2)))


class EmaUpdateTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed(self):
        online, old = _trees()
        new = self.variant(lambda o, t: target.ema_update(o, t, tau=0.25))(online, old)
        # 0.75·t + 0.25·o
        chex.assert_trees_all_close(new, {"a": jnp.array([2.5, 0.5]), "b": {"c": jnp.array([[-2.0]])}})

    @chex.variants(with_jit=True, without_jit=True)
    def test_tau_one_copies_and_tau_zero_keeps(self):
        online, old = _trees()
        ema = self.variant(lambda o, t, tau: target.ema_update(o, t, tau=tau))  # traced τ
        chex.assert_trees_all_equal(ema(online, old, jnp.float32(1.0)), online)
        chex.assert_trees_all_equal(ema(online, old, jnp.float32(0.0)), old)

    @chex.variants(with_jit=True, without_jit=True)
    def test_repeated_bbf_updates_decay_geometrically(self):
        # With fixed θ: θ⁻_k − θ = (1 − τ)^k (θ⁻_0 − θ); BBF's τ = 0.005 for 100 steps.
        online, old = _trees()

        def run(o, t):
            return jax.lax.fori_loop(0, 100, lambda _, t: target.ema_update(o, t, tau=0.005), t)

        new = self.variant(run)(online, old)
        expected = jax.tree.map(lambda o, t: o + 0.995**100 * (t - o), online, old)
        chex.assert_trees_all_close(new, expected, rtol=1e-5)

    def test_haiku_params_structure_and_dtype_preserved(self):
        online, old = _haiku_params(0), _haiku_params(1)
        new = jax.jit(lambda o, t: target.ema_update(o, t, tau=0.5))(online, old)
        chex.assert_trees_all_equal_structs(new, old)
        chex.assert_trees_all_equal_shapes_and_dtypes(new, old)
        chex.assert_trees_all_close(new, jax.tree.map(lambda o, t: (o + t) / 2, online, old))

    def test_bfloat16_leaves_not_promoted_by_traced_tau(self):
        online = {"w": jnp.ones(3, jnp.bfloat16)}
        old = {"w": jnp.zeros(3, jnp.bfloat16)}
        new = jax.jit(lambda tau: target.ema_update(online, old, tau=tau))(jnp.float32(0.5))
        chex.assert_type(new["w"], jnp.bfloat16)
        np.testing.assert_array_equal(np.asarray(new["w"], np.float32), [0.5, 0.5, 0.5])

    def test_rejects_bad_tau_and_mismatched_trees(self):
        online, old = _trees()
        with pytest.raises(ValueError, match="tau"):
            target.ema_update(online, old, tau=1.5)
        with pytest.raises(AssertionError):
            target.ema_update(online, {"a": old["a"]}, tau=0.1)


class PeriodicUpdateTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_copies_exactly_at_multiples_of_period(self):
        online, old = _trees()
        update = self.variant(lambda o, t, s: target.periodic_update(o, t, s, period=4))
        for step in range(13):
            new = update(online, old, jnp.int32(step))
            chex.assert_trees_all_equal(new, online if step % 4 == 0 else old)

    def test_scan_over_steps_under_jit(self):
        # A scan of 20 gradient steps where the online parameter equals the step counter:
        # the target holds the value of the last multiple of the period.
        period = 5

        def body(t, step):
            t = target.periodic_update({"w": step.astype(jnp.float32)}, t, step, period=period)
            return t, t["w"]

        _, history = jax.jit(lambda: jax.lax.scan(body, {"w": jnp.float32(-1.0)}, jnp.arange(1, 21)))()
        expected = [(s // period) * period if s >= period else -1 for s in range(1, 21)]
        np.testing.assert_array_equal(history, expected)

    def test_haiku_params_and_traced_period(self):
        online, old = _haiku_params(0), _haiku_params(1)
        update = jax.jit(lambda s, p: target.periodic_update(online, old, s, period=p))
        chex.assert_trees_all_equal(update(jnp.int32(6), jnp.int32(3)), online)
        chex.assert_trees_all_equal(update(jnp.int32(7), jnp.int32(3)), old)
        chex.assert_trees_all_equal_structs(update(jnp.int32(7), jnp.int32(3)), old)

    def test_rejects_bad_period_and_float_step(self):
        online, old = _trees()
        with pytest.raises(ValueError, match="period"):
            target.periodic_update(online, old, jnp.int32(0), period=0)
        with pytest.raises(AssertionError):
            target.periodic_update(online, old, jnp.float32(0.0), period=2)
