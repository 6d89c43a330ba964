"""The JAX Minigrid against the official ``minigrid`` package, step for step.

Each case builds a world with the official package (its registered environments, and a
"zoo" layout made through its generation API holding every object type and door state),
copies the grid, box contents and agent pose into the JAX environment, replays the same
random actions in both and requires identical observations, poses, carried objects,
terminations and truncations, and rewards within 1e-6.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from environments import minigrid
from environments.minigrid import core

gym = pytest.importorskip("gymnasium")
official = pytest.importorskip("minigrid")
from minigrid.core.grid import Grid  # noqa: E402
from minigrid.core.mission import MissionSpace  # noqa: E402
from minigrid.core.world_object import Ball, Box, Door, Floor, Goal, Key, Lava, Wall  # noqa: E402
from minigrid.minigrid_env import MiniGridEnv  # noqa: E402


class Zoo(MiniGridEnv):
    """Every object type, doors open/closed/locked, boxes holding keys and balls, lava and floor."""

    def __init__(self, size=9, max_steps=80, **kwargs):
        super().__init__(mission_space=MissionSpace(mission_func=lambda: "get to the green goal square"),
                         width=size, height=size, max_steps=max_steps, see_through_walls=False, **kwargs)

    def _gen_grid(self, width, height):
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        self.grid.vert_wall(4, 1, 3)
        self.put_obj(Door("red", is_locked=True), 4, 2)
        for obj in (Key("red"), Key("blue"), Ball("green"), Box("purple", Key("yellow")), Box("grey", Ball("red")),
                    Box("blue"), Door("yellow", is_locked=True), Door("blue"), Door("green", is_open=True),
                    Lava(), Floor(), Goal(), Wall(), Key("yellow"), Ball("purple")):
            self.place_obj(obj)
        self.place_agent()
        self.mission = "get to the green goal square"


def official_layout(env) -> minigrid.Layout:
    """The official world as a JAX layout."""
    grid = env.grid.encode()
    contents = np.tile(core.EMPTY_CELL, (env.width, env.height, 1))
    for i in range(env.width):
        for j in range(env.height):
            obj = env.grid.get(i, j)
            if obj is not None and obj.type == "box" and obj.contains is not None:
                contents[i, j] = obj.contains.encode()
    return minigrid.Layout(grid=jnp.asarray(grid), box_contents=jnp.asarray(contents),
                           agent_pos=jnp.asarray(env.agent_pos, jnp.int32), agent_dir=jnp.asarray(env.agent_dir),
                           mission=jnp.asarray(minigrid.tokenize(env.mission)))


def carried(env) -> np.ndarray:
    return env.carrying.encode() if env.carrying is not None else core.EMPTY_CELL


def _rollout(jax_env):
    """Jitted JAX rollout of an action sequence from a layout: every step's outputs, stacked."""

    def rollout(layout, actions):
        state, obs = jax_env.from_layout(layout)

        def body(state, action):
            state, out = jax_env.step(state, action)
            return state, (out, state.agent_pos, state.carrying, state.grid)

        return obs, jax.lax.scan(body, state, actions)[1]

    return jax.jit(rollout)


def replay(official_env, jax_env, actions, rollout=None):
    """Steps both until the official episode ends; asserts they agree at every step; returns event counts."""
    env = official_env.unwrapped
    layout = official_layout(env)
    first = env.gen_obs()
    records = []
    for action in actions:
        obs, reward, terminated, truncated, _ = official_env.step(int(action))
        records.append((obs["image"], obs["direction"], np.asarray(env.agent_pos), carried(env), env.grid.encode(),
                        reward, terminated, truncated))
        if terminated or truncated:
            break
    # The JAX side steps through the whole (fixed-length: one compilation) sequence; compare the episode.
    obs0, (out, pos, carrying, grid) = (rollout or _rollout(jax_env))(layout, jnp.asarray(actions, jnp.int32))
    taken = np.asarray(actions[:len(records)], np.int32)
    np.testing.assert_array_equal(np.asarray(obs0.image), first["image"])
    image, direction = np.asarray(out.observation.image), np.asarray(out.observation.direction)
    reward, terminated, truncated = np.asarray(out.reward), np.asarray(out.terminated), np.asarray(out.truncated)
    pos, carrying, grid = np.asarray(pos), np.asarray(carrying), np.asarray(grid)
    for t, (e_image, e_dir, e_pos, e_carry, e_grid, e_reward, e_term, e_trunc) in enumerate(records):
        where = f"step {t}, action {core.ACTIONS[taken[t]]}"
        np.testing.assert_array_equal(image[t], e_image, err_msg=where)
        assert direction[t] == e_dir, where
        np.testing.assert_array_equal(pos[t], e_pos, err_msg=where)
        np.testing.assert_array_equal(carrying[t], e_carry, err_msg=where)
        np.testing.assert_array_equal(grid[t], e_grid, err_msg=where)
        assert abs(float(reward[t]) - e_reward) < 1e-6, (where, float(reward[t]), e_reward)
        assert (bool(terminated[t]), bool(truncated[t])) == (e_term, e_trunc), where
    picked = (taken == core.PICKUP) & (carrying[:len(taken), 0] != core.EMPTY)
    return {"terminated": int(records[-1][6]), "truncated": int(records[-1][7]),
            "reward": int(sum(r[5] > 0 for r in records)), "pickup": int(picked.sum()),
            "toggle": int((taken == core.TOGGLE).sum())}


@pytest.mark.parametrize("env_id", ["MiniGrid-Empty-5x5-v0", "MiniGrid-Empty-Random-6x6-v0",
                                    "MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-8x8-v0", "MiniGrid-LavaGapS6-v0",
                                    "MiniGrid-FourRooms-v0"])
def test_registered_environments_match_the_official_package(env_id):
    jax_env = minigrid.make(env_id)
    official_env = gym.make(env_id)
    rng = np.random.default_rng(0)
    rollout = _rollout(jax_env)
    for seed in range(3):
        official_env.reset(seed=seed)
        # Forward-heavy random actions, so that goals are reached and doors met.
        actions = rng.choice(7, size=jax_env.spec.max_steps + 5, p=[0.15, 0.15, 0.4, 0.1, 0.05, 0.1, 0.05])
        replay(official_env, jax_env, actions, rollout)


def test_every_object_and_action_in_the_zoo():
    jax_env = minigrid.make("MiniGrid-Empty-8x8-v0", max_steps=80, see_through_walls=False)
    official_env = Zoo()
    rng = np.random.default_rng(1)
    totals = {}
    rollout = _rollout(jax_env)
    for seed in range(12):
        official_env.reset(seed=seed)
        events = replay(official_env, jax_env, rng.integers(0, 7, size=100), rollout)
        totals = {k: totals.get(k, 0) + v for k, v in events.items()}
    # The replays met what they were meant to: pickups, toggles, time-outs and episode ends.
    assert totals["pickup"] > 5 and totals["toggle"] > 20 and totals["truncated"] > 0, totals
    assert totals["terminated"] > 0, totals


def test_success_on_the_last_allowed_step_is_terminated_and_truncated():
    # Empty-5x5 from (1, 1) facing right: forward, forward, right, forward, forward reaches the goal in 5 steps.
    actions = [core.FORWARD, core.FORWARD, core.RIGHT, core.FORWARD, core.FORWARD]
    official_env = gym.make("MiniGrid-Empty-5x5-v0", max_steps=5)
    official_env.reset(seed=0)
    jax_env = minigrid.make("MiniGrid-Empty-5x5-v0", max_steps=5)
    events = replay(official_env, jax_env, actions)
    assert events == {"terminated": 1, "truncated": 1, "reward": 1, "pickup": 0, "toggle": 0}
