"""KSMe-DQN and KSMe-Rainbow/DER: the value-based agents with the KSMe (or MICo) representation loss.

Paper: Castro, Kastner, Panangaden & Rowland 2023, "A Kernel Perspective on Behavioural
Metrics for Markov Decision Processes", TMLR, arXiv 2310.19804 (KSMe); the MICo loss is
Castro et al. 2021, arXiv 2106.08229. The agent is :mod:`algorithms.dqn.agent`'s (DQN, or
Rainbow/DER with C51, noisy nets, dueling, prioritized replay, n-step), its loss
(1 − α)·ℓ_TD + α·ℓ_repr with ℓ_repr the KSMe loss (``--metric ksme``), the MICo loss
(``--metric mico``) or nothing (``--metric none``, the base agent), computed on the
encoder's output for every pair of the replay batch (:mod:`algorithms.ksme.losses`).

Run:
    python -m algorithms.ksme.train cpu --env-id Breakout-MinAtar --metric ksme
Expected on 2 CPU cores (jax 0.10.2): 2–7 minutes per 30k-step MinAtar run on a machine shared with three other jobs; the
KSMe-vs-MICo-vs-DQN table of README.md is made by ``python -m algorithms.ksme.experiment``.

Presets: ``smoke`` (tests), ``cpu`` (MinAtar DQN, 30k steps), ``cpu_der`` (MinAtar Rainbow),
``paper`` (DQN on Atari 200M frames, Dopamine hyperparameters), ``paper_der`` (DER on Atari 100k).
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
from algorithms.ksme import losses, networks
from algorithms.rainbow.train import PRESETS as RAINBOW_PRESETS

METRICS = ("ksme", "mico", "none")
DIAGNOSTICS_STREAM = 0x75E  # fold_in constant naming the batch stream of the logged representation statistics


@dataclasses.dataclass(frozen=True)
class Config(dqn_agent.Config):
    """The value-based agent's configuration plus the representation loss (every field is a CLI flag)."""

    metric: str = "ksme"
    """Representation loss: "ksme" (kernel, arXiv 2310.19804), "mico" (arXiv 2106.08229) or "none" (base agent)."""
    metric_weight: float = 0.01
    """α in (1 − α)·ℓ_TD + α·ℓ_repr (0.01 in the MICo and KSMe agents)."""
    similarity: str = "dot"
    """KSMe's learned kernel k̂(a, b): "dot" ⟨a, b⟩ or "cosine" ⟨a, b⟩/(‖a‖‖b‖)."""
    normalize_kernel: bool = False
    """Scale KSMe's reward kernel by (1 − γⁿ), so its fixed point lies in [0, 1] (use with --similarity cosine)."""
    mico_beta: float = 0.1
    """β of MICo's distance ψ(a, b) = ½(‖a‖² + ‖b‖²) + β·angle(a, b)."""
    reward_min: float = 0.0
    """Rewards are mapped from [reward_min, reward_max] onto [0, 1] for the metric losses (Atari clipped: −1)."""
    reward_max: float = 1.0
    """Upper end of the reward range mapped onto [0, 1]."""

    def validate(self) -> None:
        super().validate()
        req = cli.require
        req(self.metric in METRICS, "metric", f"unknown {self.metric!r}; choose one of {METRICS}")
        req(0.0 <= self.metric_weight <= 1.0, "metric_weight", f"must lie in [0, 1], got {self.metric_weight}")
        req(self.similarity in losses.SIMILARITIES, "similarity",
            f"unknown {self.similarity!r}; choose one of {losses.SIMILARITIES}")
        req(self.mico_beta >= 0, "mico_beta", f"must be >= 0, got {self.mico_beta}")
        req(self.reward_max > self.reward_min, "reward_max",
            f"must exceed --reward-min ({self.reward_max} <= {self.reward_min})")
        req(self.augment_pad == 0, "augment_pad", "the metric losses do not augment observations; use 0")


def _replace(preset: dqn_agent.Config, **changes) -> dict:
    return {**dataclasses.asdict(preset), **changes}


PRESETS = {
    "smoke": (
        "MinAtar Breakout, 3k steps, KSMe-DQN: used by the tests.",
        Config(**_replace(DQN_PRESETS["cpu"][1], total_steps=3_000, learning_starts=500, buffer_size=5_000,
                          eps_decay_steps=1_000, target_update_every=200, eval_every=1_500, eval_episodes=4,
                          log_every=500, checkpoint_every=1_500, keep_checkpoints=3, out_dir="runs/ksme_smoke")),
    ),
    "cpu": (
        "KSMe-DQN on MinAtar: the DQN cpu preset (replay ratio 1/4) at 30k steps, KSMe loss on the 1024 encoder "
        "features, α = 0.01; greedy evaluations at 15k and 30k steps.",
        Config(**_replace(DQN_PRESETS["cpu"][1], total_steps=30_000, eval_every=15_000, checkpoint_every=15_000,
                          out_dir="runs/ksme_minatar")),
    ),
    "cpu_der": (
        "KSMe-Rainbow on MinAtar: the Rainbow cpu preset with the KSMe loss.",
        Config(**_replace(RAINBOW_PRESETS["cpu"][1], out_dir="runs/ksme_rainbow_minatar")),
    ),
    "paper": (
        "KSMe-DQN on Atari 200M frames: Dopamine's JAX DQN hyperparameters (the MICo/KSMe agents' base), "
        "Nature CNN representation, α = 0.01, clipped rewards mapped from [−1, 1].",
        Config(**_replace(DQN_PRESETS["paper"][1], reward_clip=True, out_dir="runs/ksme_dqn_atari"),
               reward_min=-1.0),
    ),
    "paper_der": (
        "KSMe-DER on Atari 100k: the Rainbow der preset with the KSMe loss, α = 0.01.",
        Config(**_replace(RAINBOW_PRESETS["der"][1], out_dir="runs/ksme_der_atari100k"), reward_min=-1.0),
    ),
}


def make_metric_loss(cfg: Config, representation):
    """``(params, target_params, batch) -> []`` the configured representation loss ℓ_repr of one batch."""
    cumulative_gamma = cfg.gamma ** cfg.n_step

    def metric_loss(params, target_params, batch):
        online = representation(params, batch.observation)
        target = representation(target_params, batch.observation)
        target_next = representation(target_params, batch.next_observation)
        if cfg.metric == "mico":
            return losses.mico_loss(online, target, target_next, batch.reward, cumulative_gamma=cumulative_gamma,
                                    beta=cfg.mico_beta, reward_min=cfg.reward_min, reward_max=cfg.reward_max)
        return losses.ksme_loss(online, target, target_next, batch.reward, cumulative_gamma=cumulative_gamma,
                                similarity=cfg.similarity, normalize=cfg.normalize_kernel,
                                reward_min=cfg.reward_min, reward_max=cfg.reward_max)

    return metric_loss


def make_agent(cfg: Config, spec: EnvSpec, mesh=None) -> dqn_agent.Agent:
    """:func:`algorithms.dqn.agent.make_agent` with the representation loss mixed into its loss."""
    net = networks.make_representation_q_network(cfg.network, spec.num_actions)
    metric_loss = make_metric_loss(cfg, net.representation)

    def aux_loss(params, target_params, batch, key, value_loss):
        del key  # the metric losses are deterministic
        return losses.mixed_loss(value_loss, metric_loss(params, target_params, batch), weight=cfg.metric_weight)

    base = dqn_agent.make_agent(cfg, spec, mesh, network=net.q_network,
                                aux_loss=None if cfg.metric == "none" else aux_loss)

    def diagnostics(state: dqn_agent.LoopState) -> dict:
        """ℓ_repr on a replay batch (whatever the trained loss), and the representation's mean norm."""
        storage = state.replay.replay if cfg.prioritized else state.replay
        key = jax.random.fold_in(state.train.key, DIAGNOSTICS_STREAM)
        batch = replay.sample(storage, key, batch_size=cfg.batch_size, n_step=cfg.n_step, gamma=cfg.gamma)[0]
        train = state.train
        out = {"representation_norm": jnp.mean(jnp.linalg.norm(net.representation(train.params, batch.observation),
                                                               axis=-1))}
        if cfg.metric != "none":
            out["metric_loss"] = metric_loss(train.params, train.target_params, batch)
        return out

    return base._replace(diagnostics=diagnostics)


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one run and writes every output of the CLI contract."""
    base = "Rainbow" if cfg.num_atoms else "DQN"
    name = {"ksme": "KSMe", "mico": "MICo", "none": ""}[cfg.metric]
    title = f"{name}-{base}" if name else base
    return loop.main(cfg, preset=preset, algorithm=f"{name.lower() or 'base'}_{base.lower()}", title=title,
                     agent_fn=make_agent)


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.ksme.train")
