"""DQN and DER/Rainbow with a mixture of experts in place of the penultimate dense layer.

Paper: Obando-Ceron, Sokar, Willi, Lyle, Farebrother, Foerster, Dziugaite, Precup & Castro
2024, "Mixtures of Experts Unlock Parameter Scaling for Deep RL", ICML, arXiv 2402.08609.
The agent is :mod:`algorithms.dqn.agent`'s (DQN, or DER with Rainbow's components), its
value network :func:`algorithms.soft_moe.networks.make_moe_q_network`: encoder → tokens →
Soft MoE (or Top-1 MoE) → flatten → Q head. ``--moe none`` is the paper's baseline, the
dense penultimate layer widened to ``expert_hidden × num_experts`` units.

Run:
    python -m algorithms.soft_moe.train cpu --env-id Breakout-MinAtar --num-experts 4
Expected on 2 CPU cores (jax 0.10.2): the MinAtar table of README.md, made by
``python -m algorithms.soft_moe.experiment``.

Presets: ``smoke`` (tests), ``cpu`` (MinAtar DQN), ``cpu_der`` (MinAtar Rainbow), ``paper``
(DQN, Nature CNN, 8 experts, 200M frames), ``paper_impala`` (the same with the Impala
encoder), ``paper_der`` (DER, 4 experts, Atari 100k).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from core import cli, replay
from core.types import EnvSpec

from algorithms.dqn import agent as dqn_agent
from algorithms.dqn import loop
from algorithms.dqn.train import PRESETS as DQN_PRESETS
from algorithms.rainbow.train import PRESETS as RAINBOW_PRESETS
from algorithms.soft_moe import moe, networks

DIAGNOSTICS_STREAM = 0x40E  # fold_in constant naming the batch stream of the logged router statistics
DORMANT_TAU = 0.1  # τ of the logged dormant fraction of the penultimate units (Sokar et al. 2023)


@dataclasses.dataclass(frozen=True)
class Config(dqn_agent.Config):
    """The value-based agent's configuration plus the mixture of experts (every field is a CLI flag)."""

    moe: str = "softmoe"
    """"softmoe", "top1" (token-choice Top-1 MoE) or "none" (dense layer widened ×num_experts: the baseline)."""
    num_experts: int = 4
    """E experts (for --moe none: the width multiplier of the penultimate dense layer)."""
    expert_hidden: int = 128
    """Hidden units per expert, and of the dense layer the MoE replaces (512 on Atari, 128 on MinAtar)."""
    tokenization: str = "per_conv"
    """per_conv (a token per spatial position), per_feature, per_sample or per_patch."""
    patch_size: int = 2
    """Patch side of per_patch tokens."""
    patch_embedding: int = 64
    """Token dimension of per_patch tokens."""
    capacity_factor: float = 1.0
    """Slots per expert ⌈tokens · capacity_factor / E⌉."""
    moe_normalize: bool = False
    """L2-normalise tokens and Φ (with a learned scale) in Soft MoE."""
    router_noise: float = 0.0
    """Std of Gaussian noise on Top-1 router logits while training."""
    nature_padding: str = "SAME"
    """Nature CNN padding: SAME (Dopamine: 11×11×64 = 121 tokens of 64 on 84×84) or VALID (49 tokens)."""

    @property
    def moe_network(self) -> networks.MoENetworkConfig:
        return networks.MoENetworkConfig(
            moe=self.moe, num_experts=self.num_experts, expert_hidden=self.expert_hidden,
            tokenization=self.tokenization, patch_size=self.patch_size, patch_embedding=self.patch_embedding,
            capacity_factor=self.capacity_factor, normalize=self.moe_normalize, router_noise=self.router_noise,
            nature_padding=self.nature_padding)

    def validate(self) -> None:
        super().validate()
        req = cli.require
        req(self.moe in networks.MOE_TYPES, "moe", f"unknown {self.moe!r}; choose one of {networks.MOE_TYPES}")
        req(self.num_experts >= 1, "num_experts", f"must be >= 1, got {self.num_experts}")
        req(self.expert_hidden >= 1, "expert_hidden", f"must be >= 1, got {self.expert_hidden}")
        req(self.tokenization in networks.TOKENIZATIONS, "tokenization",
            f"unknown {self.tokenization!r}; choose one of {networks.TOKENIZATIONS}")
        req(self.patch_size >= 1 and self.patch_embedding >= 1, "patch_size", "patch size and embedding must be >= 1")
        req(self.capacity_factor > 0, "capacity_factor", f"must be positive, got {self.capacity_factor}")
        req(self.router_noise >= 0, "router_noise", "must be >= 0")
        req(self.nature_padding in ("SAME", "VALID"), "nature_padding", "choose SAME or VALID")
        req(self.torso in ("nature", "minatar", "impala"), "torso",
            f"the experts read tokens of a conv encoder (nature, minatar, impala), not {self.torso!r}")
        req(self.head_hidden == 0, "head_hidden",
            "must be 0: the mixture of experts (or the widened dense layer) is the hidden layer; set --expert-hidden")


def _without_hidden(preset: dqn_agent.Config, **changes) -> dict:
    return {**dataclasses.asdict(preset), "head_hidden": 0, **changes}


PRESETS = {
    "smoke": (
        "MinAtar Breakout, 3k steps, Soft MoE with 2 experts of 32 units: used by the tests.",
        Config(**_without_hidden(DQN_PRESETS["cpu"][1], total_steps=3_000, learning_starts=500, buffer_size=5_000,
                                 eps_decay_steps=1_000, target_update_every=200, eval_every=1_500, eval_episodes=4,
                                 log_every=500, checkpoint_every=1_500, keep_checkpoints=3,
                                 out_dir="runs/soft_moe_smoke"),
               num_experts=2, expert_hidden=32),
    ),
    "cpu": (
        "DQN on MinAtar (the DQN cpu preset at 25k steps, replay ratio 1/4) with a Soft MoE of 128-unit experts "
        "over the 64 PerConv tokens of the 8×8×16 encoder output; one greedy evaluation, at the end.",
        Config(**_without_hidden(DQN_PRESETS["cpu"][1], total_steps=25_000, eval_every=25_000, checkpoint_every=25_000,
                                 out_dir="runs/soft_moe_minatar"), expert_hidden=128),
    ),
    "cpu_der": (
        "Rainbow on MinAtar (the Rainbow cpu preset) with a Soft MoE of 128-unit experts.",
        Config(**_without_hidden(RAINBOW_PRESETS["cpu"][1], out_dir="runs/soft_moe_rainbow_minatar"),
               expert_hidden=128),
    ),
    "paper": (
        "DQN on Atari 200M frames (Dopamine hyperparameters), SAME-padded Nature CNN, Soft MoE with 8 experts "
        "of 512 units over 121 PerConv tokens (the paper's Figure 1).",
        Config(**_without_hidden(DQN_PRESETS["paper"][1], out_dir="runs/soft_moe_dqn_atari"),
               num_experts=8, expert_hidden=512),
    ),
    "paper_impala": (
        "DQN on Atari 200M frames with the Impala encoder, Soft MoE with 8 experts of 512 units.",
        Config(**_without_hidden(DQN_PRESETS["paper"][1], torso="impala", out_dir="runs/soft_moe_dqn_impala"),
               num_experts=8, expert_hidden=512),
    ),
    "paper_der": (
        "DER on Atari 100k (the Rainbow der preset), SAME-padded Nature CNN, Soft MoE with 4 experts of 512 units.",
        Config(**_without_hidden(RAINBOW_PRESETS["der"][1], out_dir="runs/soft_moe_der_atari100k"),
               num_experts=4, expert_hidden=512),
    ),
}


def make_agent(cfg: Config, spec: EnvSpec, mesh=None) -> dqn_agent.Agent:
    """:func:`algorithms.dqn.agent.make_agent` on the MoE value network, logging router statistics."""
    net = networks.make_moe_q_network(cfg.network, cfg.moe_network, spec.num_actions)
    base = dqn_agent.make_agent(cfg, spec, mesh, network=net.q_network)

    def batch(state: dqn_agent.LoopState):
        storage = state.replay.replay if cfg.prioritized else state.replay
        key = jax.random.fold_in(state.train.key, DIAGNOSTICS_STREAM)
        return replay.sample(storage, key, batch_size=cfg.batch_size, n_step=cfg.n_step, gamma=cfg.gamma)[0]

    def diagnostics(state: dqn_agent.LoopState) -> dict:
        """Dormant fraction of the penultimate units; for a MoE the router's entropy and busiest expert."""
        observation = batch(state).observation
        params = state.train.params
        if net.moe_outputs is None:
            _, outputs = net.q_network.layer_outputs(params, observation)
            hidden = jax.nn.relu(next(v for k, v in outputs.items() if k.split("/")[-1] in ("linear", "value_hidden")))
            return {"dormant_fraction": jnp.mean(_dormant(hidden))}
        out = net.moe_outputs(params, observation)
        probs = out.expert_probability.reshape(-1, cfg.num_experts)  # [B·T, E]
        load = jnp.mean(jax.nn.one_hot(out.top_expert.reshape(-1), cfg.num_experts), axis=0)
        hidden = jnp.moveaxis(out.expert_hidden, 1, -2)  # [B, S, E, H]: a neuron is (expert, unit)
        hidden = hidden.reshape(-1, cfg.num_experts * cfg.expert_hidden)
        return {"dormant_fraction": jnp.mean(_dormant(hidden)), "router_entropy": moe.entropy_loss(probs),
                "busiest_expert_share": jnp.max(load)}

    return base._replace(diagnostics=diagnostics)


def _dormant(activation: jax.Array) -> jax.Array:
    """τ-dormant units of ``[N, H]`` post-activations: mean |h_i| ≤ τ · mean over units (Sokar et al. 2023, Eq. 1)."""
    score = jnp.mean(jnp.abs(activation), axis=0)
    return score <= DORMANT_TAU * jnp.maximum(jnp.mean(score), 1e-12)


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one run and writes every output of the CLI contract."""
    name = {"softmoe": "Soft MoE", "top1": "Top-1 MoE", "none": "dense ×"}[cfg.moe]
    base = "Rainbow" if cfg.num_atoms else "DQN"
    title = f"{base} + {name}{cfg.num_experts}" if cfg.moe == "none" else f"{base} + {name} ({cfg.num_experts} experts)"
    return loop.main(cfg, preset=preset, algorithm=f"{base.lower()}_{cfg.moe}", title=title, agent_fn=make_agent)


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.soft_moe.train")
