"""BBF: Bigger, Better, Faster (Schwarzer et al., ICML 2023, arXiv 2305.19452).

A data-efficient Rainbow (C51, dueling, double Q, prioritized replay) with a 15-layer Impala
CNN ×4, SPR self-prediction, shrink-and-perturb resets every 20k environment steps, n
annealed 10 → 3 and γ 0.97 → 0.997 after each reset, AdamW with weight decay, an EMA target
that also acts, and a replay ratio of 8 — on Atari 100k.

Run:
    python -m algorithms.bbf.train cpu --env-id Breakout-MinAtar --seed 0
    python -m algorithms.bbf.train paper --env-id ChopperCommand-v5       # an accelerator
Expected on 2 shared CPU cores: the ``cpu`` preset is ~0.8M gradient steps of a small Impala
network (tens of ms each here), i.e. hours per run; the ``paper`` preset costs seconds per
gradient step on this CPU (README "Cost"), so Atari 100k is for accelerators.

Presets: ``smoke`` (MinAtar, 2k steps, tests), ``cpu`` (MinAtar, 100k steps, scaled-down
Impala, replay ratio 8), ``cpu_spr`` (SPR-style baseline on MinAtar: small CNN, no resets,
no annealing), ``atari_smoke`` (the Atari 100k path end to end, a few hundred steps),
``paper`` (Atari 100k, the paper's hyperparameters). Ablations of the paper as flags:
``--no-resets``, ``--spr-weight 0``, ``--no-anneal-n --no-anneal-gamma``,
``--weight-decay 0``, ``--no-anneal-n --n-step 10``, ``--no-anneal-gamma --gamma 0.99``.
"""
from __future__ import annotations

import dataclasses

from core import cli

from algorithms.bbf.agent import make_bbf_agent, replay_horizon
from algorithms.bbf.networks import ENCODERS
from algorithms.dqn import loop
from algorithms.dqn.agent import Config as AgentConfig


@dataclasses.dataclass(frozen=True)
class Config(AgentConfig):
    """BBF configuration: the value-based agent's fields plus BBF's. Every field is a CLI flag."""

    encoder: str = "impala"
    """Encoder: "impala" (BBF), "minatar" (one 3×3 conv, SPR-sized MinAtar baseline), "nature" (SPR/DER on Atari)."""
    impala_width: int = 4
    """Width multiplier of the Impala stage channels (4 in BBF)."""
    impala_channels: tuple[int, ...] = (16, 32, 32)
    """Impala stage channels before the width multiplier (one max-pool /2 per stage)."""
    impala_blocks: int = 2
    """Residual blocks per Impala stage (2 in BBF: 15 conv layers)."""
    hidden_dim: int = 2048
    """Units of the projection and predictor layers (2048 in BBF)."""
    renormalize: bool = True
    """Min–max renormalise every sample's latent to [0, 1] (encoder and transition model)."""
    matmul_convs: bool = False
    """Compute the 3×3 convolutions as shifted matmuls (same function; faster inside the jitted MinAtar loop)."""
    spr_weight: float = 5.0
    """λ of the SPR loss (5 in BBF); 0 removes SPR (the "-SPR" ablation)."""
    spr_steps: int = 5
    """K, future steps the transition model predicts (5 in BBF)."""
    intensity_scale: float = 0.05
    """Intensity augmentation scale (0.05 in SPR/BBF); 0 = shift only."""
    resets: bool = True
    """Shrink-and-perturb resets (--no-resets is the "-Resets" ablation)."""
    reset_every: int = 20_000
    """Environment steps between resets (20k in BBF)."""
    no_resets_after: int = 100_000
    """No reset at step T unless T + reset_every <= this (BBF: 100k, i.e. resets at 20k, 40k, 60k, 80k)."""
    shrink_factor: float = 0.5
    """α: the encoder and transition model keep α·θ at a reset (0.5 in BBF)."""
    perturb_factor: float = 0.5
    """β: and receive β·θ₀ of a fresh initialisation (0.5 in BBF)."""
    reset_target: bool = True
    """Reset the target network the same way (with its own fresh initialisation), as the reference does."""
    anneal_steps: int = 10_000
    """Gradient steps after each reset over which n and γ are annealed (10k in BBF)."""
    anneal_n: bool = True
    """Anneal n exponentially from n_step_max to n_step; otherwise n = n_step throughout."""
    n_step_max: int = 10
    """n right after a reset (10 in BBF)."""
    anneal_gamma: bool = True
    """Anneal γ from gamma_min to gamma (log-linear in 1 − γ); otherwise γ = gamma throughout."""
    gamma_min: float = 0.97
    """γ right after a reset (0.97 in BBF)."""
    target_tau: float = 0.005
    """EMA step τ of the target network, every gradient step (0.005 in BBF)."""
    act_with_target: bool = True
    """Act (during training) with the target network, as BBF does."""
    scan_updates: bool = True
    """Group the gradient steps of one learning call in one lax.scan (as the reference); else unrolled."""

    def validate(self) -> None:
        super().validate()
        req = cli.require
        req(self.encoder in ENCODERS, "encoder", f"unknown encoder {self.encoder!r}; choose one of {ENCODERS}")
        for name in ("impala_width", "impala_blocks", "hidden_dim", "spr_steps", "reset_every", "n_step_max"):
            req(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        req(len(self.impala_channels) > 0 and all(c > 0 for c in self.impala_channels), "impala_channels",
            f"must be positive channel counts, got {self.impala_channels}")
        req(self.num_atoms >= 2, "num_atoms", f"BBF is distributional (C51): need >= 2 atoms, got {self.num_atoms}")
        req(self.spr_weight >= 0, "spr_weight", "must be >= 0 (0 removes SPR)")
        req(self.intensity_scale >= 0, "intensity_scale", "must be >= 0")
        req(self.no_resets_after >= 0, "no_resets_after", "must be >= 0")
        for name in ("shrink_factor", "perturb_factor", "target_tau"):
            req(0.0 <= getattr(self, name) <= 1.0, name, f"must lie in [0, 1], got {getattr(self, name)}")
        req(self.anneal_steps >= 0, "anneal_steps", "must be >= 0")
        req(0.0 <= self.gamma_min <= self.gamma < 1.0, "gamma_min",
            f"need 0 <= gamma_min <= gamma < 1, got gamma_min={self.gamma_min}, gamma={self.gamma}")
        req(self.n_step_max >= self.n_step, "n_step_max",
            f"must be >= n_step={self.n_step} (n anneals from n_step_max down to n_step)")
        req(not self.noisy, "noisy", "BBF uses no noisy layers")
        req(self.buffer_size >= 2 * self.num_envs * (replay_horizon(self) + 5), "buffer_size",
            f"must hold at least {2 * self.num_envs * (replay_horizon(self) + 5)} transitions")


BBF = dict(num_atoms=51, v_max=10.0, dueling=True, double_q=True, noisy=False, prioritized=True,
           priority_exponent=0.5, importance_exponent=0.5, importance_exponent_final=0.5, huber=False,
           max_grad_norm=0.0, lr_final_fraction=1.0, learning_rate=1e-4, adam_eps=1.5e-4, weight_decay=0.1,
           gamma=0.997, n_step=3, batch_size=32, train_every=1, gradient_steps=8, target_update_every=1,
           reward_clip=True, eps_start=1.0, eps_end=0.0, eps_decay_steps=2_001, learning_starts=2_000,
           torso="impala")
"""The paper's hyperparameters shared by every preset (BBF.gin of the reference; replay ratio 8)."""

CPU_NETWORK = dict(impala_width=1, impala_channels=(16, 32, 32), impala_blocks=1, hidden_dim=256,
                   matmul_convs=True, augment_pad=1)
"""MinAtar scaling: 10×10 boards → Impala ×1 with one residual block per stage (7 convs; 10→5→3→2 pixels),
256 projection units, ±1-pixel shifts."""

PRESETS = {
    "smoke": (
        "MinAtar Breakout, 2k steps, tiny Impala, one reset and the annealing: under a minute, used by the tests.",
        Config(**{**BBF, "learning_starts": 300, "eps_decay_steps": 300, "gradient_steps": 2, "batch_size": 8},
               env_id="Breakout-MinAtar", total_steps=2_000, impala_width=1, impala_channels=(4,),
               impala_blocks=1, hidden_dim=16, augment_pad=1, spr_steps=2,
               reset_every=1_000, no_resets_after=2_000, anneal_steps=400, buffer_size=5_000,
               eval_every=1_000, eval_episodes=4, eval_max_steps=300, log_every=500, checkpoint_every=1_000,
               keep_checkpoints=3, progress=False, out_dir="runs/bbf_smoke"),
    ),
    "cpu": (
        "MinAtar (gymnax, loop in jit), 100k steps, replay ratio 8, Impala x1 with 1 block/stage, 256 units.",
        Config(**BBF, **CPU_NETWORK, env_id="Breakout-MinAtar", total_steps=100_000, buffer_size=100_000,
               eval_every=10_000, eval_episodes=32, eval_max_steps=27_000, log_every=5_000,
               checkpoint_every=10_000, out_dir="runs/bbf_minatar"),
    ),
    "cpu_spr": (
        "SPR-style baseline on MinAtar: MinAtar CNN, n=10, gamma=0.99, no resets, no weight decay, replay ratio 1.",
        Config(**{**BBF, "gradient_steps": 1, "weight_decay": 0.0, "n_step": 10, "gamma": 0.99},
               **CPU_NETWORK, encoder="minatar", resets=False, anneal_n=False,
               anneal_gamma=False, env_id="Breakout-MinAtar", total_steps=100_000, buffer_size=100_000,
               eval_every=10_000, eval_episodes=32, log_every=5_000, checkpoint_every=10_000,
               out_dir="runs/bbf_spr_minatar"),
    ),
    "atari_smoke": (
        "Atari 100k path end to end (envpool Pong, host loop), 300 steps, tiny Impala: a minute or two.",
        Config(**{**BBF, "learning_starts": 100, "eps_decay_steps": 100, "gradient_steps": 2, "batch_size": 4},
               env_id="Pong-v5", atari_protocol="atari100k", total_steps=300, impala_width=1,
               impala_channels=(4, 8, 8), impala_blocks=1, hidden_dim=32, augment_pad=4, spr_steps=3,
               reset_every=200, no_resets_after=400, anneal_steps=100, buffer_size=1_000, scan_updates=False,
               eval_every=300, eval_episodes=2, eval_max_steps=50, eval_epsilon=0.001, log_every=100,
               checkpoint_every=300, progress=False, out_dir="runs/bbf_atari_smoke"),
    ),
    "paper": (
        "BBF on Atari 100k as published: Impala x4, 2048 units, SPR x5, resets, annealing, RR 8, 100 eval episodes.",
        Config(**BBF, env_id="ChopperCommand-v5", atari_protocol="atari100k", total_steps=100_000,
               buffer_size=200_000, augment_pad=4, eval_every=100_000, eval_episodes=100, eval_epsilon=0.001,
               eval_max_steps=27_000, log_every=1_000, checkpoint_every=10_000, out_dir="runs/bbf_atari100k"),
    ),
}


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one BBF run and writes every output of the CLI contract."""
    return loop.main(cfg, preset=preset, algorithm="bbf", title="BBF", agent_fn=make_bbf_agent)


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.bbf.train")
