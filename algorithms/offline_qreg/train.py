"""Offline RL on a D4RL-style dataset: Qsarsa-AC, Qsarsa-AC2 and the TD3, TD3+BC and BC baselines.

Paper: Shi, Dadashi, Chi, Castro & Geist 2023, "Offline Reinforcement Learning with On-Policy
Q-Function Regularization", ECML-PKDD, arXiv 2307.13824. Q_sarsa, the behaviour policy's Q,
is first fitted SARSA-style on the dataset's (s, a, r, s', a') tuples (``sarsa_steps``
gradient steps), then frozen; Qsarsa-AC pulls TD3's critics towards it at the policy's
actions, Qsarsa-AC2 pulls the actor's improvement step towards it (:mod:`.qreg`).

Run:
    python -m algorithms.offline_qreg.train cpu --env-id Hopper-v4 --dataset-kind medium --algorithm qsarsa_ac
Expected on one core of this 2-core CPU (jax 0.10.2): 20k gradient steps (64-64 networks,
batch 256) plus 4k SARSA steps and 4 evaluations in about 1–2 minutes.

``total_steps`` counts the offline learner's gradient steps (no environment steps are taken
for learning; evaluation episodes are not counted). Every ``updates_per_call`` gradient steps
run in one jitted ``lax.scan`` (sampling included). The dataset is split by episodes:
``holdout_fraction`` of the episodes are held out (same split for every algorithm and seed)
to test Q_sarsa against Monte-Carlo returns (Spearman rank correlation, in ``summary.json``).

Presets: ``smoke`` (tests; needs ``--dataset``), ``cpu`` (64-64 networks, 20k steps),
``paper`` (256-256, 1M steps, TD3+BC's hyperparameters).
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from core import checkpoint, cli, metrics
from environments import d4rl_style
from environments.registry import check_env_id

from algorithms.offline_qreg import networks, qreg
from algorithms.td3 import td3
from algorithms.td3 import learner as td3_learner
from algorithms.td3.learner import Batch, TD3State
from algorithms.td3.train import evaluate

ALGORITHMS = ("qsarsa_ac", "qsarsa_ac2", "td3", "td3_bc", "bc")
LABELS = {"qsarsa_ac": "Qsarsa-AC", "qsarsa_ac2": "Qsarsa-AC2", "td3": "TD3", "td3_bc": "TD3+BC", "bc": "BC"}
HOLDOUT_SEED = 0  # the train/held-out episode split is the same for every run


@dataclasses.dataclass(frozen=True)
class Config:
    """An offline learner (every field is a CLI flag)."""

    algorithm: str = "qsarsa_ac"
    """One of qsarsa_ac, qsarsa_ac2 (the paper's), td3 (no regularisation), td3_bc, bc."""
    env_id: str = "Hopper-v4"
    """envpool MuJoCo id the dataset was made on (evaluation environment)."""
    dataset_kind: str = "medium"
    """D4RL kind: random, medium, medium-replay, expert, medium-expert."""
    dataset_dir: str = "runs/d4rl_style"
    """Directory of the datasets (<env>-<kind>-v4.hdf5), used when --dataset is empty."""
    dataset: str = ""
    """Explicit dataset path (overrides --dataset-dir/--dataset-kind)."""
    seed: int = 0
    """Seed of networks, batches and evaluation."""
    total_steps: int = 1_000_000
    """Gradient steps of the offline actor-critic (Q_sarsa's pre-training not counted)."""
    out_dir: str = "runs/offline_qreg"
    """Where the run's files go; an out dir with checkpoints resumes that run."""
    hidden: Tuple[int, ...] = (256, 256)
    """Hidden units of actor, critics and Q_sarsa."""
    batch_size: int = 256
    """Transitions per gradient step."""
    learning_rate: float = 3e-4
    """Adam step size (actor, critics, Q_sarsa)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target networks (and of Q_sarsa's target)."""
    policy_noise: float = 0.2
    """σ of TD3's target policy smoothing."""
    noise_clip: float = 0.5
    """Clip of TD3's target policy smoothing noise."""
    policy_delay: int = 2
    """Critic steps per actor step."""
    alpha: float = 2.5
    """TD3+BC's α (λ = α / E|Q|)."""
    critic_reg_weight: float = 1.0
    """Qsarsa-AC: weight λ_c of the critic regulariser E[(Q(s, π(s)) − Q_sarsa(s, π(s)))²]."""
    actor_reg_weight: float = 1.0
    """Qsarsa-AC2: weight λ_a of the actor regulariser E[(Q(s, π(s)) − Q_sarsa(s, π(s)))²]/ν²."""
    bc_weight: float = 0.0
    """Optional behaviour-cloning term E[(π(s) − a)²] added to the Qsarsa actors (0: none)."""
    sarsa_steps: int = 100_000
    """Gradient steps fitting Q_sarsa before the actor-critic starts (Qsarsa-* only)."""
    sarsa_tau: float = 0.005
    """Polyak rate of Q_sarsa's target network (larger: the horizon propagates in fewer steps)."""
    holdout_fraction: float = 0.1
    """Fraction of the dataset's episodes held out from training (Q_sarsa vs Monte-Carlo returns)."""
    normalize_observations: bool = True
    """Standardise observations with the training split's mean and std (TD3+BC's preprocessing)."""
    updates_per_call: int = 1_000
    """Gradient steps per jitted lax.scan dispatch."""
    eval_every: int = 5_000
    """Gradient steps between evaluations."""
    eval_episodes: int = 10
    """Deterministic evaluation episodes (envpool, run at once)."""
    checkpoint_every: int = 50_000
    """Gradient steps between checkpoints."""
    keep_checkpoints: int = 2
    """Checkpoints kept."""
    progress: bool = True
    """Show a progress bar."""

    @property
    def dataset_path(self) -> str:
        return self.dataset or d4rl_style.dataset_path(self.dataset_dir, self.env_id, self.dataset_kind)

    @property
    def uses_sarsa(self) -> bool:
        return self.algorithm in ("qsarsa_ac", "qsarsa_ac2")

    def validate(self) -> None:
        req = cli.require
        req(self.algorithm in ALGORITHMS, "algorithm", f"unknown {self.algorithm!r}; choose one of {ALGORITHMS}")
        check_env_id(self.env_id)
        try:
            d4rl_style.env_name(self.env_id)
        except ValueError as error:
            req(False, "env_id", str(error))
        req(self.dataset_kind in d4rl_style.KINDS, "dataset_kind",
            f"unknown {self.dataset_kind!r}; choose one of {d4rl_style.KINDS}")
        req(self.total_steps >= 1, "total_steps", f"must be >= 1, got {self.total_steps}")
        req(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "hidden", f"positive sizes, got {self.hidden}")
        req(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        req(self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
        req(0 <= self.gamma < 1, "gamma", f"must lie in [0, 1), got {self.gamma}")
        req(0 < self.tau <= 1, "tau", f"must lie in (0, 1], got {self.tau}")
        req(0 < self.sarsa_tau <= 1, "sarsa_tau", f"must lie in (0, 1], got {self.sarsa_tau}")
        req(self.policy_delay >= 1, "policy_delay", f"must be >= 1, got {self.policy_delay}")
        for name in ("alpha", "critic_reg_weight", "actor_reg_weight", "bc_weight", "policy_noise", "noise_clip"):
            req(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        req(self.sarsa_steps >= 0, "sarsa_steps", f"must be >= 0, got {self.sarsa_steps}")
        req(0 <= self.holdout_fraction < 1, "holdout_fraction", f"must lie in [0, 1), got {self.holdout_fraction}")
        for name in ("updates_per_call", "eval_every", "eval_episodes", "checkpoint_every", "keep_checkpoints"):
            req(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every", "total_steps"):
            req(getattr(self, name) % self.updates_per_call == 0, name,
                f"must be a multiple of --updates-per-call ({self.updates_per_call}), got {getattr(self, name)}")
        req(self.sarsa_steps % self.updates_per_call == 0, "sarsa_steps",
            f"must be a multiple of --updates-per-call ({self.updates_per_call}), got {self.sarsa_steps}")
        try:
            d4rl_style.load(self.dataset_path, env_id=self.env_id)
        except d4rl_style.DatasetError as error:
            raise cli.ConfigError(f"--dataset: {error}") from None


PRESETS = {
    "smoke": ("tiny networks, 2k steps on a given --dataset: used by the tests.",
              Config(total_steps=2_000, hidden=(32, 32), batch_size=64, sarsa_steps=1_000, updates_per_call=500,
                     eval_every=1_000, eval_episodes=2, checkpoint_every=1_000, keep_checkpoints=3,
                     out_dir="runs/offline_qreg_smoke")),
    "cpu": ("64-64 networks, batch 256, 20k gradient steps (+4k SARSA steps, target rate 0.05), evaluation every 5k.",
            Config(total_steps=20_000, hidden=(64, 64), sarsa_steps=4_000, sarsa_tau=0.05, eval_every=5_000,
                   eval_episodes=5, checkpoint_every=10_000, updates_per_call=500, out_dir="runs/offline_qreg_cpu")),
    "paper": ("256-256, batch 256, 1M gradient steps, TD3+BC's hyperparameters (α = 2.5, normalised states).",
              Config(out_dir="runs/offline_qreg_paper")),
}


class Data(NamedTuple):
    """The training split on the device (observations standardised)."""

    observations: jax.Array  # [N, D] float32
    actions: jax.Array  # [N, A] float32
    rewards: jax.Array  # [N] float32
    discounts: jax.Array  # [N] float32 0 at terminals, 1 otherwise (timeouts bootstrap)
    next_observations: jax.Array  # [N, D] float32
    next_actions: jax.Array  # [N, A] float32


def to_data(ds: d4rl_style.Dataset, mean: np.ndarray, std: np.ndarray) -> Data:
    return Data(observations=jnp.asarray((ds.observations - mean) / std), actions=jnp.asarray(ds.actions),
                rewards=jnp.asarray(ds.rewards), discounts=jnp.asarray(ds.discounts),
                next_observations=jnp.asarray((ds.next_observations - mean) / std),
                next_actions=jnp.asarray(ds.next_actions))


def sample(data: Data, key, batch_size: int) -> Batch:
    idx = jax.random.randint(key, (batch_size,), 0, data.rewards.shape[0])
    return Batch(observation=data.observations[idx], action=data.actions[idx], reward=data.rewards[idx],
                 discount=data.discounts[idx], next_observation=data.next_observations[idx],
                 next_action=data.next_actions[idx])


# ----------------------------------------------------------------------------- losses
class SarsaState(NamedTuple):
    params: dict  # Q_sarsa parameters
    target: dict  # Polyak-averaged Q_sarsa
    opt: optax.OptState  # Adam state
    key: jax.Array  # [2] uint32


def sarsa_loss_fn(q_net: networks.QNetwork, *, gamma: float):
    """(params, target_params, batch) -> [] the SARSA regression of Q_sarsa, target at the dataset's next action."""
    def loss(params, target_params, batch: Batch):
        q_next = q_net.apply(target_params, batch.next_observation, batch.next_action)
        target = qreg.sarsa_target(batch.reward, batch.discount, q_next, gamma=gamma)
        return qreg.sarsa_loss(q_net.apply(params, batch.observation, batch.action), target)
    return loss


def make_sarsa_trainer(cfg: Config, q_net: networks.QNetwork, obs_dim: int, act_dim: int):
    opt = optax.adam(cfg.learning_rate)
    loss_fn = sarsa_loss_fn(q_net, gamma=cfg.gamma)

    def init(key) -> SarsaState:
        k_params, k_state = jax.random.split(key)
        params = q_net.init(k_params, jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim)))
        return SarsaState(params, jax.tree.map(jnp.copy, params), opt.init(params), k_state)

    def step(state: SarsaState, data: Data):
        key, k_batch = jax.random.split(state.key)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, state.target, sample(data, k_batch, cfg.batch_size))
        updates, opt_state = opt.update(grads, state.opt, state.params)
        params = optax.apply_updates(state.params, updates)
        return SarsaState(params, td3.polyak(state.target, params, tau=cfg.sarsa_tau), opt_state, key), loss

    @jax.jit
    def run(state: SarsaState, data: Data):
        return jax.lax.scan(lambda s, _: step(s, data), state, None, length=cfg.updates_per_call)

    return init, run


class LossWeights(NamedTuple):
    """Every algorithm of this directory is one weighting of the same terms (scalars, vmappable).

    critic: critic_td · TD3's TD loss + critic_reg · E[Σᵢ(Qᵢ(s, π̃(s)) − Q_sarsa(s, π̃(s)))²]/2;
    actor: actor_q · (−E[Q₁(s, π(s))]) + actor_q_norm · (−E[Q₁(s, π(s))]/ν)
           + actor_reg · E[(Q₁(s, π(s)) − Q_sarsa(s, π(s)))²]/ν² + actor_bc · E[(π(s) − a)²].
    """

    critic_td: jax.Array  # [] 1, or 0 for BC (no critic)
    critic_reg: jax.Array  # [] λ_c (Qsarsa-AC)
    actor_q: jax.Array  # [] 1 for TD3 (unnormalised DPG)
    actor_q_norm: jax.Array  # [] 1 (Qsarsa-*), α (TD3+BC)
    actor_reg: jax.Array  # [] λ_a (Qsarsa-AC2)
    actor_bc: jax.Array  # [] 1 (TD3+BC, BC), bc_weight (Qsarsa-*)


def loss_weights(cfg: Config) -> LossWeights:
    """The weights of ``cfg.algorithm`` (see README: equation map)."""
    a = cfg.algorithm
    w = dict(critic_td=0.0 if a == "bc" else 1.0, critic_reg=cfg.critic_reg_weight if a == "qsarsa_ac" else 0.0,
             actor_q=1.0 if a == "td3" else 0.0,
             actor_q_norm={"qsarsa_ac": 1.0, "qsarsa_ac2": 1.0, "td3_bc": cfg.alpha}.get(a, 0.0),
             actor_reg=cfg.actor_reg_weight if a == "qsarsa_ac2" else 0.0,
             actor_bc={"td3_bc": 1.0, "bc": 1.0}.get(a, cfg.bc_weight if cfg.uses_sarsa else 0.0))
    return LossWeights(**{k: jnp.float32(v) for k, v in w.items()})


def make_losses(cfg: Config, net: networks.ActorCritic, q_net: networks.QNetwork):
    """The critic and actor loss hooks for :func:`algorithms.td3.learner.make_learner`.

    The algorithm is ``state.extra["weights"]`` (:class:`LossWeights`); Q_sarsa's parameters
    sit in ``state.extra["q_sarsa"]``. Neither is ever differentiated.
    """
    base_critic = td3_learner.td3_critic_loss(net, gamma=cfg.gamma, policy_noise=cfg.policy_noise,
                                              noise_clip=cfg.noise_clip)

    def critic_loss(critic_params, state: TD3State, batch: Batch, key):
        w = jax.lax.stop_gradient(state.extra["weights"])
        q_sarsa = jax.lax.stop_gradient(state.extra["q_sarsa"])
        td_loss, aux = base_critic(critic_params, state, batch, key)
        pi = jax.lax.stop_gradient(net.actor(state.actor, batch.observation))  # π̃(s): no gradient to the actor
        q_pi = net.critic(critic_params, batch.observation, pi)
        reg = qreg.critic_regularizer(q_pi, q_net.apply(q_sarsa, batch.observation, pi))
        loss = w.critic_td * td_loss + w.critic_reg * reg
        return loss, {**aux, "q_pi": jnp.mean(jax.lax.stop_gradient(q_pi[:, 0])), "reg": reg}

    def actor_loss(actor_params, critic_params, state: TD3State, batch: Batch):
        w = jax.lax.stop_gradient(state.extra["weights"])
        q_sarsa = jax.lax.stop_gradient(state.extra["q_sarsa"])
        pi = net.actor(actor_params, batch.observation)
        q_pi = net.critic(jax.lax.stop_gradient(critic_params), batch.observation, pi)[:, 0]
        scale = qreg.q_scale(q_pi)
        loss = (w.actor_q * td3.actor_loss(q_pi)
                + w.actor_q_norm * qreg.normalized_improvement(q_pi, scale=scale)
                + w.actor_reg * qreg.actor_regularizer(q_pi, q_net.apply(q_sarsa, batch.observation, pi), scale=scale)
                + w.actor_bc * qreg.behavior_cloning(pi, batch.action))
        return loss, {}

    return critic_loss, actor_loss


def make_trainer(cfg: Config, obs_dim: int, act_dim: int):
    """Networks, ``init(key, q_sarsa_params) -> TD3State`` and ``run(state, data)``: ``updates_per_call`` steps."""
    net = networks.make_actor_critic(act_dim, cfg.hidden)
    q_net = networks.make_q_network(cfg.hidden)
    critic_loss, actor_loss = make_losses(cfg, net, q_net)
    learner = td3_learner.make_learner(net, learning_rate=cfg.learning_rate, tau=cfg.tau,
                                       policy_delay=cfg.policy_delay,
                                       critic_loss_fn=critic_loss, actor_loss_fn=actor_loss)

    def init(key, q_sarsa_params, weights=None) -> TD3State:
        return learner.init(key, jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim)),
                            extra={"q_sarsa": q_sarsa_params, "weights": loss_weights(cfg) if weights is None else weights})

    def one(state: TD3State, data: Data):
        key, k_batch = jax.random.split(state.key)
        return learner.update(state._replace(key=key), sample(data, k_batch, cfg.batch_size))

    def run(state: TD3State, data: Data):
        state, out = jax.lax.scan(lambda s, _: one(s, data), state, None, length=cfg.updates_per_call)
        return state, jax.tree.map(lambda v: jnp.nanmean(v), out)

    return net, q_net, init, jax.jit(run), jax.jit(one)


def make_members_trainer(cfg: Config, obs_dim: int, act_dim: int):
    """``run(states [M], data)``: ``updates_per_call`` steps of M learners at once (``vmap``: seeds × algorithms).

    The algorithm of each member is its ``extra["weights"]``, so one compiled program trains
    every algorithm and seed of a dataset.
    """
    net, q_net, init, _, one = make_trainer(cfg, obs_dim, act_dim)

    def run(states: TD3State, data: Data):
        def body(s, _):
            return jax.vmap(one, in_axes=(0, None))(s, data)
        states, out = jax.lax.scan(body, states, None, length=cfg.updates_per_call)
        return states, jax.tree.map(lambda v: jnp.nanmean(v, axis=0), out)

    return net, q_net, init, jax.jit(run, donate_argnums=0)


def sarsa_diagnostics(q_net: networks.QNetwork, params, held: d4rl_style.Dataset, mean, std, *, gamma: float) -> dict:
    """Q_sarsa(s, a) against the Monte-Carlo discounted returns of the held-out episodes."""
    if held.size == 0:
        return {}
    returns = d4rl_style.discounted_returns(held, gamma=gamma)
    q = np.asarray(q_net.apply(params, jnp.asarray((held.observations - mean) / std), jnp.asarray(held.actions)))
    # transitions far from a timeout (> 200 steps), where the truncated return is within γ^200 ≈ 13% of the tail
    ids = d4rl_style.episode_ids(held)
    to_end = np.zeros(held.size, np.int64)
    for e in np.unique(ids):
        idx = np.nonzero(ids == e)[0]
        to_end[idx] = idx[-1] - idx
    timeout_episode = np.isin(ids, ids[held.timeouts])
    far = ~timeout_episode | (to_end >= 200)
    out = {"sarsa_spearman": float(qreg.spearman(jnp.asarray(q), jnp.asarray(returns, jnp.float32))),
           "sarsa_pearson": float(np.corrcoef(q, returns)[0, 1]),
           "sarsa_mean_q": float(q.mean()), "mc_mean_return": float(returns.mean()),
           "sarsa_heldout_transitions": held.size}
    if far.sum() > 2:
        out["sarsa_spearman_far_from_timeout"] = float(qreg.spearman(jnp.asarray(q[far]),
                                                                     jnp.asarray(returns[far], jnp.float32)))
    return out


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one offline run and writes every output of the CLI contract."""
    start_wall = time.perf_counter()
    dataset = d4rl_style.load(cfg.dataset_path, env_id=cfg.env_id)
    train, held = d4rl_style.split_episodes(dataset, holdout_fraction=cfg.holdout_fraction, seed=HOLDOUT_SEED)
    obs_dim, act_dim = dataset.observations.shape[1], dataset.actions.shape[1]
    if cfg.normalize_observations:
        mean, std = train.observations.mean(0), train.observations.std(0) + 1e-3
    else:
        mean, std = np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32)
    data = to_data(train, mean, std)
    ckpt_dir = os.path.join(cfg.out_dir, "checkpoints")
    cli.prepare_out_dir(cfg.out_dir, cfg, resumable=os.path.isdir(ckpt_dir))
    net, q_net, init, run, _ = make_trainer(cfg, obs_dim, act_dim)
    key_sarsa, key_learner = jax.random.split(jax.random.PRNGKey(cfg.seed))
    writer = metrics.MetricsWriter(cfg.out_dir, ["grad_steps", "eval_return", "eval_normalized", "critic_loss",
                                                 "actor_loss", "q_mean", "q_pi", "reg", "sps", "wall_s"],
                                   step_key="grad_steps")
    ckpt = checkpoint.Checkpointer(ckpt_dir, max_to_keep=cfg.keep_checkpoints)
    sarsa_init, sarsa_run = make_sarsa_trainer(cfg, q_net, obs_dim, act_dim)
    sarsa_state = sarsa_init(key_sarsa)
    state = init(key_learner, sarsa_state.params)
    latest = ckpt.latest_step()
    sarsa_s = 0.0
    if latest is not None:
        state = ckpt.restore(latest, state)
        step = latest
        writer.truncate(step)
    else:
        writer.reset()
        step = 0
        if cfg.uses_sarsa:
            t0 = time.perf_counter()
            for _ in range(cfg.sarsa_steps // cfg.updates_per_call):
                sarsa_state, _losses = sarsa_run(sarsa_state, data)
            jax.block_until_ready(sarsa_state)
            sarsa_s = time.perf_counter() - t0
            state = state._replace(extra={**state.extra, "q_sarsa": sarsa_state.params})
    diagnostics = sarsa_diagnostics(q_net, state.extra["q_sarsa"], held, mean, std, gamma=cfg.gamma) \
        if cfg.uses_sarsa else {}
    actor = jax.jit(net.actor)
    transform = lambda obs: (obs - mean) / std  # noqa: E731
    compile_s, sps_samples = None, []
    bar = metrics.progress_bar(cfg.total_steps, initial=step, desc=f"{LABELS[cfg.algorithm]} {cfg.env_id}",
                               disable=not cfg.progress)
    while step < cfg.total_steps:
        t0 = time.perf_counter()
        state, out = run(state, data)
        jax.block_until_ready(state)
        dt = time.perf_counter() - t0
        if compile_s is None:
            compile_s = dt
        else:
            sps_samples.append(cfg.updates_per_call / dt)
        step += cfg.updates_per_call
        bar.update(cfg.updates_per_call)
        if step % cfg.eval_every == 0 or step == cfg.total_steps:
            returns = evaluate(actor, state.actor, cfg.env_id, episodes=cfg.eval_episodes,
                               seed=10**6 + cfg.seed, obs_transform=transform)
            record = {"grad_steps": step, "eval_return": float(returns.mean()),
                      "eval_normalized": float(d4rl_style.normalized_score(cfg.env_id, returns.mean())),
                      **{k: float(v) for k, v in out.items()},
                      "sps": sps_samples[-1] if sps_samples else None, "wall_s": time.perf_counter() - start_wall}
            writer.write(record)
            bar.set_postfix(score=f"{record['eval_normalized']:.1f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.total_steps:
            ckpt.save(step, state)
    bar.close()
    records = metrics.read_jsonl(writer.jsonl_path)
    metrics.plot_learning_curve(cfg.out_dir, os.path.join(cfg.out_dir, "learning_curve.png"), x="grad_steps",
                                y="eval_normalized", title=f"{LABELS[cfg.algorithm]} {os.path.basename(cfg.dataset_path)}")
    final = records[-1] if records else {}
    out = cli.summary(algorithm=cfg.algorithm, preset=preset, cfg=cfg, headline_name="d4rl_normalized_score",
                      headline_value=final.get("eval_normalized"), env_steps=0,
                      wall_s=time.perf_counter() - start_wall, compile_s=compile_s,
                      sps_steady=float(np.median(sps_samples)) if sps_samples else None,
                      extra={"grad_steps": step, "dataset": cfg.dataset_path, "dataset_kind": cfg.dataset_kind,
                             "final_eval_return": final.get("eval_return"), "final_q_pi": final.get("q_pi"),
                             "sarsa_pretrain_s": round(sarsa_s, 3), **diagnostics})
    cli.write_json(os.path.join(cfg.out_dir, "summary.json"), out)
    ckpt.close()
    return out


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.offline_qreg.train")
