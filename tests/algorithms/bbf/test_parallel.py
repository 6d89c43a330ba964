"""BBF's data-parallel learner: on 2 (and 4) simulated CPU devices it equals the plain single-device update."""
import pytest


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bbf_learner_on_2_devices_equals_1_device_update():
    """3 updates of the smoke network (batch 8 split 4 + 4; per-example augmentation keys): parameters,
    EMA target parameters and all-gathered priorities equal the plain update's (float reassociation only)."""
    from benchmarks import bench_bbf

    rows = bench_bbf.spawn_child([2], preset="smoke", batch_size=8, updates=3, timing_updates=0, timeout=880)
    assert [(r["devices"], r["local_devices"]) for r in rows] == [(2, 2)]
    # The child asserts allclose(rtol=1e-4, atol=1e-5) itself.
    assert rows[0]["max_abs_diff_vs_plain"] < 1e-5


def test_augmentation_of_a_batch_shard_equals_that_part_of_the_whole_batch():
    """Per-example keys: augmenting rows 4..7 alone gives rows 4..7 of the whole batch's augmentation
    (what makes the split batch of the data-parallel learner see the same augmented images)."""
    import jax
    import numpy as np

    from algorithms.bbf import agent

    images = jax.random.randint(jax.random.PRNGKey(0), (8, 4, 12, 12), 0, 256).astype(np.uint8)
    keys = jax.random.split(jax.random.PRNGKey(1), 8)
    aug = jax.jit(lambda k, x: agent.augment_each(k, x, pad=2, intensity=0.05, channels_first=True))
    whole = np.asarray(aug(keys, images))
    np.testing.assert_array_equal(np.asarray(aug(keys[4:], images[4:])), whole[4:])
    assert not np.array_equal(whole, np.asarray(images))  # something was augmented
    assert len({whole[i].tobytes() for i in range(8)}) == 8  # independent draws per example
