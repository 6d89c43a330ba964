"""DrQ(ε): data-regularised Q-learning with standard ε-greedy exploration.

Papers: Kostrikov, Yarats & Fergus 2020, "Image Augmentation Is All You Need: Regularizing
Deep RL from Pixels" (DrQ, arXiv 2004.13649); Agarwal et al. 2021, "Deep RL at the Edge of
the Statistical Precipice" (arXiv 2108.13264), whose DrQ(ε) keeps DrQ but trains with
ε = 0.01 and evaluates with ε = 0.001 instead of DrQ's 0.1/0.01. It is the Atari 100k agent
of the ReDo experiments (Sokar et al. 2023). The agent is :mod:`algorithms.dqn.agent`'s
double DQN with n = 10, a dueling head and random shifts (edge padding) of the sampled
observations s and s′ (``augment_pad``).

Run:
    python -m algorithms.drq.train cpu --env-id Breakout-MinAtar --seed 0
Expected on 2 CPU cores (jax 0.10.2): the MinAtar results table of README.md.

Presets: ``smoke`` (MinAtar, tests), ``cpu`` (MinAtar at the DrQ(ε) settings), ``paper``
(Atari 100k, Dopamine's DrQ(ε) configuration).
"""
from __future__ import annotations

from core import cli

from algorithms.dqn import loop
from algorithms.dqn.agent import Config

DRQ_EPS = dict(double_q=True, dueling=True, n_step=10, huber=True, learning_rate=1e-4, adam_eps=1.5e-4,
               max_grad_norm=0.0, lr_final_fraction=1.0, batch_size=32, learning_starts=1_600, train_every=1,
               target_update_every=1, eps_start=1.0, eps_end=0.01, eps_decay_steps=5_000, eval_epsilon=0.001)
"""Dopamine's DrQ(ε) hyperparameters (Atari 100k): n = 10, an update every step, no separate target."""

PRESETS = {
    "smoke": (
        "MinAtar Breakout, 4k steps with augmentation: under a minute, used by the tests.",
        Config(**{**DRQ_EPS, "learning_starts": 500, "eps_decay_steps": 1_000}, env_id="Breakout-MinAtar",
               torso="minatar", head_hidden=64, augment_pad=1, total_steps=4_000, buffer_size=5_000,
               eval_every=2_000, eval_episodes=4, log_every=500, checkpoint_every=1_000, keep_checkpoints=5,
               out_dir="runs/drq_smoke"),
    ),
    "cpu": (
        "MinAtar (gymnax, loop in jit) at the DrQ(ε) Atari-100k settings, shifts of ±1 pixel on 10×10, 50k steps.",
        Config(**DRQ_EPS, env_id="Breakout-MinAtar", torso="minatar", head_hidden=128, augment_pad=1,
               total_steps=50_000, buffer_size=100_000, eval_every=10_000, eval_episodes=32,
               log_every=5_000, checkpoint_every=25_000, out_dir="runs/drq_minatar"),
    ),
    "paper": (
        "DrQ(ε) on Atari 100k (Pong by default): Nature CNN, shifts of ±4 pixels, 100k agent steps.",
        Config(**DRQ_EPS, env_id="Pong-v5", atari_protocol="atari100k", torso="nature", head_hidden=512,
               augment_pad=4, reward_clip=True, total_steps=100_000, buffer_size=100_000,
               eval_every=100_000, eval_episodes=100, log_every=1_000, checkpoint_every=10_000,
               out_dir="runs/drq_atari100k"),
    ),
}


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one DrQ(ε) run and writes every output of the CLI contract."""
    return loop.main(cfg, preset=preset, algorithm="drq_eps", title="DrQ(ε)")


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.drq.train")
