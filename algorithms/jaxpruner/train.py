"""Sparse DQN and sparse Rainbow/DER: the value-based agent trained through a JaxPruner updater.

Paper: Lee, Park, Mitchell, Lin, Bai, Evci, Dziugaite, Castro, Castro et al. 2023,
"JaxPruner: A concise library for sparsity research", arXiv 2304.14082 (Section 4, the
Dopamine DQN integration and its table of returns at 98% sparsity). The agent is
:mod:`algorithms.dqn.agent`'s; this script wraps its optimizer with
``updater.wrap_optax`` (the masks live in the optimizer state, so checkpoints carry them),
computes the loss on ``updater.pre_forward_update(θ)`` (θ ⊙ m with a straight-through
gradient for the STE algorithms), starts sparse-training algorithms from masked weights,
and logs the sparsity of the online network.

Pruning schedule in gradient steps, as fractions of the run's gradient steps: the
paper's DQN prunes gradually (cubic) from 500k to 2M of 2.5M gradient steps (0.2 to 0.8),
every 1000; SET/RigL update their masks every ``update_freq`` steps from the first step,
with the drop fraction cosine-decayed to 0 at ``update_end_fraction``.

Run:
    python -m algorithms.jaxpruner.train cpu --env-id Breakout-MinAtar --pruner rigl
Expected on 2 CPU cores (jax 0.10.2): the MinAtar table of README.md, made by
``python -m algorithms.jaxpruner.experiment``.

Presets: ``smoke`` (tests), ``cpu`` (MinAtar DQN, 98% sparsity), ``cpu_der`` (MinAtar
Rainbow), ``paper`` (Dopamine DQN on Atari, 98% ERK gradual magnitude pruning),
``paper_der`` (DER on Atari 100k).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from core import cli, parallel, prioritized
from core.types import EnvSpec

from algorithms.dqn import agent as dqn_agent
from algorithms.dqn import loop
from algorithms.dqn.train import PRESETS as DQN_PRESETS
from algorithms.jaxpruner import api as jaxpruner
from algorithms.jaxpruner import sparsity as sp
from algorithms.rainbow.train import PRESETS as RAINBOW_PRESETS


@dataclasses.dataclass(frozen=True)
class Config(dqn_agent.Config):
    """The value-based agent's configuration plus the sparsity updater's (every field is a CLI flag)."""

    pruner: str = "magnitude"
    """JaxPruner algorithm: no_prune, magnitude, random, saliency, magnitude_ste, random_ste, global_magnitude,
    global_saliency, static_sparse, set, rigl."""
    sparsity: float = 0.98
    """Target sparsity of the prunable parameters (weights with ≥ 2 dimensions; biases stay dense)."""
    dist_type: str = "erk"
    """Per-layer sparsity distribution: "erk" (Erdős–Rényi-kernel) or "uniform" (ignored by global_*)."""
    sparsity_type: str = "unstructured"
    """Structure: "unstructured", "nm_N,M", "block_H,W" or "channel_AXIS"."""
    update_start_fraction: float = 0.2
    """First mask update, as a fraction of the run's gradient steps (paper DQN: 500k of 2.5M = 0.2)."""
    update_end_fraction: float = 0.8
    """Last mask update (and the end of SET/RigL's drop-fraction decay), fraction of gradient steps (paper: 0.8)."""
    update_freq: int = 100
    """Gradient steps between mask updates (paper: 1000 of 2.5M for pruning, 5000 for SET/RigL)."""
    drop_fraction: float = 0.3
    """SET/RigL: initial fraction of each layer's active weights dropped and regrown (paper's DQN config: 0.3)."""
    bit_packing: bool = False
    """Store the masks bit-packed (8 weights per byte) in the optimizer state."""

    @property
    def update_start_step(self) -> int:
        return int(round(self.update_start_fraction * self.total_updates))

    @property
    def update_end_step(self) -> int:
        return int(round(self.update_end_fraction * self.total_updates))

    @property
    def sparsity_config(self) -> dict:
        """The plain config of :func:`algorithms.jaxpruner.api.create_updater_from_config`."""
        return dict(algorithm=self.pruner, sparsity=self.sparsity, dist_type=self.dist_type,
                    sparsity_type=self.sparsity_type, update_freq=self.update_freq,
                    update_start_step=self.update_start_step, update_end_step=self.update_end_step,
                    drop_fraction=self.drop_fraction, rng_seed=self.seed, bit_packing=self.bit_packing)

    def validate(self) -> None:
        super().validate()
        req = cli.require
        names = jaxpruner.all_algorithm_names()
        req(self.pruner in names, "pruner", f"unknown algorithm {self.pruner!r}; choose one of {names}")
        req(0.0 <= self.sparsity < 1.0, "sparsity", f"must lie in [0, 1), got {self.sparsity}")
        req(self.dist_type in ("erk", "uniform"), "dist_type", f"choose 'erk' or 'uniform', got {self.dist_type!r}")
        try:
            structure = sp.parse_sparsity_type(self.sparsity_type)
        except ValueError as error:
            raise cli.ConfigError(f"--sparsity-type: {error}") from None
        req(isinstance(structure, sp.Unstructured) or self.pruner not in ("set", "rigl"), "sparsity_type",
            f"{self.pruner} supports unstructured sparsity only")
        req(0.0 <= self.update_start_fraction <= self.update_end_fraction <= 1.0, "update_start_fraction",
            f"need 0 <= update_start_fraction <= update_end_fraction <= 1, got "
            f"{self.update_start_fraction} and {self.update_end_fraction}")
        req(self.update_freq >= 1, "update_freq", f"must be >= 1, got {self.update_freq}")
        req(0.0 <= self.drop_fraction <= 1.0, "drop_fraction", f"must lie in [0, 1], got {self.drop_fraction}")


def _dqn(preset: str, **changes) -> dict:
    return {**dataclasses.asdict(DQN_PRESETS[preset][1]), **changes}


def _rainbow(preset: str, **changes) -> dict:
    return {**dataclasses.asdict(RAINBOW_PRESETS[preset][1]), **changes}


PRESETS = {
    "smoke": (
        "MinAtar Breakout, 2k steps (375 gradient steps), gradual magnitude pruning to 98% ERK: used by the tests.",
        Config(**_dqn("cpu", total_steps=2_000, learning_starts=500, buffer_size=5_000, eps_decay_steps=1_000,
                      target_update_every=100, eval_every=1_000, eval_episodes=4, log_every=500,
                      checkpoint_every=1_000, keep_checkpoints=3, out_dir="runs/jaxpruner_smoke"),
               update_freq=25),
    ),
    "cpu": (
        "Sparse DQN on MinAtar (the DQN cpu preset, replay ratio 1/4) at 98% ERK sparsity, 30k steps "
        "(7,250 gradient steps), greedy evaluations every 10k steps; pick the algorithm with --pruner.",
        Config(**_dqn("cpu", total_steps=30_000, eval_every=10_000, log_every=2_500,
                      checkpoint_every=15_000, out_dir="runs/jaxpruner_minatar"), update_freq=100),
    ),
    "cpu_der": (
        "Sparse Rainbow on MinAtar (the Rainbow cpu preset) at 98% ERK sparsity, 20k steps.",
        Config(**_rainbow("cpu", total_steps=20_000, eps_decay_steps=4_000, eval_every=20_000, log_every=2_500,
                          checkpoint_every=10_000, out_dir="runs/jaxpruner_rainbow_minatar"), update_freq=100),
    ),
    "paper": (
        "Sparse DQN on Atari, 40M frames (10M agent steps, 2.5M gradient steps; Dopamine JAX DQN), 98% ERK "
        "gradual magnitude pruning from 500k to 2M gradient steps every 1000 (the paper's DQN setting).",
        Config(**_dqn("paper", total_steps=10_000_000, out_dir="runs/jaxpruner_dqn_atari"), update_freq=1_000),
    ),
    "paper_der": (
        "Sparse DER on Atari 100k (the Rainbow der preset), 98% ERK gradual magnitude pruning.",
        Config(**_rainbow("der", out_dir="runs/jaxpruner_der_atari100k"), update_freq=1_000),
    ),
}


# --------------------------------------------------------------------------- the sparse agent


def make_updater(cfg: Config) -> jaxpruner.BaseUpdater:
    """The JaxPruner updater of the config (schedule steps counted in gradient steps)."""
    return jaxpruner.create_updater_from_config(cfg.sparsity_config)


def make_sparse_learner_update(cfg: Config, apply, optimizer: optax.GradientTransformation,
                               updater: jaxpruner.BaseUpdater, mesh):
    """:func:`algorithms.dqn.agent.make_learner_update` with the loss taken at ``pre_forward_update(θ)``.

    ``optimizer`` is the wrapped one (its state a :class:`SparseState`); the online and
    target forward passes both see the masked weights.
    """
    atoms = dqn_agent.support(cfg.num_atoms, cfg.v_max)

    def update(params, target_params, opt_state, key, batch, weight):
        target_forward = updater.pre_forward_update(target_params, opt_state)

        def loss_fn(p):
            out = dqn_agent.value_loss(updater.pre_forward_update(p, opt_state), target_forward, batch, key,
                                       apply=apply, atoms=atoms, double_q=cfg.double_q, huber=cfg.huber,
                                       augment_pad=cfg.augment_pad, channels_first=cfg.network.channels_first)
            return jnp.mean(weight * out.loss), out.priority

        (loss, priority), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        grads, loss = parallel.pmean((grads, loss))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = updater.post_gradient_update(optax.apply_updates(params, updates), opt_state)
        return params, opt_state, loss, parallel.all_gather(priority)

    sharded = parallel.data_parallel(update, mesh, num_replicated=4, num_sharded=2)

    def learner_update(train, batch, weight, key):
        params, opt_state, loss, priority = sharded(train.params, train.target_params, train.opt_state, key,
                                                    batch, weight)
        step = train.step + 1
        target = optax.periodic_update(params, train.target_params, step, cfg.target_update_every)
        return train._replace(params=params, target_params=target, opt_state=opt_state, step=step), loss, priority

    return learner_update


def make_agent(cfg: Config, spec: EnvSpec, mesh=None) -> dqn_agent.Agent:
    """:func:`algorithms.dqn.agent.make_agent` with a pruned (or sparse-trained) online network."""
    mesh = mesh if mesh is not None else parallel.local_mesh(cfg.num_devices or None)
    base = dqn_agent.make_agent(cfg, spec, mesh)
    updater = make_updater(cfg)
    optimizer = updater.wrap_optax(dqn_agent.make_optimizer(cfg))
    learner_update = make_sparse_learner_update(cfg, base.network.apply, optimizer, updater, mesh)

    def init(key):
        state = base.init(key)
        opt_state = optimizer.init(state.train.params)
        params = updater.post_gradient_update(state.train.params, opt_state)  # sparse training starts sparse
        target = jax.tree.map(lambda x: x.copy(), params)
        return state._replace(train=state.train._replace(params=params, target_params=target, opt_state=opt_state))

    def forward_params(train):
        return updater.pre_forward_update(train.params, train.opt_state)

    def learn(state: dqn_agent.LoopState) -> dqn_agent.LoopState:
        def one_update(_, s):
            s, batch, indices, weight, loss_key = base.sample(s)
            train, loss, priority = learner_update(s.train, batch, weight, loss_key)
            buffer = s.replay
            if cfg.prioritized:
                buffer = prioritized.update_priorities(buffer, indices, priority, alpha=cfg.priority_exponent)
            return s._replace(train=train, replay=buffer, loss_sum=s.loss_sum + loss, loss_count=s.loss_count + 1)

        if cfg.updates_per_call <= 4:
            for i in range(cfg.updates_per_call):
                state = one_update(i, state)
            return state
        return jax.lax.fori_loop(0, cfg.updates_per_call, one_update, state)

    def observe(state, timestep):
        """Acts with the forward (masked) weights; for the non-STE algorithms they are the stored ones."""
        if not updater.straight_through:
            return base.observe(state, timestep)
        dense = state.train.params
        state, actions = base.observe(state._replace(train=state.train._replace(params=forward_params(state.train))),
                                      timestep)
        return state._replace(train=state.train._replace(params=dense)), actions

    def act_greedy(params, observation, key, epsilon):
        """Evaluation: the STE algorithms' dense weights masked at the final target sparsity (see README)."""
        if updater.straight_through:
            final = dataclasses.replace(updater, scheduler=jaxpruner.NoUpdateSchedule())
            state = jaxpruner.SparseState(masks=None, inner_state=None, count=jnp.zeros((), jnp.int32),
                                          key=jax.random.PRNGKey(cfg.seed))
            params = jax.lax.stop_gradient(final.pre_forward_update(params, state))
        return base.act_greedy(params, observation, key, epsilon)

    def diagnostics(state: dqn_agent.LoopState) -> dict:
        """Fractions of zero weights of the online forward network (prunable and all) and of masked-out weights."""
        train = state.train
        masks = updater.masks_of(train.opt_state, train.params)
        summary = sp.summarize_sparsity(forward_params(train), masks)
        mask_leaves = [m for m in jax.tree.leaves(masks)]
        kept = sum(jnp.sum(m.astype(jnp.float32)) for m in mask_leaves) if mask_leaves else jnp.zeros(())
        size = sum(m.size for m in mask_leaves)
        return {"sparsity": summary.total_prunable, "sparsity_all": summary.total,
                "mask_sparsity": 1.0 - kept / max(size, 1) if size else jnp.zeros(())}

    agent = dqn_agent.with_learn(base._replace(init=init, observe=observe, learner_update=learner_update,
                                               act_greedy=act_greedy), learn)
    return agent._replace(diagnostics=diagnostics)


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one run and writes every output of the CLI contract."""
    base = "Rainbow" if cfg.num_atoms else "DQN"
    title = f"{base} + {cfg.pruner} ({100 * cfg.sparsity:g}% {cfg.dist_type})"
    return loop.main(cfg, preset=preset, algorithm=f"{base.lower()}_{cfg.pruner}", title=title, agent_fn=make_agent)


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.jaxpruner.train")
