"""DQN and DrQ(ε) with ReDo (recycling dormant neurons), and the paper's reset and weight-decay baselines.

Paper: Sokar, Agarwal, Castro & Evci 2023, "The Dormant Neuron Phenomenon in Deep
Reinforcement Learning", ICML, arXiv 2302.12902. The value-based agent is
:mod:`algorithms.dqn.agent`'s; this script adds, every ``recycle_period`` gradient steps,

* ``recycle="redo"``: score every hidden layer's neurons on a batch of ``score_batch_size``
  observations from replay (Eq. 1), and recycle the τ-dormant ones (Algorithm 1,
  :func:`algorithms.redo.redo.recycle`);
* ``recycle="reset"``: re-initialise the last ``reset_layers`` layers (Nikishin et al. 2022,
  "The Primacy Bias in Deep RL", arXiv 2205.07802), their Adam moments reset;
* ``recycle="none"`` with ``weight_decay`` > 0: the weight-decay baseline;

and logs the dormant fractions (at τ and at 0) with the metrics of every log step. The
replay ratio is ``gradient_steps / train_every`` gradient steps per environment step.

Run:
    python -m algorithms.redo.train cpu --env-id Breakout-MinAtar --gradient-steps 4
Expected on 2 CPU cores (jax 0.10.2): the MinAtar table of README.md, made by
``python -m algorithms.redo.experiment``.

Presets: ``smoke`` (tests), ``cpu`` (MinAtar DQN, replay ratio 1), ``cpu_drq`` (MinAtar
DrQ(ε)), ``paper`` (DQN on Atari at replay ratio 1, 10M frames), ``paper_drq`` (DrQ(ε) on
Atari 100k).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp

from core import cli, replay
from core.networks import layer_call_order
from core.types import EnvSpec

from algorithms.dqn import agent as dqn_agent
from algorithms.dqn import loop
from algorithms.dqn.train import PRESETS as DQN_PRESETS
from algorithms.drq.train import PRESETS as DRQ_PRESETS
from algorithms.redo import redo

RECYCLE_MODES = ("none", "redo", "reset")
DIAGNOSTICS_STREAM = 0x5EED  # fold_in constant naming the score-batch stream of the logged statistics


@dataclasses.dataclass(frozen=True)
class Config(dqn_agent.Config):
    """The value-based agent's configuration plus ReDo's (every field is a CLI flag)."""

    recycle: str = "redo"
    """"redo" (recycle τ-dormant neurons), "reset" (re-initialise the last layers) or "none"."""
    redo_tau: float = 0.1
    """τ: neurons with score s_i ≤ τ are dormant (paper: 0.1 at high replay ratios, 0.025 at the default)."""
    recycle_period: int = 1_000
    """Gradient steps between recycling (or resetting) events (a multiple of the gradient steps per call)."""
    recycle_start: int = 0
    """First gradient step at which recycling may happen."""
    recycle_end: int = 0
    """Gradient step after which recycling stops; 0 = never stops."""
    reset_layers: int = 2
    """Layers (counted from the output) that recycle="reset" re-initialises."""
    score_batch_size: int = 256
    """Observations from replay on which neuron scores are computed (256 in the authors' code)."""

    def validate(self) -> None:
        super().validate()
        req = cli.require
        req(self.recycle in RECYCLE_MODES, "recycle", f"unknown mode {self.recycle!r}; choose one of {RECYCLE_MODES}")
        req(0.0 <= self.redo_tau < 1.0, "redo_tau", f"must lie in [0, 1), got {self.redo_tau}")
        req(self.recycle_period > 0, "recycle_period", f"must be positive, got {self.recycle_period}")
        req(self.recycle_period % self.updates_per_call == 0, "recycle_period",
            f"must be a multiple of the {self.updates_per_call} gradient steps of one learning call")
        req(self.recycle_start >= 0, "recycle_start", "must be >= 0")
        req(self.recycle_end == 0 or self.recycle_end > self.recycle_start, "recycle_end",
            "must be 0 (never stops) or after recycle_start")
        req(self.reset_layers >= 1, "reset_layers", f"must be >= 1, got {self.reset_layers}")
        req(self.score_batch_size > 0, "score_batch_size", "must be positive")
        req(self.torso in ("mlp", "minatar", "nature"), "torso",
            f"ReDo here needs a feed-forward torso (mlp, minatar, nature), not {self.torso!r}")
        req(not self.noisy, "noisy", "noisy layers are not scored or recycled; use ε-greedy exploration")


DQN_MINATAR = dataclasses.asdict(DQN_PRESETS["cpu"][1])
DQN_ATARI = dataclasses.asdict(DQN_PRESETS["paper"][1])
DRQ_MINATAR = dataclasses.asdict(DRQ_PRESETS["cpu"][1])
DRQ_ATARI = dataclasses.asdict(DRQ_PRESETS["paper"][1])

PRESETS = {
    "smoke": (
        "MinAtar Breakout, 3k steps at replay ratio 1, recycling every 200 gradient steps: used by the tests.",
        Config(**{**DQN_MINATAR, "total_steps": 3_000, "learning_starts": 500, "train_every": 1,
                  "buffer_size": 5_000, "eps_decay_steps": 1_000, "target_update_every": 200,
                  "eval_every": 1_500, "eval_episodes": 4, "log_every": 500, "checkpoint_every": 1_500,
                  "keep_checkpoints": 3, "out_dir": "runs/redo_smoke"},
               recycle_period=200, score_batch_size=64),
    ),
    "cpu": (
        "DQN + ReDo on MinAtar at replay ratio 1 (Revisiting Rainbow's MinAtar DQN otherwise), 20k steps; "
        "--gradient-steps 4 --target-update-every 4000 gives replay ratio 4.",
        Config(**{**DQN_MINATAR, "total_steps": 20_000, "train_every": 1, "eval_every": 5_000,
                  "log_every": 2_500, "checkpoint_every": 10_000, "out_dir": "runs/redo_minatar"}),
    ),
    "cpu_drq": (
        "DrQ(ε) + ReDo on MinAtar (the DrQ(ε) cpu preset: replay ratio 1, n = 10, shifts ±1), 25k steps.",
        Config(**{**DRQ_MINATAR, "total_steps": 25_000, "eval_every": 5_000, "log_every": 2_500,
                  "checkpoint_every": 12_500, "out_dir": "runs/redo_drq_minatar"}),
    ),
    "paper": (
        "DQN + ReDo on Atari (Pong by default) at replay ratio 1, 10M frames (2.5M agent steps), τ = 0.1, "
        "Dopamine DQN hyperparameters otherwise (the paper's Figure 1 setting).",
        Config(**{**DQN_ATARI, "total_steps": 2_500_000, "train_every": 1, "target_update_every": 8_000,
                  "eval_every": 250_000, "checkpoint_every": 250_000, "out_dir": "runs/redo_atari"}),
    ),
    "paper_drq": (
        "DrQ(ε) + ReDo on Atari 100k (Pong by default), τ = 0.1, Dopamine DrQ(ε) hyperparameters.",
        Config(**{**DRQ_ATARI, "out_dir": "runs/redo_drq_atari100k"}),
    ),
}


# --------------------------------------------------------------------------- the ReDo agent


def layer_links(names: Sequence[str]) -> list[redo.LayerLink]:
    """Which layer feeds which, from the value network's Linear/Conv2D layers in call order.

    The torso and a plain head are a chain (each layer feeds the next); a dueling head
    splits after the torso into value and advantage streams (``value_hidden`` → ``value``,
    ``advantage_hidden`` → ``advantage``). Output layers feed nothing and are never recycled.
    """
    short = {name: name.split("/")[-1] for name in names}
    streams = [n for n in names if short[n] in ("value_hidden", "advantage_hidden", "value", "advantage")]
    trunk = [n for n in names if n not in streams]
    links = [redo.LayerLink(a, b) for a, b in zip(trunk, trunk[1:])]
    if streams:
        by_name = {short[n]: n for n in streams}
        if "value_hidden" in by_name:
            links += [redo.LayerLink(trunk[-1], by_name["value_hidden"]),
                      redo.LayerLink(trunk[-1], by_name["advantage_hidden"]),
                      redo.LayerLink(by_name["value_hidden"], by_name["value"]),
                      redo.LayerLink(by_name["advantage_hidden"], by_name["advantage"])]
        else:
            links += [redo.LayerLink(trunk[-1], by_name["value"]), redo.LayerLink(trunk[-1], by_name["advantage"])]
    return links


def score_observations(cfg: Config, state: dqn_agent.LoopState, key) -> jax.Array:
    """``[score_batch_size, *O]`` observations drawn uniformly from replay (for neuron scores)."""
    storage = state.replay.replay if cfg.prioritized else state.replay
    return replay.sample(storage, key, batch_size=cfg.score_batch_size, n_step=cfg.n_step,
                         gamma=cfg.gamma)[0].observation


def make_agent(cfg: Config, spec: EnvSpec, mesh=None) -> dqn_agent.Agent:
    """:func:`algorithms.dqn.agent.make_agent` with recycling after learning and dormant-neuron diagnostics."""
    base = dqn_agent.make_agent(cfg, spec, mesh)
    network = base.network
    dummy = jnp.zeros((1, *spec.observation_shape), spec.observation_dtype)
    param_shapes = jax.eval_shape(network.init, jax.ShapeDtypeStruct((2,), jnp.uint32), dummy)
    names = layer_call_order(network, param_shapes, dummy)
    links = layer_links(names)
    recyclable = tuple(dict.fromkeys(link.layer for link in links))
    cli.require(cfg.reset_layers <= len(names), "reset_layers",
                f"the network has {len(names)} layers, cannot reset {cfg.reset_layers}")
    reset_names = frozenset(names[-cfg.reset_layers:])
    short = {name: name.split("/")[-1] for name in recyclable}
    if len(set(short.values())) < len(short):
        short = {name: name for name in recyclable}

    def dormant_masks(params, observation, tau: float) -> dict:
        _, outputs = network.layer_outputs(params, observation)
        return {name: redo.dormant_mask(redo.neuron_scores(jax.nn.relu(outputs[name])), tau=tau)
                for name in recyclable}

    def recycle_now(state: dqn_agent.LoopState) -> dqn_agent.LoopState:
        train = state.train
        key, score_key, init_key = jax.random.split(train.key, 3)
        if cfg.recycle == "redo":
            masks = dormant_masks(train.params, score_observations(cfg, state, score_key), cfg.redo_tau)
            params, opt_state = redo.recycle(train.params, train.opt_state, masks, init_key, links=links)
        else:  # "reset": the last layers back to a fresh initialisation, their Adam moments zeroed
            fresh = network.init(init_key, dummy)
            params = {name: dict(fresh[name] if name in reset_names else layer) for name, layer in train.params.items()}
            touched = {name: {k: jnp.full(v.shape, name in reset_names) for k, v in layer.items()}
                       for name, layer in train.params.items()}
            opt_state = redo.reset_adam_moments(train.opt_state, touched)
        return state._replace(train=train._replace(params=params, opt_state=opt_state, key=key))

    def learn(state: dqn_agent.LoopState) -> dqn_agent.LoopState:
        state = base.learn(state)
        if cfg.recycle == "none":
            return state
        due = redo.scheduled(state.train.step, period=cfg.recycle_period, start=cfg.recycle_start,
                             end=cfg.recycle_end or None)
        return jax.lax.cond(due, recycle_now, lambda s: s, state)

    def diagnostics(state: dqn_agent.LoopState) -> dict:
        """Dormant fractions of the online network at τ and at 0 (dead), total and per layer."""
        observation = score_observations(cfg, state, jax.random.fold_in(state.train.key, DIAGNOSTICS_STREAM))
        at_tau = redo.dormant_fractions(dormant_masks(state.train.params, observation, cfg.redo_tau))
        dead = redo.dormant_fractions(dormant_masks(state.train.params, observation, 0.0))
        out = {"dormant_fraction": at_tau.total, "dead_fraction": dead.total}
        out.update({f"dormant/{short[name]}": at_tau.per_layer[name] for name in recyclable})
        return out

    return dqn_agent.with_learn(base, learn)._replace(diagnostics=diagnostics)


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one run and writes every output of the CLI contract."""
    title = {"redo": "DQN + ReDo", "reset": "DQN + reset", "none": "DQN"}[cfg.recycle]
    if cfg.recycle == "none" and cfg.weight_decay:
        title = "DQN + weight decay"
    return loop.main(cfg, preset=preset, algorithm=f"redo_{cfg.recycle}", title=title, agent_fn=make_agent)


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.redo.train")
