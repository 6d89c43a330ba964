"""A four-rooms gridworld with exact successor measures, and the PVN scaling study on it.

Sutton, Precup & Singh (1999)'s four rooms: 104 cells, four deterministic moves (a move
into a wall stays put). Observations are one-hot cells, so every quantity of the study is
exact: P^unif = (1/|A|) Σ_a P_a, the successor measure Ψ = (I − γ P^unif)⁻¹, its top left
singular subspace, and the value V = Ψ r of any reward r.

The study (:func:`run_study`) pretrains PVN encoders offline on the whole transition table
(every (x, a, x') once: an offline dataset with uniform coverage), vmapped over seeds, and
measures each encoder's features Φ ``[S, D]`` by

* the downstream linear value error: the least-squares fit of V = Ψ r by Φw + b for random
  rewards r ~ N(0, I), as a fraction of ‖V − mean V‖² (0 = exact, 1 = a constant);
* the principal angles between span Φ and the top-D left singular subspace of Ψ (the best
  D-dimensional subspace for those values), reported as the mean cos² (1 = equal spans);

against a frozen random encoder of the same architecture and the SVD oracle.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from algorithms.pvn import learner as learner_lib
from algorithms.pvn import networks, pvn

FOUR_ROOMS = (
    "#############",
    "#     #     #",
    "#     #     #",
    "#           #",
    "#     #     #",
    "#     #     #",
    "## ####     #",
    "#     ### ###",
    "#     #     #",
    "#     #     #",
    "#           #",
    "#     #     #",
    "#############",
)
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right


class GridMDP(NamedTuple):
    transitions: np.ndarray  # [S, A, S] float64 P(x'|x, a)
    cells: np.ndarray  # [S, 2] int (row, column) of each state


def four_rooms(layout: Sequence[str] = FOUR_ROOMS) -> GridMDP:
    """The four-rooms MDP: states are the free cells, deterministic moves, walls block."""
    cells = [(r, c) for r, row in enumerate(layout) for c, ch in enumerate(row) if ch != "#"]
    index = {cell: i for i, cell in enumerate(cells)}
    p = np.zeros((len(cells), len(MOVES), len(cells)))
    for i, (r, c) in enumerate(cells):
        for a, (dr, dc) in enumerate(MOVES):
            p[i, a, index.get((r + dr, c + dc), i)] = 1.0
    return GridMDP(transitions=p, cells=np.array(cells))


def uniform_policy_matrix(transitions: np.ndarray) -> np.ndarray:
    """P^unif(x'|x) = (1/|A|) Σ_a P(x'|x, a)."""
    return transitions.mean(axis=1)


def transition_table(mdp: GridMDP) -> learner_lib.Batch:
    """Every (x, a, x') of a deterministic MDP once, one-hot observations (float32)."""
    s, a, _ = mdp.transitions.shape
    x = np.repeat(np.arange(s), a)
    acts = np.tile(np.arange(a), s)
    nxt = mdp.transitions[x, acts].argmax(-1)
    eye = np.eye(s, dtype=np.float32)
    return learner_lib.Batch(observation=jnp.asarray(eye[x]), action=jnp.asarray(acts, jnp.int32),
                             discount=jnp.ones(s * a, jnp.float32), next_observation=jnp.asarray(eye[nxt]))


class StudyConfig(NamedTuple):
    num_tasks: int
    num_features: int
    indicator: str = "random_network"
    proportion: float = 0.05
    gamma: float = 0.9
    hidden: int = 128
    num_updates: int = 6000
    batch_size: int = 128
    learning_rate: float = 1e-3
    warmup_updates: int = 500


def learner_config(cfg: StudyConfig, num_actions: int) -> learner_lib.LearnerConfig:
    encoder = networks.EncoderConfig(torso="mlp", num_features=cfg.num_features, hidden_sizes=(cfg.hidden,))
    return learner_lib.LearnerConfig(encoder=encoder, num_actions=num_actions, num_tasks=cfg.num_tasks,
                                     indicator=cfg.indicator, proportion=cfg.proportion, gamma=cfg.gamma,
                                     learning_rate=cfg.learning_rate, adam_eps=1.5e-4,
                                     threshold_learning_rate=1e-2, ema_decay=0.99,
                                     warmup_updates=cfg.warmup_updates)


def pretrain_features(cfg: StudyConfig, mdp: GridMDP, seeds: Sequence[int]):
    """PVN and random-encoder features ``[seeds, S, D]`` each, and the final TD loss ``[seeds]``."""
    s, a, _ = mdp.transitions.shape
    table = transition_table(mdp)
    learner = learner_lib.make_learner(learner_config(cfg, a))
    states = jnp.eye(s, dtype=jnp.float32)

    def one_seed(key):
        init_key, sample_key = jax.random.split(key)
        state = learner.init(init_key, states[:1])
        random_features = learner.features(state.params, states)  # the frozen random encoder: same init

        def body(st, k):
            idx = jax.random.randint(k, (cfg.batch_size,), 0, s * a)
            st, m = learner.update(st, jax.tree.map(lambda x: x[idx], table))
            return st, m

        state, metrics = jax.lax.scan(body, state, jax.random.split(sample_key, cfg.num_updates))
        return learner.features(state.params, states), random_features, metrics.td_loss[-100:].mean(), \
            jnp.mean(learner.indicators(state, states))

    keys = jnp.stack([jax.random.PRNGKey(int(seed)) for seed in seeds])
    return jax.jit(jax.vmap(one_seed))(keys)


def value_error(features: np.ndarray, values: np.ndarray) -> float:
    """Mean over columns of ‖Φw + b − V‖² / ‖V − mean V‖² at the least-squares (w, b)."""
    x = np.concatenate([features, np.ones((features.shape[0], 1))], axis=1)
    w, *_ = np.linalg.lstsq(x, values, rcond=None)
    resid = ((x @ w - values) ** 2).sum(0)
    return float(np.mean(resid / ((values - values.mean(0)) ** 2).sum(0)))


def subspace_alignment(features: np.ndarray, psi: np.ndarray, *,
                       psi_left: np.ndarray | None = None) -> tuple[float, float]:
    """(mean cos², largest angle in degrees) between span Φ and Ψ's top-rank(Φ) left singular subspace."""
    rank = int(np.linalg.matrix_rank(features))
    if rank == 0:
        return 0.0, 90.0
    u = (np.linalg.svd(psi)[0] if psi_left is None else psi_left)[:, :rank]
    angles = np.asarray(pvn.principal_angles(jnp.asarray(features, jnp.float32), jnp.asarray(u, jnp.float32)))
    angles = angles[np.isfinite(angles)]
    return float(np.mean(np.cos(angles) ** 2)), float(np.degrees(angles.max()))


def evaluate(features: np.ndarray, psi: np.ndarray, rewards: np.ndarray, *, psi_left: np.ndarray | None = None) -> dict:
    """Value error of Ψ r, alignment with Ψ's top subspace, rank (``psi_left``: Ψ's left singular vectors, if known)."""
    values = psi @ rewards
    cos2, worst = subspace_alignment(features, psi, psi_left=psi_left)
    return {"value_error": value_error(features, values), "rank": int(np.linalg.matrix_rank(features)),
            "mean_cos2": cos2, "max_angle_deg": worst}


def oracle(psi: np.ndarray, rewards: np.ndarray, dim: int, *, psi_left: np.ndarray | None = None) -> float:
    """Value error of the top-``dim`` left singular vectors of Ψ (the best D-dimensional linear features)."""
    left = np.linalg.svd(psi)[0] if psi_left is None else psi_left
    return value_error(left[:, :dim], psi @ rewards)
