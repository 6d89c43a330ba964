"""Rainbow and its data-efficient variant DER, as presets of one script.

Papers: Hessel et al. 2018, "Rainbow: Combining Improvements in Deep Reinforcement
Learning" (arXiv 1710.02298); van Hasselt, Hessel & Aslanides 2019, "When to use parametric
models in reinforcement learning?" (DER, arXiv 1906.05243). The agent is the value-based
agent of :mod:`algorithms.dqn.agent` with every Rainbow component switched on: C51 return
distribution, n-step double-Q targets, dueling head, noisy head layers and proportional
prioritized replay with importance weights.

Run:
    python -m algorithms.rainbow.train cpu --env-id Breakout-MinAtar --seed 0
Expected on 2 CPU cores (jax 0.10.2): the MinAtar results table of README.md (this preset
at 3 seeds per game, a few minutes per run).

Presets: ``smoke`` (CartPole, tests), ``cpu`` (MinAtar, the Revisiting Rainbow settings of
Obando-Ceron & Castro 2021, arXiv 2011.14826), ``der`` (Atari 100k, DER as configured in
Dopamine's Atari 100k agents), ``paper`` (Rainbow on the 200M-frame protocol).
"""
from __future__ import annotations

from core import cli

from algorithms.dqn import loop
from algorithms.dqn.agent import Config

RAINBOW = dict(num_atoms=51, dueling=True, noisy=True, noisy_sigma0=0.5, double_q=True, prioritized=True,
               priority_exponent=0.5, huber=False, max_grad_norm=0.0, lr_final_fraction=1.0)
"""The components every preset switches on (huber is unused by the C51 loss)."""

PRESETS = {
    "smoke": (
        "CartPole-v1, 6k steps, every Rainbow component on: under a minute, used by the tests.",
        Config(**RAINBOW, total_steps=6_000, learning_starts=500, eps_start=0.0, eps_end=0.0,
               eps_decay_steps=0, buffer_size=5_000, batch_size=32, hidden_sizes=(64, 64), head_hidden=64,
               v_max=100.0, n_step=3, learning_rate=1e-3, importance_exponent=0.4,
               target_update_every=100, eval_every=2_000, eval_episodes=4, log_every=500,
               checkpoint_every=1_500, keep_checkpoints=5, out_dir="runs/rainbow_smoke"),
    ),
    "cpu": (
        "MinAtar (gymnax, loop in jit), Revisiting Rainbow's MinAtar hyperparameters, 50k steps.",
        Config(**RAINBOW, env_id="Breakout-MinAtar", total_steps=50_000, torso="minatar", head_hidden=128,
               v_max=100.0, n_step=3, learning_rate=1e-4, adam_eps=3.125e-4, batch_size=32,
               buffer_size=100_000, learning_starts=1_000, train_every=4, target_update_every=1_000,
               importance_exponent=0.5, importance_exponent_final=0.5,
               eps_start=1.0, eps_end=0.01, eps_decay_steps=5_000,
               eval_every=10_000, eval_episodes=32, eval_epsilon=0.0, log_every=5_000,
               checkpoint_every=25_000, out_dir="runs/rainbow_minatar"),
    ),
    "der": (
        "DER on Atari 100k (Pong by default): n=10, an update every step, Nature CNN, 100k agent steps.",
        Config(**RAINBOW, env_id="Pong-v5", atari_protocol="atari100k", total_steps=100_000, torso="nature",
               head_hidden=512, v_max=10.0, n_step=10, learning_rate=1e-4, adam_eps=1.5e-4, batch_size=32,
               buffer_size=100_000, learning_starts=1_600, train_every=1, target_update_every=2_000,
               reward_clip=True, importance_exponent=0.5, importance_exponent_final=0.5,
               eps_start=1.0, eps_end=0.01, eps_decay_steps=2_000,
               eval_every=100_000, eval_episodes=100, eval_epsilon=0.001, log_every=1_000,
               checkpoint_every=10_000, out_dir="runs/der_atari100k"),
    ),
    "paper": (
        "Rainbow on Atari 200M frames (50M agent steps), the hyperparameters of Hessel et al. 2018.",
        Config(**RAINBOW, env_id="Pong-v5", atari_protocol="atari200m", total_steps=50_000_000, torso="nature",
               head_hidden=512, v_max=10.0, n_step=3, learning_rate=6.25e-5, adam_eps=1.5e-4, batch_size=32,
               buffer_size=1_000_000, learning_starts=20_000, train_every=4, target_update_every=2_000,
               reward_clip=True, importance_exponent=0.4, importance_exponent_final=1.0,
               eps_start=0.0, eps_end=0.0, eps_decay_steps=0,
               eval_every=250_000, eval_episodes=32, eval_epsilon=0.001, log_every=10_000,
               checkpoint_every=1_000_000, out_dir="runs/rainbow_atari"),
    ),
}


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one Rainbow/DER run and writes every output of the CLI contract."""
    return loop.main(cfg, preset=preset, algorithm="rainbow", title="Rainbow")


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.rainbow.train")
