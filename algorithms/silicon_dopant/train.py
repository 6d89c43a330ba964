"""Si dopant in graphene: simulated STEM recordings → pipeline → learned transition model → control.

Paper: Schwarzer, Farebrother, Greaves, Cubuk, Agarwal, Courville, Bellemare, Kalinin,
Mordatch, Castro & Roccapriore 2023, "Learning and Controlling Silicon Dopant Transitions in
Graphene using Scanning Transmission Electron Microscopy", arXiv 2311.17894.

One run, top to bottom:

1. record: ``fields`` independent dopants, each under ``dwells_per_field`` random beam
   placements of ``dwell_s`` seconds (:mod:`simulator`, ground truth ``--rate-function``), one
   noisy STEM frame before and after every dwell (:mod:`imaging`);
2. pipeline: frames → atoms → alignment (drift) → symbolic states (three-fold only) →
   labelled transitions (no move / neighbour k), with atom-detection precision and recall;
3. learn: a bootstrapped ensemble of transition models (waiting-time likelihood +
   cross-entropy, symmetry augmentation), then its distillation into one model;
4. evaluate: the learned rate map against the truth (relative error, argmax distance) and
   goal-reaching episodes of the learned controller (distilled model's argmax placement)
   against beam-on-neighbour, random placement and the oracle (true argmax).

Run:
    python -m algorithms.silicon_dopant.train cpu --rate-function mixture0
Expected on 2 CPU cores (jax 0.10.2): about 40 s of CPU time (3 minutes of wall time on the
shared, heavily loaded machine), learned controller 100% success at ~6.5 s to goal against 88% at
~10.5 s for the beam on the neighbour; the table of README.md, made by
``python -m algorithms.silicon_dopant.experiment``.

Presets: ``smoke`` (tests, seconds), ``cpu`` (10k dwells, 5 members), ``paper`` (larger
network, ensemble and recording; see README for what is assumed).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from core import cli, metrics
from core.checkpoint import Checkpointer

from algorithms.silicon_dopant import control, imaging, lattice, networks, simulator
from algorithms.silicon_dopant import transition_model as tm

DATA_STREAM, DETECTION_STREAM, CONTROL_STREAM = 1, 2, 3  # numpy SeedSequence streams of one seed
BOOTSTRAP_STREAM, INIT_STREAM = 11, 12  # jax fold_in constants
CONTROLLERS = ("learned", "neighbour", "random", "oracle")


@dataclasses.dataclass(frozen=True)
class Config:
    """Simulated recording, pipeline, transition model and control evaluation (every field is a CLI flag)."""

    seed: int = 0
    """Seed of everything (recording, frames, bootstrap, initialisation, episodes)."""
    out_dir: str = "runs/silicon_dopant"
    """Output directory (config.json, metrics, figure, checkpoints, summary.json); resumes a run found there."""
    rate_function: str = "mixture0"
    """Ground truth f(u): inverse_square, gaussian or mixture<N> (random mixture N, optimum beyond the neighbour)."""
    fields: int = 50
    """Independent dopants recorded in parallel."""
    dwells_per_field: int = 200
    """Beam dwells per dopant (frames per dopant = dwells + 1)."""
    dwell_s: float = 1.0
    """Dwell time T of each recorded beam placement (s)."""
    beam_radius: float = 3.0
    """Recorded beam positions are uniform in the disc of this radius around the Si (Å)."""
    drift_step: float = 0.05
    """Std of the scan drift's random-walk step per frame (Å)."""
    drift_bound: float = 0.4
    """The drift is reflected at ± this bound (Å; alignment needs |drift| < d/2 = 0.71 Å)."""
    dose: float = 20.0
    """Expected counts at a carbon peak (the frames' noise level)."""
    defect_prob: float = 0.05
    """Probability that a frame shows a Si neighbour missing (to be filtered out)."""
    fov: float = 10.0
    """Side of the square field of view (Å), pixel 0.25 Å."""
    hidden: int = 64
    """Hidden units per layer of the transition network."""
    layers: int = 3
    """Hidden layers of the transition network."""
    ensemble_size: int = 5
    """Bootstrapped ensemble members."""
    train_steps: int = 4_000
    """Adam steps of the ensemble (a multiple of log_every)."""
    distill_steps: int = 2_000
    """Adam steps distilling the ensemble into one model (a multiple of log_every)."""
    batch_size: int = 256
    """Dwells per ensemble step (and 2× positions per distillation step)."""
    learning_rate: float = 3e-3
    """Adam learning rate (cosine-decayed to 10% over each phase)."""
    map_radius: float = 2.5
    """Rate maps are compared and maximised on the disc of this radius around the Si (Å)."""
    map_points: int = 81
    """Grid points per side of the square grid covering that disc."""
    episodes: int = 200
    """Goal-reaching episodes per controller."""
    goal_distance: float = 10.0
    """Goals are the sites nearest to points this far from the start (Å)."""
    control_dwell_s: float = 0.5
    """Dwell time of each control step (s)."""
    max_time_s: float = 15.0
    """Beam-time budget of an episode (s); success = goal reached within it."""
    detection_doses: Tuple[float, ...] = (3.0, 5.0, 10.0, 20.0)
    """Doses at which atom-detection precision and recall are measured."""
    detection_frames: int = 200
    """Frames per dose for the detection measurement."""
    log_every: int = 250
    """Optimisation steps per logged record (one jitted lax.scan)."""
    checkpoint_every: int = 1_000
    """Optimisation steps between checkpoints (a multiple of log_every)."""
    keep_checkpoints: int = 2
    """Checkpoints kept."""
    progress: bool = True
    """Show a progress bar."""

    @property
    def total_steps(self) -> int:
        return self.train_steps + self.distill_steps

    @property
    def imaging(self) -> imaging.ImagingConfig:
        return imaging.ImagingConfig(fov=self.fov, dose=self.dose, defect_prob=self.defect_prob)

    def validate(self) -> None:
        req = cli.require
        try:
            lattice.make_rate_fn(self.rate_function)
        except ValueError:
            req(False, "rate_function", f"unknown {self.rate_function!r}; choose one of "
                f"{list(lattice.RATE_FUNCTIONS)} (or mixture<N> for any N)")
        for name in ("fields", "dwells_per_field", "hidden", "layers", "ensemble_size", "batch_size", "map_points",
                     "episodes", "log_every", "checkpoint_every", "keep_checkpoints", "detection_frames"):
            req(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("dwell_s", "beam_radius", "dose", "fov", "learning_rate", "map_radius", "goal_distance",
                     "control_dwell_s", "max_time_s"):
            req(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        req(self.drift_step >= 0, "drift_step", "must be >= 0")
        req(0 <= self.drift_bound < 0.6, "drift_bound",
            f"must be in [0, 0.6) Å (alignment assumes |drift| < d/2), got {self.drift_bound}")
        req(0 <= self.defect_prob < 1, "defect_prob", "must be in [0, 1)")
        req(self.fov >= 6.0, "fov", f"must be >= 6 Å to show the Si and its neighbours, got {self.fov}")
        req(self.train_steps >= self.log_every and self.train_steps % self.log_every == 0, "train_steps",
            f"must be a positive multiple of log_every ({self.log_every}), got {self.train_steps}")
        req(self.distill_steps % self.log_every == 0, "distill_steps",
            f"must be a multiple of log_every ({self.log_every}), got {self.distill_steps}")
        req(self.checkpoint_every % self.log_every == 0, "checkpoint_every",
            f"must be a multiple of log_every ({self.log_every})")
        req(all(d > 0 for d in self.detection_doses), "detection_doses", "doses must be positive")


PRESETS = {
    "smoke": (
        "800 recorded dwells, 3 members of 32×2 units, 200 + 100 steps, 100 episodes: used by the tests.",
        Config(fields=20, dwells_per_field=40, hidden=32, layers=2, ensemble_size=3, train_steps=200,
               distill_steps=100, batch_size=128, log_every=100, checkpoint_every=100, map_points=41,
               episodes=100, detection_doses=(5.0, 20.0), detection_frames=20, out_dir="runs/silicon_dopant_smoke"),
    ),
    "cpu": (
        "10,000 recorded dwells (~2,200 swaps kept), 5 members of 64×3 units, 4k + 2k steps, 200 episodes.",
        Config(),
    ),
    "paper": (
        "A larger recording (100k dwells), 10 members of 256×3 units, 20k + 10k steps, 1,000 episodes "
        "(the paper's network sizes are assumed, see README).",
        Config(fields=500, hidden=256, ensemble_size=10, train_steps=20_000, distill_steps=10_000, batch_size=512,
               learning_rate=1e-3, episodes=1_000, map_points=121, detection_frames=1_000,
               checkpoint_every=5_000, out_dir="runs/silicon_dopant_paper"),
    ),
}


# -----------------------------------------------------------------------------------------
# 1-2. Recording and pipeline (numpy).
# -----------------------------------------------------------------------------------------


class Dataset(NamedTuple):
    """What the pipeline hands to the learner, with its bookkeeping."""

    transitions: imaging.Transitions
    stats: dict  # pipeline counts and the Si/drift accuracy on these frames


def _rng(cfg: Config, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, stream]))


def record_and_extract(cfg: Config) -> Dataset:
    """Simulates the recording, renders every frame, and runs the pipeline on the pixels."""
    rng = _rng(cfg, DATA_STREAM)
    rate_fn = lattice.make_rate_fn(cfg.rate_function)
    rec = simulator.collect(rng, rate_fn, steps=cfg.dwells_per_field, batch=cfg.fields, dwell_s=cfg.dwell_s,
                            beam_radius=cfg.beam_radius, drift_step=cfg.drift_step, drift_bound=cfg.drift_bound)
    frames_t = cfg.dwells_per_field + 1
    # Frame t is centred where the Si was before the previous dwell (the operator re-centres each frame).
    centre_sites = np.concatenate([rec.sites[:1], rec.sites[:-1]], 0)
    states = []
    chunk = max(1, 2_500 // cfg.fields)  # ≤ 2,500 frames at once keep the [B, M, H] spot tensors small
    for t0 in range(0, frames_t, chunk):
        sl = slice(t0, min(t0 + chunk, frames_t))
        n = (sl.stop - sl.start) * cfg.fields
        frames = imaging.render(rng, cfg.imaging, rec.sites[sl].reshape(n, 3),
                                lattice.site_position(centre_sites[sl].reshape(n, 3)), rec.drift[sl].reshape(n, 2))
        det = imaging.detect_atoms(cfg.imaging, frames.counts, frames.centre)
        states.append(imaging.extract_states(cfg.imaging, det, n))
    state = imaging.SymbolicState(*(np.concatenate(x).reshape(frames_t, cfg.fields, *x[0].shape[1:])
                                    for x in zip(*states)))
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    before = imaging.SymbolicState(*(flat(x[:-1]) for x in state))
    after = imaging.SymbolicState(*(flat(x[1:]) for x in state))
    transitions, stats = imaging.label_transitions(before, after, flat(rec.commanded), flat(rec.dwell_s))
    true_sites = flat(rec.sites)
    found = state.three_fold.reshape(-1)
    stats["si_site_accuracy"] = float(np.mean(np.all(flat(state.si_site) == true_sites, -1)[found]))
    stats["drift_error_A"] = float(np.mean(np.linalg.norm(flat(state.drift) - flat(rec.drift), axis=-1)))
    true_beam = lattice.canonical_beam(flat(rec.beams), flat(rec.sites[:-1]))
    keep = before.three_fold & after.three_fold
    same = np.all(before.si_site == after.si_site, -1)
    hit = np.all(lattice.neighbour_sites(before.si_site) == after.si_site[:, None, :], -1).any(-1)
    keep = keep & (same | hit)
    stats["beam_position_error_A"] = float(np.mean(np.linalg.norm(transitions.beam - true_beam[keep], axis=-1)))
    return Dataset(transitions, stats)


def detection_accuracy(cfg: Config) -> dict:
    """Precision/recall of atom positions on fresh frames at each of ``detection_doses``."""
    rng = _rng(cfg, DETECTION_STREAM)
    out = {}
    for dose in cfg.detection_doses:
        icfg = cfg.imaging._replace(dose=float(dose))
        n = cfg.detection_frames
        sites = lattice.nearest_site(rng.uniform(-20, 20, (n, 2)))
        drift = rng.uniform(-cfg.drift_bound, cfg.drift_bound, (n, 2))
        frames = imaging.render(rng, icfg, sites, lattice.site_position(sites), drift)
        det = imaging.detect_atoms(icfg, frames.counts, frames.centre)
        scores = imaging.detection_scores(frames, det, icfg)
        state = imaging.extract_states(icfg, det, n)
        scores["si_site_accuracy"] = float(np.mean(np.all(state.si_site == sites, -1)))
        scores["three_fold_rate"] = float(np.mean(state.three_fold))
        out[f"{dose:g}"] = scores
    return out


# -----------------------------------------------------------------------------------------
# 3. Transition model: ensemble training and distillation (JAX, one lax.scan per log step).
# -----------------------------------------------------------------------------------------


class TrainState(NamedTuple):
    """Everything the optimisation carries; the checkpoint."""

    ensemble: Any  # params stacked [E, ...]
    ensemble_opt: Any  # Adam state of the stacked params
    student: Any  # distilled model's params
    student_opt: Any
    key: jax.Array  # PRNG key
    step: jax.Array  # [] int32 optimisation steps done (ensemble steps, then distillation steps)


class Trainer(NamedTuple):
    init: Any  # (key) -> TrainState
    ensemble_chunk: Any  # (TrainState) -> (TrainState, mean loss)
    distill_chunk: Any  # (TrainState) -> (TrainState, mean loss)
    apply: Any  # (params, beam [B, 2]) -> TransitionOutput


def _optimizer(cfg: Config, steps: int) -> optax.GradientTransformation:
    schedule = optax.cosine_decay_schedule(cfg.learning_rate, max(steps, 1), alpha=0.1)
    return optax.adam(schedule)


def make_trainer(cfg: Config, data: imaging.Transitions) -> Trainer:
    """Builds the init and the two jitted phase chunks over the (device-resident) dataset."""
    net = networks.make_transition_network((cfg.hidden,) * cfg.layers)
    beam, label, dwell = (jnp.asarray(x) for x in data)
    num = beam.shape[0]
    ens_opt, stu_opt = _optimizer(cfg, cfg.train_steps), _optimizer(cfg, cfg.distill_steps)

    def init(key: jax.Array) -> TrainState:
        keys = jax.random.split(jax.random.fold_in(key, INIT_STREAM), cfg.ensemble_size + 1)
        dummy = jnp.zeros((1, 2))
        ensemble = jax.vmap(lambda k: net.init(k, dummy))(keys[:-1])
        student = net.init(keys[-1], dummy)
        return TrainState(ensemble, ens_opt.init(ensemble), student, stu_opt.init(student), key, jnp.int32(0))

    weights = jax.jit(tm.bootstrap_weights, static_argnums=(1, 2))(
        jax.random.fold_in(jax.random.PRNGKey(cfg.seed), BOOTSTRAP_STREAM), cfg.ensemble_size, num)  # [E, N]

    def ensemble_step(state: TrainState, _):
        key, idx_key, aug_key = jax.random.split(state.key, 3)
        idx = jax.random.randint(idx_key, (cfg.batch_size,), 0, num)
        b, y = tm.augment(aug_key, beam[idx], label[idx])
        loss, grads = jax.value_and_grad(tm.ensemble_loss, argnums=1)(net.apply, state.ensemble, weights[:, idx], b,
                                                                      y, dwell[idx])
        updates, opt = ens_opt.update(grads, state.ensemble_opt, state.ensemble)
        params = optax.apply_updates(state.ensemble, updates)
        return state._replace(ensemble=params, ensemble_opt=opt, key=key, step=state.step + 1), loss

    def distill_step(state: TrainState, _):
        key, pos_key = jax.random.split(state.key)
        r = cfg.beam_radius * jnp.sqrt(jax.random.uniform(pos_key, (2 * cfg.batch_size,)))
        a = jax.random.uniform(jax.random.fold_in(pos_key, 1), (2 * cfg.batch_size,), maxval=2 * jnp.pi)
        u = jnp.stack([r * jnp.cos(a), r * jnp.sin(a)], -1)
        teacher = tm.ensemble_rates(net.apply, state.ensemble, u)
        loss, grads = jax.value_and_grad(lambda p: tm.distillation_loss(net.apply(p, u), teacher))(state.student)
        updates, opt = stu_opt.update(grads, state.student_opt, state.student)
        params = optax.apply_updates(state.student, updates)
        return state._replace(student=params, student_opt=opt, key=key, step=state.step + 1), loss

    def chunk(step_fn, state):
        state, losses = jax.lax.scan(step_fn, state, None, length=cfg.log_every)
        return state, jnp.mean(losses)

    return Trainer(init, jax.jit(functools.partial(chunk, ensemble_step)),
                   jax.jit(functools.partial(chunk, distill_step)), net.apply)


# -----------------------------------------------------------------------------------------
# 4. Evaluation: rate maps and control.
# -----------------------------------------------------------------------------------------


def map_grid(cfg: Config) -> np.ndarray:
    """Canonical positions ``[G, 2]`` of the square grid inside the disc of ``map_radius``."""
    grid = lattice.rate_grid(cfg.map_radius, cfg.map_points).reshape(-1, 2)
    return grid[np.linalg.norm(grid, axis=-1) <= cfg.map_radius]


def evaluate(cfg: Config, trainer: Trainer, state: TrainState) -> dict:
    """Rate-map recovery (ensemble mean and distilled model) and goal-reaching episodes per controller."""
    rate_fn = lattice.make_rate_fn(cfg.rate_function)
    grid = map_grid(cfg)
    true_maps = lattice.neighbour_rates(rate_fn, grid)  # [G, 3]
    points = jnp.asarray(grid, jnp.float32)
    student = np.asarray(jax.jit(lambda p, u: tm.neighbour_rates(trainer.apply(p, u)))(state.student, points))
    members = np.asarray(jax.jit(lambda p, u: tm.ensemble_rates(trainer.apply, p, u))(state.ensemble, points))
    ensemble = members.mean(0)
    recovery = {"distilled": tm.rate_map_error(student[:, 0], true_maps[:, 0], grid),
                "ensemble": tm.rate_map_error(ensemble[:, 0], true_maps[:, 0], grid),
                "ensemble_std_at_argmax": float(members.std(0)[np.argmax(ensemble[:, 0]), 0])}
    placements = {"learned": control.argmax_placements(student, grid),
                  "neighbour": control.neighbour_placements(lattice.CANONICAL_NEIGHBOURS[0]),
                  "random": None,
                  "oracle": control.argmax_placements(true_maps, grid)}
    rng = _rng(cfg, CONTROL_STREAM)
    goals = control.sample_goals(rng, cfg.episodes, cfg.goal_distance)
    results = {}
    for name in CONTROLLERS:
        episode_rng = _rng(cfg, CONTROL_STREAM * 100 + CONTROLLERS.index(name))
        res = control.run_episodes(episode_rng, rate_fn, placements[name], goals, dwell_s=cfg.control_dwell_s,
                                   max_time_s=cfg.max_time_s)
        results[name] = control.summarize(res)
        if placements[name] is not None:
            results[name]["placement_neighbour0_A"] = np.asarray(placements[name][0]).round(3).tolist()
    swaps = [lattice.swap_distance((0, 0, 0), g) for g in goals]
    return {"rate_map": recovery, "control": results, "goal_swaps_mean": float(np.mean(swaps)),
            "maps": {"grid": grid, "true": true_maps[:, 0], "learned": student[:, 0]}}


def plot(cfg: Config, result: dict, out_path: str) -> None:
    """True vs learned rate map of neighbour 0, training loss, and the controllers' success and time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = result["maps"]
    grid = maps["grid"]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8), dpi=110)
    vmax = float(max(maps["true"].max(), maps["learned"].max()))
    for ax, key, title in ((axes[0], "true", "true λ₀ (1/s)"), (axes[1], "learned", "learned λ₀ (distilled)")):
        sc = ax.tricontourf(grid[:, 0], grid[:, 1], maps[key], levels=20, vmin=0, vmax=vmax, cmap="viridis")
        ax.scatter(*lattice.CANONICAL_NEIGHBOURS.T, c="white", s=30, edgecolors="k", label="C neighbours")
        ax.scatter([0], [0], c="orange", s=60, edgecolors="k", label="Si")
        i = int(np.argmax(maps[key]))
        ax.scatter(*grid[i], marker="x", c="red", s=60, label="argmax")
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x (Å, canonical)")
        fig.colorbar(sc, ax=ax, fraction=0.046)
    axes[0].legend(fontsize=7, loc="lower left")
    records = metrics.read_jsonl(os.path.join(cfg.out_dir, "metrics.jsonl"))
    for phase, style in (("ensemble", "-"), ("distill", "--")):
        pts = [(r["step"], r["loss"]) for r in records if r.get("phase") == phase]
        if pts:
            axes[2].plot(*zip(*pts), style, marker=".", label=phase)
    axes[2].set_xlabel("optimisation step")
    axes[2].set_ylabel("loss")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=8)
    axes[2].set_title("ensemble NLL / distillation loss", fontsize=10)
    names = list(result["control"])
    success = [result["control"][n]["success_rate"] for n in names]
    times = [result["control"][n]["mean_time_to_goal_s"] or 0.0 for n in names]
    x = np.arange(len(names))
    axes[3].bar(x - 0.2, success, 0.4, label="success rate")
    twin = axes[3].twinx()
    twin.bar(x + 0.2, times, 0.4, color="tab:orange", label="mean time to goal (s)")
    axes[3].set_xticks(x, names, fontsize=8)
    axes[3].set_ylim(0, 1.05)
    axes[3].set_ylabel("success rate")
    twin.set_ylabel("time to goal (s)")
    axes[3].set_title(f"{cfg.episodes} episodes, goal {cfg.goal_distance:g} Å, budget {cfg.max_time_s:g} s",
                      fontsize=10)
    fig.suptitle(f"Si dopant, ground truth {cfg.rate_function}", fontsize=11)
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Records, extracts, trains (or resumes), evaluates, and writes every output of the CLI contract."""
    start = time.time()
    ckpt_dir = os.path.join(cfg.out_dir, "checkpoints")
    cli.prepare_out_dir(cfg.out_dir, cfg, resumable=os.path.isdir(ckpt_dir))
    data = record_and_extract(cfg)
    if len(data.transitions.label) < cfg.batch_size:
        raise cli.ConfigError(f"--fields/--dwells-per-field: only {len(data.transitions.label)} transitions survived "
                              f"the pipeline, fewer than --batch-size {cfg.batch_size}; record more dwells")
    detection = detection_accuracy(cfg)
    trainer = make_trainer(cfg, data.transitions)
    state = trainer.init(jax.random.PRNGKey(cfg.seed))
    checkpointer = Checkpointer(ckpt_dir, max_to_keep=cfg.keep_checkpoints)
    writer = metrics.MetricsWriter(cfg.out_dir, ["step", "phase", "loss", "sps"], step_key="step")
    latest = checkpointer.latest_step()
    if latest is not None:
        state = checkpointer.restore(latest, state)
        writer.truncate(latest)
        print(f"resuming from checkpoint step {latest} in {ckpt_dir}", flush=True)
    else:
        writer.reset()
    step = int(state.step)
    compile_s, lowered = None, None
    if step < cfg.total_steps:  # a finished run only re-evaluates
        compile_start = time.time()
        lowered = [trainer.ensemble_chunk.lower(state).compile(), trainer.distill_chunk.lower(state).compile()]
        compile_s = time.time() - compile_start
    bar = metrics.progress_bar(cfg.total_steps, initial=step, desc=f"silicon_dopant {cfg.rate_function}",
                               disable=not cfg.progress)
    rates = []
    while step < cfg.total_steps:
        phase = "ensemble" if step < cfg.train_steps else "distill"
        t0 = time.time()
        state, loss = lowered[phase == "distill"](state)
        loss = float(loss)
        rates.append(cfg.log_every / (time.time() - t0))
        step += cfg.log_every
        writer.write({"step": step, "phase": phase, "loss": loss, "sps": rates[-1]})
        bar.update(cfg.log_every)
        bar.set_postfix(phase=phase, loss=f"{loss:.4f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.total_steps:
            checkpointer.save(step, state)
    bar.close()
    checkpointer.close()
    result = evaluate(cfg, trainer, state)
    plot(cfg, result, os.path.join(cfg.out_dir, "silicon_dopant.png"))
    np.savez(os.path.join(cfg.out_dir, "rate_map.npz"), **result["maps"])
    learned = result["control"]["learned"]
    out = cli.summary(
        algorithm="silicon_dopant", preset=preset, cfg=cfg, headline_name="learned_controller_success_rate",
        headline_value=learned["success_rate"], env_steps=None, wall_s=time.time() - start, compile_s=compile_s,
        sps_steady=float(np.median(rates[1:] if len(rates) > 1 else rates)) if rates else None,
        extra={"rate_function": cfg.rate_function, "pipeline": data.stats,
               "transitions": {"kept": int(len(data.transitions.label)),
                               "swaps": int(np.sum(data.transitions.label != tm.NO_MOVE))},
               "detection": detection, "rate_map": result["rate_map"], "control": result["control"],
               "goal_swaps_mean": result["goal_swaps_mean"]})
    cli.write_json(os.path.join(cfg.out_dir, "summary.json"), out)
    return out


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.silicon_dopant.train")
