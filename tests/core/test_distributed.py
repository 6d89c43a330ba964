"""Multi-process learning (core.distributed): helpers in one process, and 2 processes over loopback."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from core import distributed, parallel


def test_single_process_round_trip_and_global_step():
    """Without jax.distributed the job is this process: replicate/shard/to_local round-trip, and
    make_global_step runs a pmean'd update on process-local values, returning local arrays."""
    mesh = distributed.global_mesh()
    assert mesh.devices.size == jax.device_count()
    params = {"w": jnp.arange(3.0)}
    assert distributed.fingerprint(distributed.to_local(distributed.replicate(params, mesh))) == \
        distributed.fingerprint(params)
    batch = jnp.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(distributed.to_local(distributed.shard(batch, mesh)), batch)

    def update(w, x):
        grad = parallel.pmean(jnp.mean(x, axis=0).sum())
        return w - grad, parallel.all_gather(x[:, 0])

    sharded = parallel.data_parallel(update, mesh, num_replicated=1, num_sharded=1)
    step = distributed.make_global_step(sharded, mesh, num_replicated=1)
    w, rows = step(params["w"], batch)
    np.testing.assert_allclose(w, jnp.arange(3.0) - 7.0)
    np.testing.assert_array_equal(distributed.process_rows(rows, mesh), batch[:, 0])


def test_fingerprint_tells_trees_apart():
    a = {"w": np.zeros(3, np.float32)}
    assert distributed.fingerprint(a) == distributed.fingerprint({"w": np.zeros(3, np.float32)})
    assert distributed.fingerprint(a) != distributed.fingerprint({"w": np.zeros(3, np.float64)})
    assert distributed.fingerprint(a) != distributed.fingerprint({"w": np.array([0, 0, 1e-7], np.float32)})


def _two_processes(agent):
    from benchmarks import bench_multihost

    results = bench_multihost.spawn(2, agent=agent, iterations=2, env_steps=64, updates=3, batch_size=8, num_envs=4,
                                    timeout=500)
    assert [r["process_id"] for r in results] == [0, 1]
    assert all(r["num_processes"] == 2 and r["global_devices"] == 2 and r["global_batch"] == 16 for r in results)
    assert all(r["grad_steps"] == 6 and r["env_steps"] == 128 for r in results)
    # The learner is shared: both processes end with the same online and target parameters ...
    assert results[0]["fingerprint"] == results[1]["fingerprint"]
    assert results[0]["target_fingerprint"] == results[1]["target_fingerprint"]
    assert results[0]["final_loss"] == results[1]["final_loss"]
    # ... while each process's actors collected their own experience.
    assert results[0]["actor_fingerprint"] != results[1]["actor_fingerprint"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_processes_over_loopback_end_with_identical_parameters():
    """jax.distributed over loopback (gloo): 2 processes, actors in each, 6 synchronised DQN updates."""
    _two_processes("dqn")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_processes_rainbow_prioritized_replay_gets_its_own_rows():
    """Rainbow: the all-gathered priorities are split back to each process's replay; parameters agree."""
    _two_processes("rainbow")
