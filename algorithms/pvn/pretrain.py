"""Offline PVN pretraining: learn the encoder from indicator tasks on a dataset of transitions.

Paper: Farebrother, Greaves, Agarwal, Le Lan, Goroshin, Castro & Bellemare 2023,
"Proto-Value Networks: Scaling Representation Learning with Auxiliary Tasks", ICLR,
arXiv 2304.12567. T indicator tasks r_i (random-network indicators with pinball-fitted
thresholds, or multiply–shift hashes), per-task linear heads Q_i(x, a) on a shared encoder,
trained with the mean-over-actions TD rule toward the uniform policy's successor measure,
an EMA target network, and a threshold-only warm-up (:mod:`algorithms.pvn.pvn`,
:mod:`algorithms.pvn.learner`).

Run:
    python -m algorithms.pvn.dataset cpu --env-id Breakout-MinAtar --out-dir runs/pvn_data/breakout
    python -m algorithms.pvn.pretrain cpu --dataset-dir runs/pvn_data/breakout --out-dir runs/pvn_pretrain/breakout
Expected on one CPU core (jax 0.10.2): the ``cpu`` preset (MinAtar CNN + 256 features, 100
tasks, 5k updates of batch 128) in a few minutes; then linear evaluation with
``python -m algorithms.pvn.train cpu --pretrained-dir runs/pvn_pretrain/breakout``.

Outputs (CLI contract): config.json, metrics.jsonl/csv (TD loss, threshold loss, firing
rate per logging step), learning_curve.png, checkpoints/ (orbax; a dir holding one resumes),
summary.json with headline ``td_loss``. The step counter is gradient updates (no
environment is stepped: ``env_steps`` is null).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

import environments
from core import cli, metrics
from core import transition_dataset as td
from core.checkpoint import Checkpointer

from algorithms.pvn import learner as learner_lib
from algorithms.pvn import networks


@dataclasses.dataclass(frozen=True)
class Config:
    """PVN pretraining configuration (every field is a CLI flag)."""

    dataset_dir: str = "runs/pvn_data"
    """Directory of a dataset written by algorithms.pvn.dataset (core.transition_dataset format)."""
    env_id: str = ""
    """Environment the dataset was collected in; empty = take it from the dataset (a mismatch is refused)."""
    seed: int = 0
    """Seed of the networks, the indicator tasks and the batch sampling."""
    out_dir: str = "runs/pvn_pretrain"
    """Where config.json, metrics, the figure, checkpoints and summary.json go; a dir holding checkpoints resumes."""
    num_updates: int = 5_000
    """Gradient updates (including the warm-up)."""
    batch_size: int = 128
    """Transitions per update."""
    torso: str = "minatar"
    """Encoder torso: "minatar" (Young & Tian CNN), "impala" (Impala CNN × impala_width), "mlp"."""
    impala_width: int = 1
    """Channel multiplier of the Impala torso (8 in the paper)."""
    hidden_sizes: tuple[int, ...] = (256,)
    """Widths of the MLP torso."""
    num_features: int = 256
    """D, features φ(x) of the encoder (4096 in the paper)."""
    num_tasks: int = 100
    """T, indicator auxiliary tasks (100 in the paper's main experiments)."""
    indicator: str = "random_network"
    """Indicator tasks: "random_network" (frozen random nets, learned thresholds) or "hash" (multiply–shift)."""
    proportion: float = 0.01
    """p, the proportion of the data each indicator fires on (threshold quantile 1 − p; hash bits log2(1/p))."""
    hash_scale: float = 1.0
    """Observations are multiplied by this before hashing (255 for pixels scaled to [0, 1]; MinAtar 1)."""
    gamma: float = 0.99
    """γ of the successor measure."""
    learning_rate: float = 1.05e-4
    """Adam learning rate of the encoder and heads (see README for the paper's value)."""
    adam_eps: float = 1.5e-4
    """Adam ε."""
    threshold_learning_rate: float = 1e-2
    """Adam learning rate of the indicator thresholds θ."""
    ema_decay: float = 0.99
    """Decay of the EMA target network θ̄ ← decay·θ̄ + (1 − decay)·θ."""
    warmup_updates: int = 500
    """Updates at the start in which only the thresholds learn (the paper's warm-up)."""
    log_every: int = 250
    """Updates per logging step (and per compiled dispatch)."""
    checkpoint_every: int = 2_500
    """Updates between checkpoints (a multiple of log_every)."""
    keep_checkpoints: int = 2
    """Checkpoints kept."""
    verify_dataset: str = "checksum"
    """Dataset check on open: "checksum" (every SHA-256), "size" (headers and sizes; for 1M-frame Atari sets)."""
    progress: bool = True
    """Show a progress bar."""

    @property
    def encoder(self) -> networks.EncoderConfig:
        return networks.EncoderConfig(torso=self.torso, num_features=self.num_features,
                                      impala_width=self.impala_width, hidden_sizes=tuple(self.hidden_sizes),
                                      channels_first=self.torso == "impala")

    def validate(self) -> None:
        req = cli.require
        for name in ("num_updates", "batch_size", "num_features", "num_tasks", "log_every", "checkpoint_every",
                     "keep_checkpoints", "impala_width"):
            req(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        req(self.torso in networks.TORSOS, "torso", f"unknown {self.torso!r}; choose one of {networks.TORSOS}")
        req(self.indicator in learner_lib.INDICATORS, "indicator",
            f"unknown {self.indicator!r}; choose one of {learner_lib.INDICATORS}")
        req(0.0 < self.proportion < 1.0, "proportion", f"must lie in (0, 1), got {self.proportion}")
        req(0.0 <= self.gamma < 1.0, "gamma", f"must lie in [0, 1), got {self.gamma}")
        req(0.0 <= self.ema_decay < 1.0, "ema_decay", f"must lie in [0, 1), got {self.ema_decay}")
        for name in ("learning_rate", "adam_eps", "threshold_learning_rate", "hash_scale"):
            req(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        req(0 <= self.warmup_updates < self.num_updates, "warmup_updates", "must lie in [0, num_updates)")
        for name in ("num_updates", "checkpoint_every"):
            req(getattr(self, name) % self.log_every == 0, name, f"must be a multiple of log_every={self.log_every}")
        req(self.verify_dataset in ("checksum", "size"), "verify_dataset", "choose 'checksum' or 'size'")
        if self.env_id:
            environments.check_env_id(self.env_id)


PRESETS = {
    "smoke": ("Tiny: 40 updates of 16 tasks on the smoke dataset (seconds), used by the tests.",
              Config(dataset_dir="runs/pvn_data_smoke", out_dir="runs/pvn_pretrain_smoke", num_updates=40,
                     batch_size=32, num_features=32, num_tasks=16, proportion=0.05, warmup_updates=10,
                     log_every=20, checkpoint_every=20, learning_rate=1e-3)),
    "cpu": ("MinAtar: MinAtar CNN + 256 features, 100 random-network tasks (p = 0.01), 5k updates of batch 128, "
            "lr 1e-3 (a short budget), γ 0.99, EMA 0.99, 500 warm-up updates.",
            Config(learning_rate=1e-3)),
    "paper": ("The paper's setting on Atari: Impala CNN × 8, 4096 features, 100 tasks, batch 256, Adam lr 1.05e-4 "
              "ε 1.5e-4, γ 0.99, EMA 0.99, 1,562,500 updates (25 Dopamine iterations of 62,500) of which the first "
              "62,500 fit only the thresholds, on a DQN-replay-style dataset (frames restacked ×4).",
              Config(torso="impala", impala_width=8, num_features=4096, num_tasks=100, batch_size=256,
                     num_updates=1_562_500, warmup_updates=62_500, hash_scale=255.0, log_every=50,
                     checkpoint_every=50_000, verify_dataset="size", out_dir="runs/pvn_pretrain_atari")),
}


def open_dataset(cfg: Config) -> td.TransitionDataset:
    """Opens and checks the dataset; a bad one is a :class:`cli.ConfigError` naming ``--dataset-dir``."""
    try:
        dataset = td.TransitionDataset(cfg.dataset_dir, verify=cfg.verify_dataset)
    except td.DatasetError as error:
        raise cli.ConfigError(f"--dataset-dir: {error}") from None
    env_id = dataset.metadata.get("env_id")
    if cfg.env_id and env_id != cfg.env_id:
        raise cli.ConfigError(f"--env-id: {cfg.env_id!r}, but the dataset was collected in {env_id!r}")
    if dataset.num_transitions < cfg.batch_size:
        raise cli.ConfigError(f"--dataset-dir: {dataset.num_transitions} transitions, fewer than one batch")
    return dataset


def batches(dataset: td.TransitionDataset, rng: np.random.Generator, *, count: int, batch_size: int):
    """``count`` batches ``[count, B, ...]`` (host numpy), observations cast as the dataset says."""
    frame_stack = int(dataset.metadata.get("frame_stack", 1))
    data = dataset.sample(rng, count * batch_size, frame_stack=frame_stack)
    cast = dataset.metadata.get("observation_cast")
    obs = lambda x: (x.astype(cast) if cast else x).reshape(count, batch_size, *x.shape[1:])  # noqa: E731
    return learner_lib.Batch(observation=obs(data["observation"]),
                             action=data["action"].reshape(count, batch_size),
                             discount=data["discount"].reshape(count, batch_size),
                             next_observation=obs(data["next_observation"]))


def make_learner(cfg: Config, num_actions: int) -> learner_lib.Learner:
    return learner_lib.make_learner(learner_lib.LearnerConfig(
        encoder=cfg.encoder, num_actions=num_actions, num_tasks=cfg.num_tasks, indicator=cfg.indicator,
        proportion=cfg.proportion, hash_scale=cfg.hash_scale, gamma=cfg.gamma, learning_rate=cfg.learning_rate,
        adam_eps=cfg.adam_eps, threshold_learning_rate=cfg.threshold_learning_rate, ema_decay=cfg.ema_decay,
        warmup_updates=cfg.warmup_updates))


def example_observation(dataset: td.TransitionDataset) -> np.ndarray:
    frame_stack = int(dataset.metadata.get("frame_stack", 1))
    shape = list(dataset.observation_shape)
    shape[0] *= frame_stack if frame_stack > 1 else 1
    cast = dataset.metadata.get("observation_cast") or dataset.fields["observation"]["dtype"]
    return np.zeros((1, *shape), cast)


def load_encoder(pretrained_dir: str):
    """``(encoder params, pretraining Config, dataset metadata)`` from a finished or checkpointed pretraining run."""
    path = os.path.join(pretrained_dir, "config.json")
    if not os.path.exists(path):
        raise cli.ConfigError(f"--pretrained-dir: {pretrained_dir} holds no pretraining run (no config.json)")
    with open(path) as f:
        saved = json.load(f)
    fields = {f.name for f in dataclasses.fields(Config)}
    cfg = Config(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in fields})
    dataset = open_dataset(dataclasses.replace(cfg, verify_dataset="size"))
    learner = make_learner(cfg, int(dataset.metadata["num_actions"]))
    template = {"learner": learner.init(jax.random.PRNGKey(cfg.seed), example_observation(dataset))}
    checkpointer = Checkpointer(os.path.join(pretrained_dir, "checkpoints"))
    step = checkpointer.latest_step()
    if step is None:
        raise cli.ConfigError(f"--pretrained-dir: {pretrained_dir} holds no checkpoint")
    state = checkpointer.restore(step, template)["learner"]
    checkpointer.close()
    return networks.encoder_params(state.params), cfg, dataset.metadata


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Pretrains (or resumes) and writes every output of the CLI contract."""
    cfg.validate()
    start_wall = time.perf_counter()
    dataset = open_dataset(cfg)
    checkpointer = Checkpointer(os.path.join(cfg.out_dir, "checkpoints"), max_to_keep=cfg.keep_checkpoints)
    resuming = checkpointer.latest_step() is not None
    cli.prepare_out_dir(cfg.out_dir, cfg, resumable=resuming)
    learner = make_learner(cfg, int(dataset.metadata["num_actions"]))
    state = learner.init(jax.random.PRNGKey(cfg.seed), example_observation(dataset))
    writer = metrics.MetricsWriter(cfg.out_dir, ["updates", "td_loss", "threshold_loss", "firing_rate",
                                                 "updates_per_s", "wall_s"], step_key="updates")
    if resuming:
        step = checkpointer.latest_step()
        state = checkpointer.restore(step, {"learner": state})["learner"]
        writer.truncate(step)
        print(f"resuming {cfg.out_dir} from its checkpoint at {step} updates")
    else:
        writer.reset()

    def chunk(state, batch):
        return jax.lax.scan(learner.update, state, batch)

    compiled, compile_s = None, 0.0
    updates = int(state.step)
    bar = metrics.progress_bar(cfg.num_updates, initial=updates, desc=f"pvn pretrain {dataset.metadata.get('env_id')}",
                               disable=not cfg.progress)
    steady_time, steady_updates, last = 0.0, 0, {}
    try:
        while updates < cfg.num_updates:
            rng = np.random.default_rng([cfg.seed, updates])  # per chunk: a resumed run draws the same batches
            batch = batches(dataset, rng, count=cfg.log_every, batch_size=cfg.batch_size)
            t0 = time.perf_counter()
            if compiled is None:
                compiled = jax.jit(chunk).lower(state, batch).compile()
                compile_s = time.perf_counter() - t0
                t0 = time.perf_counter()
            state, out = compiled(state, batch)
            jax.block_until_ready(state)
            dt = time.perf_counter() - t0
            steady_time, steady_updates = steady_time + dt, steady_updates + cfg.log_every
            updates = int(state.step)
            active = np.arange(updates - cfg.log_every, updates) >= cfg.warmup_updates
            td_loss = float(np.asarray(out.td_loss)[active].mean()) if active.any() else None
            last = {"updates": updates, "td_loss": td_loss, "threshold_loss": float(np.mean(out.threshold_loss)),
                    "firing_rate": float(np.mean(out.firing_rate)), "updates_per_s": round(cfg.log_every / dt, 1),
                    "wall_s": round(time.perf_counter() - start_wall, 2)}
            writer.write(last)
            bar.update(cfg.log_every)
            bar.set_postfix(td=td_loss, fire=round(last["firing_rate"], 4))
            if updates % cfg.checkpoint_every == 0 or updates >= cfg.num_updates:
                checkpointer.save(updates, {"learner": state})
    finally:
        bar.close()
        checkpointer.close()
    figure = metrics.plot_learning_curve(cfg.out_dir, os.path.join(cfg.out_dir, "learning_curve.png"), x="updates",
                                         y="td_loss", title=f"PVN pretraining TD loss (seed {cfg.seed})")
    out = cli.summary(algorithm="pvn_pretrain", preset=preset, cfg=cfg, headline_name="td_loss",
                      headline_value=last.get("td_loss"), env_steps=None, wall_s=time.perf_counter() - start_wall,
                      compile_s=compile_s, sps_steady=None,
                      extra={"env_id": dataset.metadata.get("env_id"), "updates": updates,
                             "updates_per_s_steady": round(steady_updates / steady_time, 1) if steady_time else None,
                             "firing_rate": last.get("firing_rate"), "dataset_transitions": dataset.num_transitions})
    cli.write_json(os.path.join(cfg.out_dir, "summary.json"), out)
    print(f"final TD loss {out['headline']['value']} after {updates} updates; figure {figure}")
    return out


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.pvn.pretrain")
