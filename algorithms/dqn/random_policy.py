"""The uniform random policy's return: the floor of every learning curve.

    python -m algorithms.dqn.random_policy Breakout-MinAtar Asterix-MinAtar ... [--episodes 100]

Runs ``--episodes`` episodes of uniformly random actions per environment id, through the
same evaluation code as the agents (:func:`algorithms.dqn.loop.make_evaluate_jax` for JAX
environments, :func:`algorithms.dqn.loop.evaluate_host` for envpool ones), and prints a
markdown table of mean ± std return.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import environments
from core import cli

from algorithms.dqn.agent import Config, epsilon_greedy
from algorithms.dqn.loop import evaluate_host, make_evaluate_jax


def random_returns(env_id: str, *, episodes: int, seed: int = 0, max_steps: int = 27_000) -> np.ndarray:
    """``[episodes]`` returns of the uniform random policy on ``env_id``."""
    cfg = dataclasses.replace(Config(), env_id=env_id, eval_episodes=episodes, eval_epsilon=1.0,
                              eval_max_steps=max_steps, seed=seed, atari_protocol="atari100k")

    def act(params, observation, key, epsilon):  # ε = 1: every action uniform
        num_actions = params
        return epsilon_greedy(key, jnp.zeros((observation.shape[0], num_actions)), epsilon)

    if environments.is_jax_env(env_id):
        env = environments.make_jax(env_id)
        evaluate = jax.jit(make_evaluate_jax(cfg, env, act), static_argnums=0)
        return np.asarray(evaluate(env.spec.num_actions, jax.random.PRNGKey(seed)))
    with environments.make(env_id, num_envs=1, seed=0) as probe:
        num_actions = probe.spec.num_actions
    return evaluate_host(cfg, act, num_actions, index=0)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m algorithms.dqn.random_policy", description=__doc__.split("\n")[0])
    parser.add_argument("env_ids", nargs="+", help="environment ids")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per environment (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        cli.fail("--episodes: must be positive")
    try:
        for env_id in args.env_ids:
            environments.check_env_id(env_id)
    except environments.UnknownEnvironmentError as error:
        cli.fail(str(error))
    print("| environment | random policy return (mean ± std) | episodes |\n|---|---|---|")
    for env_id in args.env_ids:
        returns = random_returns(env_id, episodes=args.episodes, seed=args.seed)
        print(f"| {env_id} | {returns.mean():.2f} ± {returns.std():.2f} | {len(returns)} |")


if __name__ == "__main__":
    main()
