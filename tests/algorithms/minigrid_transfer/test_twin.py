"""The Minigrid twin task: the paper's layout, the mission, success when facing the target."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.minigrid_transfer import twin
from environments.minigrid import core, detokenize

ENV = twin.make()
RESET = jax.jit(jax.vmap(ENV.reset))
STEP = jax.jit(ENV.step)
LEFT, RIGHT, FORWARD = 0, 1, 2


def test_layouts_over_many_keys():
    states, obs = RESET(jax.random.split(jax.random.PRNGKey(0), 200))
    grid = np.asarray(states.grid)
    cells = [tuple(c) for c in twin.OBJECT_CELLS]
    kinds = grid[:, [c[0] for c in cells], [c[1] for c in cells]]  # [200, 4, 3]
    assert set(np.unique(kinds[..., 0])) == {core.BALL, core.BOX, core.KEY}
    assert all(len(set(k[:, 1])) == 4 for k in kinds)  # four distinct colours
    assert (np.asarray(states.agent_pos) == [5, 5]).all() and (np.asarray(states.agent_dir) == 0).all()
    targets = [cells.index(tuple(p)) for p in np.asarray(states.task.target_pos)]
    assert set(targets) == {0, 1, 2, 3}
    for i in range(20):
        kind, color = kinds[i, targets[i], 0], kinds[i, targets[i], 1]
        words = detokenize(obs.mission[i]).split()
        assert words[:3] == ["go", "to", "the"]
        assert words[3] == core.COLOR_NAMES[color] and core.OBJECT_TO_IDX[words[4]] == kind


def _face(target):
    # Agent faces right (+x); (9, 5) right, (5, 9) down = one right turn, (1, 5) two turns, (5, 1) one left turn.
    return {(9, 5): [], (5, 9): [RIGHT], (1, 5): [RIGHT, RIGHT], (5, 1): [LEFT]}[tuple(target)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_facing_the_target_ends_with_the_minigrid_reward(seed):
    state, _ = ENV.reset(jax.random.PRNGKey(seed))
    actions = _face(np.asarray(state.task.target_pos)) + [FORWARD, FORWARD, FORWARD]
    for t, a in enumerate(actions, start=1):
        state, out = STEP(state, jnp.int32(a))
        if t < len(actions):
            assert not bool(out.terminated) and float(out.reward) == 0.0
    assert bool(out.terminated) and not bool(out.truncated)
    assert float(out.reward) == pytest.approx(1 - 0.9 * len(actions) / twin.MAX_STEPS, rel=1e-6)


def test_facing_another_object_is_not_success_and_time_runs_out():
    state, _ = ENV.reset(jax.random.PRNGKey(0))
    target = tuple(np.asarray(state.task.target_pos))
    other = next(tuple(c) for c in twin.OBJECT_CELLS if tuple(c) != target)
    for a in _face(other) + [FORWARD] * 3:
        state, out = STEP(state, jnp.int32(a))
    assert not bool(out.terminated) and float(out.reward) == 0.0
    state = state._replace(step_count=jnp.int32(twin.MAX_STEPS - 1))
    state, out = STEP(state, jnp.int32(LEFT if other != (5, 1) else RIGHT))  # turn away from the wall object
    assert bool(out.truncated) and not bool(out.terminated)
