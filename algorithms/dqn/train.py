"""DQN with double Q-learning: the baseline every paper directory compares against.

Papers: Mnih et al. 2015, "Human-level control through deep reinforcement learning"
(Nature 518); van Hasselt, Guez & Silver 2016, "Deep RL with Double Q-learning"
(arXiv 1509.06461). Hyperparameters of the ``paper`` preset follow Dopamine's JAX DQN
(Castro et al. 2018, arXiv 1812.06110) on the 200M-frame protocol of Machado et al. 2018.

Run:
    python -m algorithms.dqn.train cartpole --seed 0
Expected on 2 CPU cores (jax 0.10.2): final greedy evaluation return ≥ 475 over 10
episodes after 100k CartPole-v1 environment steps, in about 5 minutes (see README.md).

The agent's pure functions are in ``agent.py`` (shared with Rainbow/DER and DrQ(ε), which
switch on more of its components) and the envpool host loop / jitted JAX loop in
``loop.py``; this script holds DQN's presets.
"""
from __future__ import annotations

from core import cli

from algorithms.dqn import loop
from algorithms.dqn.agent import (  # noqa: F401  (re-exported: the names other papers build on)
    Agent, Config, LoopState, epsilon_greedy, make_agent, make_optimizer,
)
from algorithms.dqn.loop import Trainer, env_spec, make_trainer  # noqa: F401

PRESETS = {
    "smoke": (
        "CartPole-v1, 6k steps, several checkpoints: under a minute, used by the tests.",
        Config(total_steps=6_000, learning_starts=500, eps_decay_steps=2_000, buffer_size=5_000,
               batch_size=32, hidden_sizes=(64, 64), target_update_every=100, eval_every=2_000,
               eval_episodes=4, log_every=500, checkpoint_every=1_500, keep_checkpoints=5,
               out_dir="runs/dqn_smoke"),
    ),
    "cartpole": (
        "The demo: CartPole-v1, 100k steps, greedy evaluation ≥ 475 on 2 CPU cores in ~5 min.",
        Config(),
    ),
    "cpu": (
        "MinAtar (gymnax, loop in jit), Revisiting Rainbow's MinAtar DQN settings with double Q, 50k steps.",
        Config(env_id="Breakout-MinAtar", total_steps=50_000, num_envs=1, torso="minatar",
               head_hidden=128, learning_rate=2.5e-4, adam_eps=3.125e-4, max_grad_norm=0.0,
               batch_size=32, buffer_size=100_000, learning_starts=1_000, train_every=4, n_step=1,
               lr_final_fraction=1.0, target_update_every=1_000, eps_end=0.01, eps_decay_steps=5_000,
               eval_every=10_000, eval_episodes=32, eval_epsilon=0.0, log_every=5_000,
               checkpoint_every=25_000, out_dir="runs/dqn_minatar"),
    ),
    "paper": (
        "Nature DQN network, Dopamine JAX DQN hyperparameters, Atari 200M frames (50M agent steps).",
        Config(env_id="Pong-v5", total_steps=50_000_000, num_envs=1, atari_protocol="atari200m",
               torso="nature", head_hidden=512, learning_rate=6.25e-5, adam_eps=1.5e-4,
               max_grad_norm=0.0, batch_size=32, buffer_size=1_000_000, learning_starts=20_000, n_step=1,
               lr_final_fraction=1.0,
               train_every=4, target_update_every=2_000, eps_end=0.01, eps_decay_steps=250_000,
               eval_every=250_000, eval_episodes=32, eval_epsilon=0.001, log_every=10_000,
               checkpoint_every=1_000_000, out_dir="runs/dqn_atari"),
    ),
}


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one DQN run and writes every output of the CLI contract."""
    return loop.main(cfg, preset=preset, algorithm="dqn", title="DQN")


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.dqn.train")
