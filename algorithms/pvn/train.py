"""Linear evaluation of PVN features: a linear double-DQN head trained online on a frozen encoder.

Paper: Farebrother et al. 2023, "Proto-Value Networks: Scaling Representation Learning with
Auxiliary Tasks", ICLR, arXiv 2304.12567 (Sec. 6: the encoder pretrained offline is frozen
and a linear Q head is trained online with double DQN; optionally the encoder is
fine-tuned). The agent, replay, evaluation and checkpointing are
:mod:`algorithms.dqn`'s (``agent_fn`` hook); only the network differs: Q(x, ·) = W φ(x) + b
with φ the pretrained encoder (``--encoder pvn --pretrained-dir DIR``) or a frozen randomly
initialised encoder of the same architecture (``--encoder random``, the baseline).

Run:
    python -m algorithms.pvn.train cpu --env-id Breakout-MinAtar --pretrained-dir runs/pvn_pretrain/breakout
    python -m algorithms.pvn.train cpu --env-id Breakout-MinAtar --encoder random
Measured on one CPU core shared with other jobs (jax 0.10.2, load average 13–18 on 2
cores): 8–12 minutes per 20k-step MinAtar run, about 3 of them compiling; the table of
README.md is made by ``python -m algorithms.pvn.experiment minatar`` then ``report``.
"""
from __future__ import annotations

import dataclasses
import json
import os

import jax

from core import cli
from core.networks import QNetwork
from core.types import EnvSpec

from algorithms.dqn import agent as dqn_agent
from algorithms.dqn import loop
from algorithms.dqn.train import PRESETS as DQN_PRESETS
from algorithms.pvn import networks

ENCODERS = ("pvn", "random")


@dataclasses.dataclass(frozen=True)
class Config(dqn_agent.Config):
    """The value-based agent's configuration plus the encoder to evaluate (every field is a CLI flag)."""

    encoder: str = "pvn"
    """Features: "pvn" (the encoder of --pretrained-dir) or "random" (a frozen random encoder of the same size)."""
    pretrained_dir: str = "runs/pvn_pretrain"
    """Out dir of an algorithms.pvn.pretrain run (its latest checkpoint); its architecture must match."""
    num_features: int = 256
    """D, features of the encoder (must equal the pretrained run's)."""
    impala_width: int = 1
    """Channel multiplier of the Impala torso (must equal the pretrained run's)."""
    finetune: bool = False
    """Train the encoder too (the paper's fine-tuning variant); default frozen (linear evaluation)."""

    @property
    def encoder_config(self) -> networks.EncoderConfig:
        return networks.EncoderConfig(torso=self.torso, num_features=self.num_features,
                                      impala_width=self.impala_width, hidden_sizes=tuple(self.hidden_sizes),
                                      channels_first=self.torso == "impala")

    def validate(self) -> None:
        super().validate()
        req = cli.require
        req(self.encoder in ENCODERS, "encoder", f"unknown {self.encoder!r}; choose one of {ENCODERS}")
        req(self.torso in networks.TORSOS, "torso", f"the PVN encoder takes one of {networks.TORSOS}")
        req(self.num_features > 0 and self.impala_width > 0, "num_features", "must be positive")
        req(self.num_atoms == 0 and not self.dueling and not self.noisy and self.head_hidden == 0, "head_hidden",
            "linear evaluation uses a linear scalar Q head: --head-hidden 0, --num-atoms 0, no dueling/noisy")
        if self.encoder == "pvn":
            path = os.path.join(self.pretrained_dir, "config.json")
            req(os.path.exists(path), "pretrained_dir",
                f"{self.pretrained_dir!r} holds no pretraining run (no config.json); run algorithms.pvn.pretrain "
                "or use --encoder random")
            with open(path) as f:
                saved = json.load(f)
            for name in ("torso", "num_features", "impala_width"):
                req(saved.get(name) == getattr(self, name), name,
                    f"{getattr(self, name)!r} differs from the pretrained encoder's {saved.get(name)!r}")


def _replace(preset: dqn_agent.Config, **changes) -> dict:
    return {**dataclasses.asdict(preset), **changes}


_MINATAR = _replace(DQN_PRESETS["cpu"][1], head_hidden=0, learning_rate=1e-3, total_steps=30_000, eval_every=10_000,
                    log_every=5_000, checkpoint_every=10_000, out_dir="runs/pvn_linear")

PRESETS = {
    "smoke": ("MinAtar Breakout, 2k steps of the linear head on the smoke pretraining run: used by the tests.",
              Config(**_replace(DQN_PRESETS["cpu"][1], head_hidden=0, total_steps=2_000, learning_starts=500,
                                buffer_size=5_000, eps_decay_steps=1_000, target_update_every=200,
                                eval_every=1_000, eval_episodes=4, log_every=500, checkpoint_every=1_000,
                                keep_checkpoints=3, out_dir="runs/pvn_linear_smoke"),
                     pretrained_dir="runs/pvn_pretrain_smoke", num_features=32)),
    "cpu": ("MinAtar: linear double-DQN head (lr 1e-3) on 256 frozen features, DQN cpu settings otherwise, 30k steps.",
            Config(**_MINATAR)),
    "paper": ("Atari: linear double-DQN head on the frozen Impala ×8 / 4096-feature PVN encoder, 1M agent steps "
              "(4M frames), 5-step returns, ε 0.01 throughout, lr 6.25e-5, Adam ε 1.5e-4, gradient norm ≤ 10, "
              "target every 2,000, replay 1M from 2,000 steps, eval ε 0.001 (the authors' online config).",
              Config(**_replace(DQN_PRESETS["paper"][1], torso="impala", head_hidden=0, total_steps=1_000_000,
                                n_step=5, eps_start=0.01, eps_end=0.01, max_grad_norm=10.0,
                                learning_starts=2_000, out_dir="runs/pvn_linear_atari"),
                     pretrained_dir="runs/pvn_pretrain_atari", num_features=4096, impala_width=8)),
}


def make_network(cfg: Config, spec: EnvSpec) -> QNetwork:
    """The linear Q network whose ``init`` puts the pretrained (or random) encoder parameters in place."""
    transformed = networks.make_linear_q_network(cfg.encoder_config, num_actions=spec.num_actions,
                                                 finetune=cfg.finetune)
    pretrained = None
    if cfg.encoder == "pvn":
        from algorithms.pvn.pretrain import load_encoder

        pretrained, pre_cfg, meta = load_encoder(cfg.pretrained_dir)
        if meta.get("env_id") != cfg.env_id:
            raise cli.ConfigError(f"--pretrained-dir: pretrained on {meta.get('env_id')!r}, not --env-id {cfg.env_id!r}")

    def init(key, observation):
        params = transformed.init(key, observation)
        if pretrained is not None:
            missing = set(networks.encoder_params(params)) ^ set(pretrained)
            if missing:
                raise cli.ConfigError(f"--pretrained-dir: encoder modules differ: {sorted(missing)[:3]}")
            params = {**params, **jax.tree.map(lambda x: jax.numpy.asarray(x), pretrained)}
        return params

    def apply(params, observation, key=None):
        del key
        return transformed.apply(params, observation)

    return QNetwork(init=init, apply=apply)


def make_agent(cfg: Config, spec: EnvSpec, mesh=None) -> dqn_agent.Agent:
    return dqn_agent.make_agent(cfg, spec, mesh, network=make_network(cfg, spec))


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one linear-evaluation run and writes every output of the CLI contract."""
    name = "PVN" if cfg.encoder == "pvn" else "random encoder"
    return loop.main(cfg, preset=preset, algorithm=f"pvn_linear_{cfg.encoder}",
                     title=f"Linear DQN on {name} features", agent_fn=make_agent)


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.pvn.train")
