"""Compile with XLA's optimizations off in these tests (their time is compilation of small programs)."""
import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def fast_compilation():
    """Most XLA optimizations off for this module's jitted functions (part of the jit cache key, restored after).

    The Minigrid tests compile one rollout per environment and run it for a few hundred
    steps: compilation is most of their time, and unoptimized programs compile about a
    third faster while computing the same integers (rewards agree to 1e-6 either way).
    """
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)
