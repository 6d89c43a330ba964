"""core.aot.Compiler: one compile per argument signature, the compile time kept, results as jax.jit's."""
import jax
import jax.numpy as jnp
import numpy as np

from core.aot import Compiler, signature


def test_compiles_once_per_signature_and_matches_jit():
    traces = []

    def f(x, y):
        traces.append(x.shape)
        return {"sum": x * 2.0 + y, "n": x.shape[0]}

    compiler = Compiler()
    g = compiler(f)
    a = g(jnp.arange(3.0), jnp.ones(3))
    b = g(jnp.arange(3.0) + 1, jnp.zeros(3))  # same shapes and dtypes: the same executable
    assert traces == [(3,)] and compiler.seconds > 0
    np.testing.assert_allclose(a["sum"], [1.0, 3.0, 5.0])
    np.testing.assert_allclose(b["sum"], jax.jit(f)(jnp.arange(3.0) + 1, jnp.zeros(3))["sum"])
    seconds = compiler.seconds
    g(jnp.arange(4.0), jnp.ones(4))  # a new shape compiles again
    assert traces.count((4,)) == 1 and traces.count((3,)) == 1 and compiler.seconds > seconds


def test_signature_ignores_values_but_not_shapes_dtypes_or_structure():
    x = jnp.zeros((2, 3))
    assert signature((x,)) == signature((jnp.ones((2, 3)),))
    assert signature((x,)) != signature((jnp.zeros((3, 2)),))
    assert signature((x,)) != signature((x.astype(jnp.int32),))
    assert signature(({"a": x},)) != signature(({"b": x},))
