"""Bisimulation vs MICo vs KSMe on random MDPs: computation time, iterations, value-bound gaps.

Paper: Castro, Kastner, Panangaden & Rowland 2023, "A Kernel Perspective on Behavioural
Metrics for Markov Decision Processes", TMLR, arXiv 2310.19804 (its random-MDP study).
Each MDP has S states and A actions, transitions P(·|s, a) ~ Dirichlet(α·1), rewards
R(s, a) ~ N(μ, σ²) clipped to [0, 1], and a Dirichlet(1) random policy π(·|s); under π it
becomes the chain (P^π, r^π) on which the three metrics are computed:

* π-bisimulation d = |Δr| + γ W1(d), fixed-point iteration with exact optimal transport
  (one linear program per pair of states per iteration; :func:`kernels.bisimulation_metric`);
* MICo U = |Δr| + γ P U Pᵀ and the KSMe kernel k = 1 − ½|Δr| + γ P k Pᵀ, each by
  fixed-point iteration to the same tolerance (:func:`kernels.iterate_to_tolerance`) and by
  the exact linear solve (:func:`kernels.mico_distance`, :func:`kernels.ksme_kernel`).

Per MDP it records wall times and iteration counts, and over the pairs x ≠ y the *gap*
between each metric's value-difference bound and the true |V^π(x) − V^π(y)|: d_bisim,
U (MICo) and √(d_KSMe/(1 − γ)) (KSMe; :func:`kernels.value_difference_bound`). Each gap
must be ≥ 0 (the run reports the smallest); smaller means a tighter bound. It also checks
d_KSMe = ΠU and the embedding's distortion.

Run:
    python -m algorithms.ksme.random_mdp cpu
Expected on 2 CPU cores (jax 0.10.2): 50 MDPs of 10 states and 4 actions in about
2 minutes, almost all of it bisimulation's linear programs; the table in README.md.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from core import cli, metrics
from core.checkpoint import Checkpointer

from algorithms.ksme import kernels

FIELDS = (
    "bisim_time_s", "bisim_iterations", "bisim_converged",
    "mico_time_s", "mico_iterations", "mico_solve_time_s",
    "ksme_time_s", "ksme_iterations", "ksme_solve_time_s",
    "bisim_gap_mean", "mico_gap_mean", "ksme_gap_mean",
    "bisim_gap_min", "mico_gap_min", "ksme_gap_min",
    "ksme_tightest_fraction", "ksme_reduced_mico_error", "embedding_distortion",
)
"""One row of results per MDP (in this order in the checkpoint and in metrics.jsonl)."""


@dataclasses.dataclass(frozen=True)
class Config:
    """The random-MDP study (every field is a CLI flag)."""

    num_mdps: int = 50
    """Random MDPs to generate and measure."""
    num_states: int = 10
    """S, states per MDP."""
    num_actions: int = 4
    """A, actions per MDP."""
    gamma: float = 0.9
    """Discount γ."""
    transition_concentration: float = 1.0
    """α of the Dirichlet(α·1) next-state distribution of every (s, a)."""
    reward_mean: float = 0.5
    """μ of the Gaussian rewards R(s, a) (clipped to [0, 1])."""
    reward_std: float = 0.3
    """σ of the Gaussian rewards R(s, a)."""
    tol: float = 1e-6
    """Fixed-point iterations stop once one application changes the metric by at most tol (sup norm)."""
    max_iterations: int = 10_000
    """Cap on fixed-point iterations."""
    seed: int = 0
    """Seed of the MDPs (MDP i is drawn from numpy's stream [seed, i], so a resumed run draws the same ones)."""
    out_dir: str = "runs/ksme_random_mdp"
    """Where config.json, metrics, the figure, checkpoints and summary.json go; a dir holding checkpoints resumes."""
    checkpoint_every: int = 10
    """MDPs between checkpoints."""
    progress: bool = True
    """Show a progress bar."""

    def validate(self) -> None:
        req = cli.require
        for name in ("num_mdps", "num_states", "num_actions", "max_iterations", "checkpoint_every"):
            req(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        req(self.num_states >= 2, "num_states", f"must be >= 2 (metrics compare pairs), got {self.num_states}")
        req(0.0 <= self.gamma < 1.0, "gamma", f"must lie in [0, 1), got {self.gamma}")
        req(self.transition_concentration > 0, "transition_concentration", "must be positive")
        req(0.0 <= self.reward_mean <= 1.0, "reward_mean", f"must lie in [0, 1], got {self.reward_mean}")
        req(self.reward_std >= 0, "reward_std", "must be >= 0")
        req(self.tol > 0, "tol", f"must be positive, got {self.tol}")


PRESETS = {
    "smoke": ("4 MDPs of 5 states and 2 actions: seconds, used by the tests.",
              Config(num_mdps=4, num_states=5, num_actions=2, checkpoint_every=2, out_dir="runs/ksme_random_mdp_smoke")),
    "cpu": ("50 MDPs of 10 states and 4 actions, γ = 0.9 (about 2 minutes on 2 CPU cores).", Config()),
    "paper": ("The paper's setting: 10 states, 4 actions, γ = 0.9, Dirichlet policies, clipped Gaussian rewards; "
              "100 MDPs.", Config(num_mdps=100, out_dir="runs/ksme_random_mdp_paper")),
}


def random_mdp(seed: int, index: int, *, num_states: int, num_actions: int, transition_concentration: float,
               reward_mean: float, reward_std: float):
    """MDP ``index`` of the study seeded ``seed``, under a random policy: ``(P^π [S, S], r^π [S])``, float64.

    P(·|s, a) ~ Dirichlet(α·1_S), R(s, a) = clip(N(μ, σ²), 0, 1), π(·|s) ~ Dirichlet(1_A);
    P^π(s'|s) = Σ_a π(a|s) P(s'|s, a), r^π(s) = Σ_a π(a|s) R(s, a) (in [0, 1]). Each
    (seed, index) has its own numpy stream, so a resumed run draws the same MDPs.
    """
    rng = np.random.default_rng([seed, index])
    P = rng.dirichlet(np.full(num_states, transition_concentration), size=(num_states, num_actions))  # [S, A, S]
    R = np.clip(rng.normal(reward_mean, reward_std, size=(num_states, num_actions)), 0.0, 1.0)
    pi = rng.dirichlet(np.ones(num_actions), size=num_states)  # [S, A]
    P_pi = np.einsum("sa,sat->st", pi, P)
    return P_pi / P_pi.sum(-1, keepdims=True), np.einsum("sa,sa->s", pi, R)


def _timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def make_measure(cfg: Config):
    """``measure(P, r) -> [len(FIELDS)]`` float64 row of one MDP (jitted pieces compiled on first use)."""
    gamma = cfg.gamma
    iterate = jax.jit(lambda P, c: kernels.iterate_to_tolerance(P, c, gamma=gamma, tol=cfg.tol,
                                                                max_iterations=cfg.max_iterations))
    mico_solve = jax.jit(lambda P, r: kernels.mico_distance(P, r, gamma=gamma))
    ksme_solve = jax.jit(lambda P, r: kernels.ksme_kernel(P, r, gamma=gamma))

    def measure(P: np.ndarray, r: np.ndarray) -> np.ndarray:
        with jax.enable_x64(True):
            Pj, rj = jnp.asarray(P), jnp.asarray(r)
            delta_r = kernels.reward_differences(rj)
            mico_it, mico_time = _timed(iterate, Pj, delta_r)
            ksme_it, ksme_time = _timed(iterate, Pj, 1.0 - 0.5 * delta_r)
            U, mico_solve_time = _timed(mico_solve, Pj, rj)
            k, ksme_solve_time = _timed(ksme_solve, Pj, rj)
            values = kernels.value_function(Pj, rj, gamma=gamma)
            value_difference = np.asarray(jnp.abs(values[:, None] - values[None, :]))
            ksme_bound = np.asarray(kernels.value_difference_bound(k, gamma=gamma))
            reduced_error = float(jnp.max(jnp.abs(kernels.ksme_distance(k) - kernels.reduced_mico(U))))
            distortion = float(kernels.embedding_distortion(kernels.kernel_embedding(k), kernels.ksme_distance(k)))
            U = np.asarray(U)
        start = time.perf_counter()
        bisim = kernels.bisimulation_metric(P, r, gamma=gamma, num_iterations=cfg.max_iterations, tol=cfg.tol)
        bisim_time = time.perf_counter() - start
        off = ~np.eye(len(r), dtype=bool)
        gaps = {name: (bound - value_difference)[off] for name, bound in
                (("bisim", bisim.distance), ("mico", U), ("ksme", ksme_bound))}
        tightest = (gaps["ksme"] <= gaps["mico"]) & (gaps["ksme"] <= gaps["bisim"])
        row = {
            "bisim_time_s": bisim_time, "bisim_iterations": bisim.num_iterations,
            "bisim_converged": float(bisim.converged),
            "mico_time_s": mico_time, "mico_iterations": int(mico_it.num_iterations),
            "mico_solve_time_s": mico_solve_time,
            "ksme_time_s": ksme_time, "ksme_iterations": int(ksme_it.num_iterations),
            "ksme_solve_time_s": ksme_solve_time,
            **{f"{n}_gap_mean": float(g.mean()) for n, g in gaps.items()},
            **{f"{n}_gap_min": float(g.min()) for n, g in gaps.items()},
            "ksme_tightest_fraction": float(tightest.mean()),
            "ksme_reduced_mico_error": reduced_error, "embedding_distortion": distortion,
        }
        return np.array([row[f] for f in FIELDS], np.float64)

    return measure


def summarize(rows: np.ndarray) -> dict:
    """Per field over the MDPs: mean, median, min, max."""
    return {f: {"mean": float(np.mean(c)), "median": float(np.median(c)), "min": float(np.min(c)),
                "max": float(np.max(c))} for f, c in zip(FIELDS, rows.T)}


def table(stats: dict, num_mdps: int, cfg: Config) -> str:
    """The README table: one row per metric."""
    lines = [f"{num_mdps} random MDPs, {cfg.num_states} states, {cfg.num_actions} actions, γ = {cfg.gamma}, "
             f"tolerance {cfg.tol:g}. Time and iterations: median [min, max] per MDP. Gap: bound − |V(x) − V(y)| "
             "over pairs x ≠ y, mean over MDPs of the per-MDP mean (and the smallest gap seen: ≥ 0 means the "
             "bound held everywhere).", "",
             "| metric | time to tolerance (ms) | iterations | exact solve (ms) | value bound | mean gap | min gap |",
             "|---|---:|---:|---:|---|---:|---:|"]
    bound = {"bisim": "d_bisim", "mico": "U", "ksme": "√(d_KSMe/(1 − γ))"}
    name = {"bisim": "π-bisimulation (W1 by LP)", "mico": "MICo", "ksme": "KSMe"}
    for m in ("bisim", "mico", "ksme"):
        t, it = stats[f"{m}_time_s"], stats[f"{m}_iterations"]
        solve = "—" if m == "bisim" else f"{1e3 * stats[f'{m}_solve_time_s']['median']:.3f}"
        lines.append(f"| {name[m]} | {1e3 * t['median']:.3g} [{1e3 * t['min']:.3g}, {1e3 * t['max']:.3g}] "
                     f"| {it['median']:.0f} [{it['min']:.0f}, {it['max']:.0f}] | {solve} | {bound[m]} "
                     f"| {stats[f'{m}_gap_mean']['mean']:.3f} | {stats[f'{m}_gap_min']['min']:.2e} |")
    lines += ["", f"KSMe's bound is the tightest of the three on {100 * stats['ksme_tightest_fraction']['mean']:.1f}% "
              f"of pairs; max |d_KSMe − ΠU| = {stats['ksme_reduced_mico_error']['max']:.1e}; "
              f"embedding distortion ≤ {stats['embedding_distortion']['max']:.1e}."]
    return "\n".join(lines)


def plot(rows: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    col = {f: rows[:, i] for i, f in enumerate(FIELDS)}
    names = ("bisim", "mico", "ksme")
    labels = ("bisimulation", "MICo", "KSMe")
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3), dpi=120, layout="constrained")
    axes[0].boxplot([1e3 * col[f"{m}_time_s"] for m in names], tick_labels=labels)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("ms per MDP (fixed-point iteration)")
    axes[1].boxplot([col[f"{m}_iterations"] for m in names], tick_labels=labels)
    axes[1].set_ylabel("iterations to tolerance")
    axes[2].boxplot([col[f"{m}_gap_mean"] for m in names], tick_labels=labels)
    axes[2].set_ylabel("mean bound − |V(x) − V(y)|")
    fig.suptitle(f"{rows.shape[0]} random MDPs: cost and tightness of the value-difference bounds", fontsize=10)
    fig.savefig(path)
    plt.close(fig)


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Measures (or resumes measuring) every MDP and writes every output of the CLI contract."""
    cfg.validate()
    start_wall = time.perf_counter()
    checkpointer = Checkpointer(os.path.join(cfg.out_dir, "checkpoints"), max_to_keep=2)
    resuming = checkpointer.latest_step() is not None
    cli.prepare_out_dir(cfg.out_dir, cfg, resumable=resuming)
    writer = metrics.MetricsWriter(cfg.out_dir, ("mdp",) + FIELDS, step_key="mdp")
    rows = np.zeros((cfg.num_mdps, len(FIELDS)), np.float64)
    done = 0
    if resuming:
        done = checkpointer.latest_step()
        rows = checkpointer.restore(done, {"rows": rows})["rows"]
        writer.truncate(done)
        print(f"resuming {cfg.out_dir} after {done} MDPs")
    else:
        writer.reset()
    measure = make_measure(cfg)
    compile_start = time.perf_counter()
    measure(*random_mdp(cfg.seed, cfg.num_mdps, num_states=cfg.num_states,
                        num_actions=cfg.num_actions, transition_concentration=cfg.transition_concentration,
                        reward_mean=cfg.reward_mean, reward_std=cfg.reward_std))  # warm-up: compile, not recorded
    compile_s = time.perf_counter() - compile_start
    bar = metrics.progress_bar(cfg.num_mdps, initial=done, desc="random MDPs", disable=not cfg.progress)
    loop_start = time.perf_counter()
    for i in range(done, cfg.num_mdps):
        P, r = random_mdp(cfg.seed, i, num_states=cfg.num_states, num_actions=cfg.num_actions,
                          transition_concentration=cfg.transition_concentration, reward_mean=cfg.reward_mean,
                          reward_std=cfg.reward_std)
        rows[i] = measure(P, r)
        writer.write({"mdp": i + 1, **dict(zip(FIELDS, rows[i]))})
        bar.update(1)
        if (i + 1) % cfg.checkpoint_every == 0 or i + 1 == cfg.num_mdps:
            checkpointer.save(i + 1, {"rows": rows})
    bar.close()
    checkpointer.close()
    measured = cfg.num_mdps - done
    stats = summarize(rows)
    text = table(stats, cfg.num_mdps, cfg)
    with open(os.path.join(cfg.out_dir, "table.md"), "w") as f:
        f.write(text + "\n")
    plot(rows, os.path.join(cfg.out_dir, "random_mdp.png"))
    speedup = stats["bisim_time_s"]["median"] / stats["ksme_time_s"]["median"]
    out = cli.summary(
        algorithm="ksme_random_mdp", preset=preset, cfg=cfg, headline_name="ksme_gap_mean",
        headline_value=stats["ksme_gap_mean"]["mean"], env_steps=None, wall_s=time.perf_counter() - start_wall,
        compile_s=compile_s, sps_steady=measured / max(time.perf_counter() - loop_start, 1e-9),
        extra={"num_mdps": cfg.num_mdps, "bisim_over_ksme_time": speedup, "stats": stats},
    )
    cli.write_json(os.path.join(cfg.out_dir, "summary.json"), out)
    print(text)
    print(f"table: {cfg.out_dir}/table.md  plot: {cfg.out_dir}/random_mdp.png  summary: {cfg.out_dir}/summary.json")
    return out


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.ksme.random_mdp")
