"""The data-parallel update over 2 (simulated) CPU devices equals the 1-device update."""
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax
    from core import parallel
    from core.networks import NetworkConfig, make_q_network
    assert jax.local_device_count() == 2, jax.devices()
    net = make_q_network(NetworkConfig(torso="mlp", hidden_sizes=(32, 32)), 3)
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 5))
    y = jax.random.normal(jax.random.PRNGKey(1), (16, 3))
    params = net.init(jax.random.PRNGKey(2), x)
    opt = optax.adam(1e-2)

    def update(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((net.apply(p, x) - y) ** 2))(params)
        grads, loss = parallel.pmean((grads, loss))
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    results = {}
    for devices in (1, 2):
        f = jax.jit(parallel.data_parallel(update, parallel.local_mesh(devices), num_replicated=2, num_sharded=2))
        p, o = params, opt.init(params)
        for _ in range(20):
            p, o, loss = f(p, o, x, y)
        results[devices] = (p, float(loss))
    for a, b in zip(jax.tree.leaves(results[1][0]), jax.tree.leaves(results[2][0])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert abs(results[1][1] - results[2][1]) < 1e-5
    print("OK")
    """
)


@pytest.mark.timeout(120)
def test_two_device_update_equals_one_device_update():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=110,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout


def test_pmean_is_identity_outside_a_mapped_context():
    import jax.numpy as jnp

    from core import parallel

    x = {"a": jnp.ones(3)}
    assert parallel.pmean(x) is x


def _agent_learner_on_devices(agents):
    from benchmarks import bench_scaling

    rows = bench_scaling.spawn_child([1, 2, 4], quick=True, tiny=True, batch_size=16, updates=3, timing_updates=0,
                                     agents=agents, timeout=550)
    assert {(r["agent"], r["devices"]) for r in rows} == {(a, d) for a in agents for d in (1, 2, 4)}
    assert all(r["local_devices"] == 4 for r in rows)
    # The child asserts allclose(rtol=1e-4, atol=1e-5) itself; the differences are float reassociation.
    assert all(r["max_abs_diff_vs_1_device"] < 1e-5 for r in rows)


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
@pytest.mark.timeout(600)
def test_dqn_learner_on_2_and_4_devices_equals_1_device():
    """DQN's shard_map learner update over 1, 2, 4 simulated CPU devices: same parameters after 3 updates."""
    _agent_learner_on_devices(("dqn",))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rainbow_learner_on_2_and_4_devices_equals_1_device():
    """Rainbow/DER (C51, noisy, dueling, prioritized): same parameters and all-gathered priorities."""
    _agent_learner_on_devices(("rainbow",))
