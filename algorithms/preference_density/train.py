"""One run of learning from pairwise preferences, read as density estimation.

Paper: Dumoulin, Johnson, Castro, Larochelle & Dauphin 2024, "A density estimation
perspective on learning from pairwise human preferences", TMLR, arXiv 2311.14115.

A run has two stages. Pretraining (when the loss or the annotator needs a base density
π_pre, and always for sequences) fits π_pre by maximum likelihood on samples of a
pretraining distribution (for sequences, also the "short" and "long" annotator language
models). Then a finite dataset of ``num_pairs`` pairs is drawn from the proposal and
labelled by an annotator (``--annotator``: a Luce annotator of the implicit density p*, a
DPO-style PBDE annotator, a population of annotators, or Luce on the mixture density), and
the model is trained on it with ``--loss`` (Bradley–Terry with r = log π, DPO, the
geometric PBDE, IPO, SLiC-HF, or the well-specified mixture of K energies with learned
weights). Densities live on a grid (``--domain grid``, D = 1 or 2) with exact partition
functions, or are tiny GRU language models with an EOS token (``--domain sequences``).

The headline is a total variation: on grids between the learned density and the one the
theory predicts (``losses.pbde_optimum``: p* on the proposal's support for BT, π_pre·p*^(1/β)
for DPO, π_pre^(1−α)·p*^α for the geometric PBDE); for the mixture model the mean over
components matched to the annotators; for sequences between the learned model's length
histogram and the density mixture's.

Run:
    python -m algorithms.preference_density.train cpu --loss dpo --beta 4
Expected on 2 CPU cores (jax 0.10.2): TV to π_pre·p*^(1/4) ≈ 0.014 in ~130 s on the loaded
shared machine (README.md's table, made by ``python -m algorithms.preference_density.experiment cpu``).

Presets: ``smoke`` (tests, seconds), ``cpu`` (the README's runs), ``paper`` (larger data and
longer training), ``sequences_smoke`` / ``sequences`` (the language-model item).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import time
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from core import cli, metrics
from core.checkpoint import Checkpointer

from algorithms.preference_density import densities, losses, networks, preferences

DOMAINS = ("grid", "sequences")
LOSSES = ("bt", "dpo", "geometric", "ipo", "slic", "mixture")
ANNOTATORS = ("luce", "dpo", "population", "density_mixture")
PROPOSALS = ("uniform", "inner", "pretrained")
DATA_STREAM = 0xDA7A  # fold_in constants naming the PRNG streams of the run key
EVAL_STREAM = 0xE7A1
REFERENCE_STREAM = 0x8EF


@dataclasses.dataclass(frozen=True)
class Config:
    """One preference-learning run (every field is a CLI flag)."""

    domain: str = "grid"
    """"grid" (energy-based densities on a 1-D/2-D grid) or "sequences" (tiny GRU language models)."""
    dims: int = 1
    """Grid dimension D (1 or 2)."""
    loss: str = "bt"
    """bt (reward r = log π), dpo, geometric (PBDE π_pre^(1−α)·p*^α), ipo, slic, or mixture (K energies, learned weights)."""
    annotator: str = "luce"
    """luce (Luce rule on p*), dpo (PBDE f=β, g=−β log π_pre), population (annotators drawn per pair), density_mixture (Luce on Σ w_k p_k)."""
    proposal: str = "uniform"
    """Pairs are drawn from: uniform (whole grid), inner (uniform on [−inner_half_width, inner_half_width]^D), pretrained (π_pre)."""
    beta: float = 1.0
    """DPO's β (also the f of the DPO annotator)."""
    alpha: float = 0.5
    """The geometric PBDE's α: optimum π_pre^(1−α)·p*^α."""
    tau: float = 0.1
    """IPO's τ."""
    delta: float = 1.0
    """SLiC-HF's margin δ."""
    num_components: int = 2
    """K energies of the mixture model (loss=mixture)."""
    grid_low: float = -5.0
    """Lower end of the grid's box on every axis."""
    grid_high: float = 5.0
    """Upper end of the grid's box on every axis."""
    grid_size: int = 256
    """Grid points per axis (G = grid_size^D)."""
    inner_half_width: float = 3.0
    """Half width of the inner proposal's box."""
    target_means: tuple[float, ...] = (-1.5, 2.0)
    """Means of p*'s normal components, flattened [K·D]."""
    target_stds: tuple[float, ...] = (0.6, 0.9)
    """Standard deviations of p*'s components (K)."""
    target_weights: tuple[float, ...] = (0.4, 0.6)
    """Weights of p*'s components (K, summing to 1)."""
    pretrain_mean: float = 0.0
    """Mean (every axis) of the normal π_pre is pretrained on."""
    pretrain_std: float = 2.0
    """Standard deviation of the normal π_pre is pretrained on."""
    annotator_means: tuple[float, ...] = (-2.5, 2.5)
    """Grid population: each annotator's p_k is a truncated normal at this mean (flattened [K·D])."""
    annotator_std: float = 1.0
    """Grid population: standard deviation of every annotator's truncated normal."""
    annotator_weights: tuple[float, ...] = (0.4, 0.6)
    """Weights of the annotators in the population (and of the density mixture)."""
    vocab_size: int = 6
    """Sequences: vocabulary size V including EOS (token 0)."""
    max_length: int = 12
    """Sequences: at most L tokens before the EOS."""
    seq_hidden: int = 32
    """Sequences: GRU width."""
    short_length: float = 3.0
    """Sequences: mean length of the "short" annotator's sequences (a discretised normal over 1 … L)."""
    long_length: float = 9.0
    """Sequences: mean length of the "long" annotator's sequences."""
    length_std: float = 1.5
    """Sequences: standard deviation of both annotators' length distributions (π_pre's lengths are uniform)."""
    hidden: int = 64
    """Hidden units of the two layers of the energy MLP."""
    num_pairs: int = 50_000
    """N preference pairs in the (finite) dataset."""
    pretrain_steps: int = 1_000
    """Maximum-likelihood steps of pretraining (skipped when nothing needs π_pre)."""
    preference_steps: int = 3_000
    """Gradient steps on the preference dataset."""
    batch_size: int = 512
    """Pairs per preference step (and samples per pretraining step)."""
    learning_rate: float = 3e-3
    """Adam step size of pretraining."""
    preference_learning_rate: float = 3e-3
    """Adam step size of preference training."""
    eval_samples: int = 4_096
    """Sequences: samples whose length histogram is evaluated."""
    log_every: int = 250
    """Steps between metric records (divides pretrain_steps and preference_steps)."""
    checkpoint_every: int = 1_000
    """Steps between checkpoints (a multiple of log_every)."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk."""
    seed: int = 0
    """Seed of the run: initialisations, datasets and minibatches."""
    out_dir: str = "runs/preference_density"
    """Output directory (holding a checkpoint: the run resumes)."""
    progress: bool = True
    """Show a progress bar."""

    @property
    def needs_pretraining(self) -> bool:
        return (self.domain == "sequences" or self.loss in ("dpo", "geometric", "ipo") or self.annotator == "dpo"
                or self.proposal == "pretrained")

    @property
    def total_steps(self) -> int:
        return (self.pretrain_steps if self.needs_pretraining else 0) + self.preference_steps

    @property
    def num_outputs(self) -> int:
        return self.num_components if self.loss == "mixture" else 1

    @property
    def starts_from_pretrained(self) -> bool:
        return self.needs_pretraining and self.loss != "mixture"

    def validate(self) -> None:
        req = cli.require
        req(self.domain in DOMAINS, "domain", f"unknown {self.domain!r}; choose one of {DOMAINS}")
        req(self.loss in LOSSES, "loss", f"unknown {self.loss!r}; choose one of {LOSSES}")
        req(self.annotator in ANNOTATORS, "annotator", f"unknown {self.annotator!r}; choose one of {ANNOTATORS}")
        req(self.proposal in PROPOSALS, "proposal", f"unknown {self.proposal!r}; choose one of {PROPOSALS}")
        req(self.dims in (1, 2), "dims", f"must be 1 or 2, got {self.dims}")
        for name in ("beta", "tau", "delta", "annotator_std", "pretrain_std", "length_std", "learning_rate",
                     "preference_learning_rate"):
            req(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        req(0 < self.alpha <= 1, "alpha", f"must lie in (0, 1], got {self.alpha}")
        req(self.num_components >= 1, "num_components", f"must be >= 1, got {self.num_components}")
        req(self.grid_high > self.grid_low, "grid_high", "must exceed --grid-low")
        req(self.grid_size >= 4, "grid_size", f"must be >= 4, got {self.grid_size}")
        req(0 < self.inner_half_width, "inner_half_width", "must be positive")
        k = len(self.target_stds)
        req(k >= 1 and len(self.target_weights) == k, "target_weights", "needs one weight per --target-stds entry")
        req(len(self.target_means) == k * self.dims, "target_means",
            f"needs {k}·{self.dims} = {k * self.dims} numbers (K means of D coordinates), got {len(self.target_means)}")
        req(abs(sum(self.target_weights) - 1) < 1e-6 and min(self.target_weights) > 0, "target_weights",
            "must be positive and sum to 1")
        a = len(self.annotator_weights)
        req(a >= 1 and abs(sum(self.annotator_weights) - 1) < 1e-6 and min(self.annotator_weights) > 0,
            "annotator_weights", "must be positive and sum to 1")
        if self.domain == "grid" and self.annotator in ("population", "density_mixture"):
            req(len(self.annotator_means) == a * self.dims, "annotator_means",
                f"needs {a}·{self.dims} numbers (one D-dimensional mean per annotator weight)")
        if self.domain == "sequences":
            req(self.annotator in ("population", "density_mixture"), "annotator",
                "sequences are labelled by the short/long annotator models: population or density_mixture")
            req(self.loss in ("bt", "dpo", "geometric", "ipo", "slic"), "loss",
                "the mixture model is implemented on grids only")
            req(a == 2, "annotator_weights", "sequences have two annotators (short, long): give two weights")
            req(self.proposal == "pretrained", "proposal", "sequences are proposed by π_pre: use pretrained")
            req(self.vocab_size >= 2, "vocab_size", "needs EOS and at least one token")
            req(self.max_length >= 2, "max_length", "must be >= 2")
            req(self.eval_samples >= 1, "eval_samples", "must be positive")
        req(self.hidden >= 1 and self.seq_hidden >= 1, "hidden", "must be positive")
        req(self.num_pairs >= 1, "num_pairs", "must be positive")
        req(self.batch_size >= 1, "batch_size", "must be positive")
        req(self.preference_steps >= 1 and self.pretrain_steps >= 0, "preference_steps", "must be positive")
        req(self.log_every >= 1 and self.preference_steps % self.log_every == 0
            and (not self.needs_pretraining or self.pretrain_steps % self.log_every == 0), "log_every",
            "must divide --pretrain-steps and --preference-steps")
        req(self.checkpoint_every >= self.log_every and self.checkpoint_every % self.log_every == 0,
            "checkpoint_every", "must be a multiple of --log-every")
        req(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1")


_SMOKE = dict(num_pairs=4_000, pretrain_steps=100, preference_steps=200, grid_size=64, hidden=32, batch_size=256,
              log_every=100, checkpoint_every=100, keep_checkpoints=3, out_dir="runs/preference_density_smoke")
_SEQ = dict(domain="sequences", loss="bt", annotator="density_mixture", proposal="pretrained")

PRESETS = {
    "smoke": ("DPO (β = 4) on a 64-point grid, 100 pretraining + 200 preference steps: used by the tests.",
              Config(loss="dpo", beta=4.0, **_SMOKE)),
    "cpu": ("Bradley–Terry on Luce preferences, 256-point grid, 50k pairs, 3k steps (the README's settings; "
            "choose the item with --loss/--annotator/--proposal).", Config(out_dir="runs/preference_density_cpu")),
    "paper": ("The cpu preset with 10× the pairs and longer training (I could not verify the paper's toy scale; "
              "see README).", Config(num_pairs=500_000, pretrain_steps=5_000, preference_steps=20_000,
                                     batch_size=2_048, log_every=1_000, checkpoint_every=5_000,
                                     out_dir="runs/preference_density_paper")),
    "sequences_smoke": ("Tiny GRU language models, L = 4, 100 + 100 steps: used by the tests.",
                        Config(**_SEQ, max_length=4, vocab_size=3, seq_hidden=16, short_length=1.5, long_length=3.5,
                               length_std=0.7, num_pairs=2_000, pretrain_steps=100, preference_steps=100,
                               batch_size=128, eval_samples=512, log_every=50, checkpoint_every=100,
                               keep_checkpoints=3, out_dir="runs/preference_density_sequences_smoke")),
    "sequences": ("GRU language models (V = 6, L = 12): π_pre and the short/long annotators pretrained, then "
                  "BT (r = log π) on density-mixture preferences (--annotator population for the annotator mixture).",
                  Config(**_SEQ, num_pairs=20_000, pretrain_steps=1_500, preference_steps=1_500, batch_size=256,
                         log_every=250, checkpoint_every=750, preference_learning_rate=1e-3,
                         out_dir="runs/preference_density_sequences")),
}


class TrainState(NamedTuple):
    """Everything a run checkpoints."""

    pretrain_params: Any  # [M, ...] stacked pretrained models: π_pre (sequences: π_pre, short, long annotators)
    pretrain_opt: Any  # Adam state of the pretraining stage
    params: Any  # the adapted model: energy MLP with K outputs, or a GRU language model
    log_weights: jax.Array  # [K] float32: the mixture model's log weights (unused by other losses)
    opt_state: Any  # Adam state over (params, log_weights)
    step: jax.Array  # [] int32: steps done (pretraining steps, then preference steps)
    key: jax.Array  # [2] uint32: the run key; step keys are fold_in(key, step)


class Data(NamedTuple):
    """The preference dataset and the reference densities, rebuilt deterministically from the state."""

    prefs: preferences.Preferences  # [N] pairs of item indices (grid points or rows of ``tokens``)
    tokens: jax.Array  # [P, T] int32 proposal sequences ([1, 1] on grids)
    log_pre: jax.Array  # [G] π_pre on the grid (uniform when nothing was pretrained; [1] for sequences)
    log_q: jax.Array  # [G] the proposal on the grid ([1] for sequences)
    reference_lengths: jax.Array  # [4, L+1] length histograms of π_pre, short, long, density mixture ([1, 1] on grids)


class Trainer(NamedTuple):
    init: Any  # (key) -> TrainState
    pretrain_chunk: Any  # (state) -> (state, mean loss): log_every pretraining steps
    start_preferences: Any  # (state) -> state: the adapted model starts (idempotent)
    build_data: Any  # (state) -> Data
    preference_chunk: Any  # (state, data) -> (state, mean loss): log_every preference steps
    evaluate: Any  # (state, data) -> dict of metrics (host)
    arrays: Any  # (state, data) -> dict of numpy arrays for figures


def _points(flat: tuple, dims: int) -> np.ndarray:
    return np.asarray(flat, np.float32).reshape(-1, dims)


def length_log_probs(mean: float, std: float, max_length: int) -> jax.Array:
    """A discretised normal over lengths 1 … L (log probabilities over 0 … L; length 0 excluded)."""
    n = jnp.arange(max_length + 1, dtype=jnp.float32)
    logits = jnp.where(n >= 1, -0.5 * jnp.square((n - mean) / std), -jnp.inf)
    return densities.log_normalize(logits)


def sample_sequences(key: jax.Array, length_log_p: jax.Array, num: int, *, vocab_size: int) -> jax.Array:
    """Sequences with lengths from ``length_log_p`` [L+1] and uniform tokens 1 … V−1, EOS-padded to L+1."""
    key_n, key_t = jax.random.split(key)
    n = jax.random.categorical(key_n, length_log_p, shape=(num,))
    t = length_log_p.shape[0]
    tokens = jax.random.randint(key_t, (num, t), 1, vocab_size)
    return jnp.where(jnp.arange(t)[None, :] < n[:, None], tokens, networks.EOS).astype(jnp.int32)


def length_histogram(tokens: jax.Array, max_length: int) -> np.ndarray:
    counts = np.bincount(np.asarray(networks.lengths(tokens)), minlength=max_length + 1)
    return counts / counts.sum()


def model_pbde(name: str, cfg: Config, log_pre: jax.Array) -> Optional[tuple[float, jax.Array]]:
    """(f, g) of the PBDE a loss fits (None for IPO/SLiC, which are not likelihoods)."""
    zero = jnp.zeros_like(log_pre)
    return {"bt": (1.0, zero), "mixture": (1.0, zero), "dpo": (cfg.beta, -cfg.beta * log_pre),
            "geometric": (1.0 / cfg.alpha, -(1.0 - cfg.alpha) / cfg.alpha * log_pre)}.get(name)


def make_trainer(cfg: Config) -> Trainer:
    """The run's pure pieces; ``pretrain_chunk`` and ``preference_chunk`` are jitted ``lax.scan``s.

    Trainers are cached per configuration (apart from the fields they do not read: seed,
    out_dir, progress), so a resumed run in the same process reuses the compiled steps.
    """
    return _cached_trainer(dataclasses.replace(cfg, seed=0, out_dir="", progress=False))


@functools.lru_cache(maxsize=8)
def _cached_trainer(cfg: Config) -> Trainer:
    optimizer = optax.adam(cfg.learning_rate)
    preference_optimizer = optax.adam(cfg.preference_learning_rate)
    sequences = cfg.domain == "sequences"
    if sequences:
        model = networks.make_sequence_model(vocab_size=cfg.vocab_size, max_length=cfg.max_length,
                                             hidden=cfg.seq_hidden)
        num_pretrained = 3
        tables = jnp.stack([length_log_probs(0.0, 1.0, cfg.max_length).at[1:].set(-jnp.log(cfg.max_length)),
                            length_log_probs(cfg.short_length, cfg.length_std, cfg.max_length),
                            length_log_probs(cfg.long_length, cfg.length_std, cfg.max_length)])  # [3, L+1]
        grid = None
    else:
        grid = densities.make_grid(cfg.grid_low, cfg.grid_high, cfg.grid_size, dims=cfg.dims)
        scale = max(abs(cfg.grid_low), abs(cfg.grid_high))
        energy = networks.make_energy_network(hidden=cfg.hidden, num_outputs=cfg.num_outputs, input_scale=scale)
        energy_pre = networks.make_energy_network(hidden=cfg.hidden, num_outputs=1, input_scale=scale)
        num_pretrained = 1

        @jax.jit
        def grid_tables():
            pretrain = densities.truncated_normal_log_probs(grid, [cfg.pretrain_mean] * cfg.dims, cfg.pretrain_std)
            target = densities.gaussian_mixture_log_probs(grid, _points(cfg.target_means, cfg.dims),
                                                          cfg.target_stds, cfg.target_weights)
            annotators = jnp.stack([densities.truncated_normal_log_probs(grid, m, cfg.annotator_std)
                                    for m in _points(cfg.annotator_means, cfg.dims)])  # [A, G]
            if cfg.annotator == "density_mixture":
                target = densities.mixture_log_probs(annotators, jnp.asarray(cfg.annotator_weights, jnp.float32))
            inner = densities.box_mask(grid, -cfg.inner_half_width, cfg.inner_half_width)
            return pretrain[None], target, annotators, inner if cfg.proposal == "inner" else jnp.ones_like(inner)

        tables, log_p_star, annotator_log_ps, support = grid_tables()
        weights = jnp.asarray(cfg.annotator_weights, jnp.float32)

    # Model log probabilities -------------------------------------------------------------
    def grid_log_probs(params, net) -> jax.Array:  # [G, K], each column normalised over the grid
        return densities.log_normalize(net.apply(params, grid.points).T).T

    def pretrained_log_prob(params, items):  # π_pre at items (grid indices or token rows)
        if sequences:
            return model.log_prob(params, items)
        return grid_log_probs(params, energy_pre)[items, 0]

    # Pretraining ---------------------------------------------------------------------------
    def pretrain_loss(params, key, table):
        if sequences:
            tokens = sample_sequences(key, table, cfg.batch_size, vocab_size=cfg.vocab_size)
            return -jnp.mean(model.log_prob(params, tokens))
        x = jax.random.categorical(key, table, shape=(cfg.batch_size,))
        return -jnp.mean(grid_log_probs(params, energy_pre)[x, 0])

    def pretrain_step(state: TrainState, _):
        keys = jax.random.split(jax.random.fold_in(state.key, state.step), num_pretrained)
        loss_fn = lambda p: jnp.sum(jax.vmap(pretrain_loss)(p, keys, tables))
        loss, grads = jax.value_and_grad(loss_fn)(state.pretrain_params)
        updates, opt = optimizer.update(grads, state.pretrain_opt, state.pretrain_params)
        params = optax.apply_updates(state.pretrain_params, updates)
        return state._replace(pretrain_params=params, pretrain_opt=opt, step=state.step + 1), loss / num_pretrained

    @jax.jit
    def pretrain_chunk(state: TrainState):
        state, loss = jax.lax.scan(pretrain_step, state, None, length=cfg.log_every)
        return state, jnp.mean(loss)

    # Initialisation -------------------------------------------------------------------------
    def init(key: jax.Array) -> TrainState:
        key_pre, key_model, key_run = jax.random.split(key, 3)
        if sequences:
            pre = jax.vmap(model.init)(jax.random.split(key_pre, num_pretrained))
            params = model.init(key_model)
        else:
            pre = jax.vmap(lambda k: energy_pre.init(k, grid.points[:1]))(jax.random.split(key_pre, 1))
            params = energy.init(key_model, grid.points[:1])
        log_weights = jnp.zeros((cfg.num_outputs,), jnp.float32)
        return TrainState(pretrain_params=pre, pretrain_opt=optimizer.init(pre), params=params,
                          log_weights=log_weights, opt_state=preference_optimizer.init((params, log_weights)),
                          step=jnp.zeros((), jnp.int32), key=key_run)

    def start_preferences(state: TrainState) -> TrainState:
        params = state.params
        if cfg.starts_from_pretrained:
            params = jax.tree.map(lambda x: x[0], state.pretrain_params)
        return state._replace(params=params, opt_state=preference_optimizer.init((params, state.log_weights)))

    # The preference dataset ------------------------------------------------------------------
    def build_data(state: TrainState) -> Data:
        key = jax.random.fold_in(state.key, DATA_STREAM)
        pre = jax.tree.map(lambda x: x[0], state.pretrain_params)
        if sequences:
            key_tokens, key_labels, key_ref = jax.random.split(key, 3)
            tokens = jax.jit(model.sample, static_argnums=2)(pre, key_tokens, 2 * cfg.num_pairs)
            log_p = jax.jit(jax.vmap(model.log_prob, in_axes=(0, None)))(
                jax.tree.map(lambda x: x[1:], state.pretrain_params), tokens)  # [2, P]: short, long
            a, b = jnp.arange(cfg.num_pairs, dtype=jnp.int32), cfg.num_pairs + jnp.arange(cfg.num_pairs,
                                                                                          dtype=jnp.int32)
            w = jnp.asarray(cfg.annotator_weights, jnp.float32)
            if cfg.annotator == "population":
                prefs = preferences.annotate_population(key_labels, a, b, (log_p[:, a] - log_p[:, b]).T, w)
            else:
                mix = jax.nn.logsumexp(log_p + jnp.log(w)[:, None], axis=0)
                prefs = preferences.annotate(key_labels, a, b, preferences.luce_logit(mix[a], mix[b]))
            sampler = jax.jit(jax.vmap(model.sample, in_axes=(0, 0, None)), static_argnums=2)
            samples = sampler(state.pretrain_params, jax.random.split(key_ref, 3), cfg.eval_samples)
            hists = np.stack([length_histogram(s, cfg.max_length) for s in samples])
            hists = np.concatenate([hists, (w[0] * hists[1] + w[1] * hists[2])[None]])
            one = jnp.zeros((1,), jnp.float32)
            return Data(prefs, tokens, one, one, jnp.asarray(hists, jnp.float32))
        return grid_data(pre, key)

    @jax.jit
    def grid_data(pre, key) -> Data:
        log_pre = (grid_log_probs(pre, energy_pre)[:, 0] if cfg.needs_pretraining
                   else densities.uniform_log_probs(jnp.ones(grid.points.shape[0], bool)))
        log_q = {"uniform": densities.uniform_log_probs(jnp.ones(grid.points.shape[0], bool)),
                 "inner": densities.uniform_log_probs(support), "pretrained": log_pre}[cfg.proposal]
        if cfg.annotator == "population":
            prefs = preferences.population_dataset(key, log_q, annotator_log_ps, weights, cfg.num_pairs)
        elif cfg.annotator == "dpo":
            prefs = preferences.luce_dataset(key, log_q, log_p_star, cfg.num_pairs, g=-cfg.beta * log_pre, f=cfg.beta)
        else:
            prefs = preferences.luce_dataset(key, log_q, log_p_star, cfg.num_pairs)
        return Data(prefs, jnp.zeros((1, 1), jnp.int32), log_pre, log_q, jnp.zeros((1, 1), jnp.float32))

    # Preference training ---------------------------------------------------------------------
    def preference_loss(trainable, pre, batch: preferences.Preferences, tokens):
        params, log_weights = trainable
        y = batch.a_preferred
        if sequences:
            lp_a = model.log_prob(params, tokens[batch.item_a])[:, None]
            lp_b = model.log_prob(params, tokens[batch.item_b])[:, None]
        else:
            lp = grid_log_probs(params, energy)
            lp_a, lp_b = lp[batch.item_a], lp[batch.item_b]  # [B, K]
        if cfg.loss == "mixture":
            return jnp.mean(losses.mixture_preference_loss(lp_a, lp_b, log_weights, y))
        lp_a, lp_b = lp_a[:, 0], lp_b[:, 0]
        if cfg.loss in ("bt", "slic"):
            per_pair = (losses.bradley_terry_loss(lp_a, lp_b, y) if cfg.loss == "bt"
                        else losses.slic_loss(lp_a - lp_b, y, delta=cfg.delta))
            return jnp.mean(per_pair)
        items_a = tokens[batch.item_a] if sequences else batch.item_a
        items_b = tokens[batch.item_b] if sequences else batch.item_b
        pre_a = jax.lax.stop_gradient(pretrained_log_prob(pre, items_a))
        pre_b = jax.lax.stop_gradient(pretrained_log_prob(pre, items_b))
        if cfg.loss == "dpo":
            per_pair = losses.dpo_loss(lp_a, lp_b, pre_a, pre_b, y, beta=cfg.beta)
        elif cfg.loss == "geometric":
            per_pair = losses.geometric_pbde_loss(lp_a, lp_b, pre_a, pre_b, y, alpha=cfg.alpha)
        else:
            per_pair = losses.ipo_loss((lp_a - pre_a) - (lp_b - pre_b), y, tau=cfg.tau)
        return jnp.mean(per_pair)

    def preference_step(carry, _):
        state, data = carry
        key = jax.random.fold_in(state.key, state.step)
        idx = jax.random.randint(key, (cfg.batch_size,), 0, data.prefs.item_a.shape[0])
        batch = jax.tree.map(lambda x: x[idx], data.prefs)
        pre = jax.tree.map(lambda x: x[0], state.pretrain_params)
        trainable = (state.params, state.log_weights)
        loss, grads = jax.value_and_grad(preference_loss)(trainable, pre, batch, data.tokens)
        updates, opt = preference_optimizer.update(grads, state.opt_state, trainable)
        params, log_weights = optax.apply_updates(trainable, updates)
        state = state._replace(params=params, log_weights=log_weights, opt_state=opt, step=state.step + 1)
        return (state, data), loss

    @jax.jit
    def preference_chunk(state: TrainState, data: Data):
        (state, _), loss = jax.lax.scan(preference_step, (state, data), None, length=cfg.log_every)
        return state, jnp.mean(loss)

    # Evaluation ----------------------------------------------------------------------------------
    @jax.jit
    def grid_references(log_pre: jax.Array) -> dict:
        """The densities a grid run is compared with (on the grid)."""
        out = {"p_star": densities.restrict(log_p_star, support), "pre": log_pre}
        if cfg.annotator in ("luce", "dpo", "density_mixture"):
            annotator = (1.0, jnp.zeros_like(log_p_star)) if cfg.annotator != "dpo" else (cfg.beta, -cfg.beta * log_pre)
            fitted = model_pbde(cfg.loss, cfg, log_pre)
            if fitted is not None:
                out["theory"] = losses.pbde_optimum(log_p_star, f_annotator=annotator[0], g_annotator=annotator[1],
                                                    f_model=fitted[0], g_model=fitted[1], support=support)
        if cfg.annotator in ("population", "density_mixture"):
            out["annotators"] = annotator_log_ps
            out["density_mixture"] = densities.mixture_log_probs(annotator_log_ps, weights)
        return out

    @jax.jit
    def grid_model(params, log_weights) -> dict:
        return {"model": grid_log_probs(params, energy).T, "weights": jax.nn.softmax(log_weights)}

    def arrays(state: TrainState, data: Data) -> dict:
        if sequences:
            tokens = jax.jit(model.sample, static_argnums=2)(
                state.params, jax.random.fold_in(jax.random.fold_in(state.key, EVAL_STREAM), state.step),
                cfg.eval_samples)
            return {"model_lengths": length_histogram(tokens, cfg.max_length),
                    "reference_lengths": np.asarray(data.reference_lengths),
                    "reference_names": np.array(["pi_pre", "short", "long", "density_mixture"])}
        out = {**grid_references(data.log_pre), **grid_model(state.params, state.log_weights)}  # model: [K, G]
        out.update(points=grid.points, support=support, cell_volume=np.asarray(grid.cell_volume))
        return jax.tree.map(np.asarray, out)

    def tv(log_p, log_q, mask=None) -> float:
        """½ Σ |p − q| in numpy (restricted to and renormalised on ``mask``)."""
        p, q = np.exp(np.asarray(log_p, np.float64)), np.exp(np.asarray(log_q, np.float64))
        if mask is not None:
            p, q = np.where(mask, p, 0.0), np.where(mask, q, 0.0)
        return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())

    def evaluate(state: TrainState, data: Data) -> dict:
        got = arrays(state, data)
        if sequences:
            model_h, refs = got["model_lengths"], got["reference_lengths"]
            half_tv = lambda p, q: float(0.5 * np.abs(p - q).sum())
            lengths = np.arange(cfg.max_length + 1)
            return {"length_tv_to_density_mixture": half_tv(model_h, refs[3]),
                    "length_tv_to_short": half_tv(model_h, refs[1]), "length_tv_to_long": half_tv(model_h, refs[2]),
                    "length_tv_to_pi_pre": half_tv(model_h, refs[0]), "mean_length": float(model_h @ lengths),
                    "mixture_mean_length": float(refs[3] @ lengths)}
        model_log = got["model"]
        record = {"tv_to_p_star_on_support": tv(model_log[0], got["p_star"], got["support"]),
                  "tv_to_p_star": tv(model_log[0], log_p_star)}
        if "theory" in got:
            record["tv_to_theory"] = tv(model_log[0], got["theory"], got["support"])
            record["tv_pre_to_theory"] = tv(got["pre"], got["theory"], got["support"])
        if "annotators" in got:
            per = np.array([[tv(m, a) for a in got["annotators"]] for m in model_log])  # [K, A]
            if cfg.loss == "mixture":
                k, a = per.shape
                best = min(itertools.permutations(range(k), min(k, a)),
                           key=lambda perm: sum(per[perm[j], j] for j in range(len(perm))))
                for j, comp in enumerate(best):
                    record[f"tv_component_{j}"] = float(per[comp, j])
                    record[f"weight_component_{j}"] = float(got["weights"][comp])
                record["tv_per_component_mean"] = float(np.mean([per[c, j] for j, c in enumerate(best)]))
            else:
                record["tv_to_nearest_annotator"] = float(per[0].min())
                record["tv_to_density_mixture"] = tv(model_log[0], got["density_mixture"])
        return record

    return Trainer(init=jax.jit(init), pretrain_chunk=pretrain_chunk, start_preferences=start_preferences,
                   build_data=build_data, preference_chunk=preference_chunk, evaluate=evaluate, arrays=arrays)


def headline_name(cfg: Config) -> str:
    """The run's main metric (a total variation; lower is better)."""
    if cfg.domain == "sequences":
        return "length_tv_to_density_mixture"
    if cfg.annotator == "population":
        return "tv_per_component_mean" if cfg.loss == "mixture" else "tv_to_nearest_annotator"
    if cfg.loss in ("ipo", "slic"):
        return "tv_to_p_star_on_support"
    return "tv_to_theory"


def plot(cfg: Config, got: dict, path: str, title: str) -> str:
    """The final densities (grid) or length histograms (sequences) of a run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if cfg.domain == "sequences":
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
        n = np.arange(cfg.max_length + 1)
        for name, h, style in zip(got["reference_names"], got["reference_lengths"], (":", "--", "--", "-")):
            ax.plot(n, h, style, marker=".", label=str(name))
        ax.bar(n, got["model_lengths"], alpha=0.35, color="k", label="adapted model")
        ax.set_xlabel("sequence length (tokens before EOS)")
        ax.set_ylabel("probability")
    elif cfg.dims == 2:
        side = cfg.grid_size
        shown = [("model", got["model"][0])] + [(k, got[k]) for k in ("theory", "p_star") if k in got][:1]
        fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.6), dpi=120)
        for ax, (name, log_p) in zip(np.atleast_1d(axes), shown):
            ax.imshow(np.exp(log_p).reshape(side, side).T, origin="lower", cmap="viridis",
                      extent=(cfg.grid_low, cfg.grid_high, cfg.grid_low, cfg.grid_high))
            ax.set_title(name)
    else:
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
        x, vol = got["points"][:, 0], float(got["cell_volume"])
        dens = lambda lp: np.exp(lp) / vol
        if not got["support"].all():
            ax.axvspan(-cfg.inner_half_width, cfg.inner_half_width, color="0.92", label="proposal support")
        if "annotators" in got:
            for i, a in enumerate(got["annotators"]):
                ax.plot(x, dens(a), "--", label=f"annotator {i} (w={cfg.annotator_weights[i]})")
        else:
            ax.plot(x, dens(got["p_star"]), "--", label="p* (on support)")
        if cfg.needs_pretraining:
            ax.plot(x, dens(got["pre"]), ":", label="π_pre")
        if "theory" in got:
            ax.plot(x, dens(got["theory"]), "k-", lw=2.5, alpha=0.3, label="theory")
        for k, m in enumerate(got["model"]):
            suffix = f" {k} (w={got['weights'][k]:.2f})" if cfg.loss == "mixture" else ""
            ax.plot(x, dens(m), label=f"model{suffix}")
        if not got["support"].all():
            on = np.exp(np.where(got["support"], got["model"][0], -np.inf))
            ax.plot(x, on / on.sum() / vol, "C1--", lw=1, label="model renormalised on support")
        ax.set_xlabel("x")
        ax.set_ylabel("density")
    fig.suptitle(title, fontsize=9)
    if cfg.domain == "sequences" or cfg.dims == 1:
        fig.axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_title(cfg: Config) -> str:
    extra = {"dpo": f" β={cfg.beta:g}", "geometric": f" α={cfg.alpha:g}", "ipo": f" τ={cfg.tau:g}",
             "slic": f" δ={cfg.delta:g}", "mixture": f" K={cfg.num_components}"}.get(cfg.loss, "")
    return f"{cfg.loss}{extra} on {cfg.annotator} preferences ({cfg.domain}, proposal {cfg.proposal}, seed {cfg.seed})"


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one run and writes every output of the CLI contract."""
    cfg.validate()
    start_wall = time.perf_counter()
    checkpointer = Checkpointer(os.path.join(cfg.out_dir, "checkpoints"), max_to_keep=cfg.keep_checkpoints)
    resuming = checkpointer.latest_step() is not None
    cli.prepare_out_dir(cfg.out_dir, cfg, resumable=resuming)
    trainer = make_trainer(cfg)
    state = trainer.init(jax.random.PRNGKey(cfg.seed))
    columns = ("step", "stage", "loss", headline_name(cfg), "steps_per_s", "wall_s")
    writer = metrics.MetricsWriter(cfg.out_dir, columns, step_key="step")
    if resuming:
        step = checkpointer.latest_step()
        state = checkpointer.restore(step, state)
        writer.truncate(step)
        print(f"resuming {cfg.out_dir} from its checkpoint at step {step}")
    else:
        writer.reset()
    pretrain_end = cfg.total_steps - cfg.preference_steps
    step = int(state.step)
    bar = metrics.progress_bar(cfg.total_steps, initial=step, desc=cfg.loss, disable=not cfg.progress)
    compile_s, steady_s, steady_steps, data, record = 0.0, 0.0, 0, None, {}
    seen = set()
    try:
        while step < cfg.total_steps:
            stage = "pretrain" if step < pretrain_end else "preferences"
            if stage == "preferences" and data is None:
                state = trainer.start_preferences(state) if step == pretrain_end else state
                data = trainer.build_data(state)
            chunk_start = time.perf_counter()
            if stage == "pretrain":
                state, loss = trainer.pretrain_chunk(state)
            else:
                state, loss = trainer.preference_chunk(state, data)
            loss = float(jax.block_until_ready(loss))
            chunk_s = time.perf_counter() - chunk_start
            if stage in seen:
                steady_s, steady_steps = steady_s + chunk_s, steady_steps + cfg.log_every
            else:
                compile_s += chunk_s  # the first chunk of a stage includes its compilation
                seen.add(stage)
            step = int(state.step)
            record = {"step": step, "stage": stage, "loss": loss}
            if stage == "preferences":
                record.update(trainer.evaluate(state, data))
            record.update(steps_per_s=round(cfg.log_every / max(chunk_s, 1e-9), 1),
                          wall_s=round(time.perf_counter() - start_wall, 2))
            writer.write(record)
            bar.update(cfg.log_every)
            bar.set_postfix(loss=round(loss, 4), tv=record.get(headline_name(cfg)))
            if step % cfg.checkpoint_every == 0 or step >= cfg.total_steps:
                checkpointer.save(step, state)
    finally:
        bar.close()
        checkpointer.close()
    if data is None:  # resumed a finished run
        data = trainer.build_data(state)
        record = trainer.evaluate(state, data)
    got = trainer.arrays(state, data)
    np.savez(os.path.join(cfg.out_dir, "densities.npz"), **got)
    figure = plot(cfg, got, os.path.join(cfg.out_dir, "densities.png"), run_title(cfg))
    name = headline_name(cfg)
    metrics.plot_learning_curve(cfg.out_dir, os.path.join(cfg.out_dir, "learning_curve.png"), x="step", y=name,
                                title=run_title(cfg))
    final = {k: v for k, v in record.items() if k not in ("step", "stage", "steps_per_s", "wall_s")}
    out = cli.summary(algorithm=f"preference_density_{cfg.loss}", preset=preset, cfg=cfg, headline_name=name,
                      headline_value=final.get(name), env_steps=None, wall_s=time.perf_counter() - start_wall,
                      compile_s=compile_s, sps_steady=steady_steps / steady_s if steady_s else None,
                      extra={"steps": step, "final": final})
    cli.write_json(os.path.join(cfg.out_dir, "summary.json"), out)
    print(f"{name} = {final.get(name)} after {step} steps; figure: {figure}")
    return out


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.preference_density.train")
