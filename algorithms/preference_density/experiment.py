"""Every evidence item of the paper at toy scale, with one command.

    python -m algorithms.preference_density.experiment cpu [--items ...] [--seed 0]

Runs :mod:`algorithms.preference_density.train` in-process once per (item, setting) under
``<out_dir>/<item>/<setting>`` (a finished run, one with ``summary.json``, is reused; an
interrupted one resumes from its checkpoint) and writes ``<results_dir>/evidence.md``
(the table, first line the command), ``evidence.json`` and one PNG per item:

* ``bt_support``: Bradley–Terry on Luce preferences from a proposal on [−3, 3] recovers p*
  on the proposal's support (and only there).
* ``dpo_luce``: DPO on Luce preferences converges to π_pre·p*^(1/β), β ∈ {1, 4, 16}.
* ``dpo_on_dpo``: DPO on preferences of a DPO-style annotator (PBDE f = β, g = −β log π_pre)
  recovers p*.
* ``geometric``: the geometric-averaging PBDE converges to π_pre^(1−α)·p*^α, α ∈ {¼, ½, ¾}.
* ``ipo_slic``: IPO and SLiC-HF on the same Luce data (not likelihoods: no density theory).
* ``misspecification``: two annotators (truncated normals at ∓2.5, weights 0.4 / 0.6); a
  single reward model captures neither, the K = 2 mixture model recovers both without ids.
* ``sequences``: GRU language models; BT adaptation (r = log π) on a density-mixture vs an
  annotator-mixture dataset of the short/long annotators, compared by length histograms.
* ``bt_2d``: Bradley–Terry on a 2-D grid.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import time

import numpy as np

from core import cli

from algorithms.preference_density import train

HERE = os.path.dirname(os.path.abspath(__file__))
ITEMS = ("bt_support", "dpo_luce", "dpo_on_dpo", "geometric", "ipo_slic", "misspecification", "sequences", "bt_2d")


@dataclasses.dataclass(frozen=True)
class Config:
    """The evidence of the README (every field is a CLI flag)."""

    base: str = "cpu"
    """Preset of train.py whose settings every grid run starts from (sequence runs use ``<base>`` → sequences)."""
    items: tuple[str, ...] = ITEMS
    """Evidence items to run (see the module docstring)."""
    seed: int = 0
    """Seed of every run."""
    out_dir: str = "runs/preference_density_experiment"
    """Root of the runs (one directory per item and setting)."""
    results_dir: str = os.path.relpath(os.path.join(HERE, "results"))
    """Where the table, JSON and figures go."""
    progress: bool = False
    """Progress bars of the runs."""

    def validate(self) -> None:
        cli.require(self.base in ("smoke", "cpu", "paper"), "base", f"choose smoke, cpu or paper, not {self.base!r}")
        bad = [i for i in self.items if i not in ITEMS]
        cli.require(not bad and len(self.items) > 0, "items", f"unknown {bad}; choose from {ITEMS}")


PRESETS = {
    "smoke": ("Every item on train.py's smoke settings (seconds per run; tests and plumbing only).",
              Config(base="smoke", out_dir="runs/preference_density_experiment_smoke",
                     results_dir="runs/preference_density_experiment_smoke/results")),
    "cpu": ("Every item on train.py's cpu settings: the README's table and figures.", Config()),
    "paper": ("Every item on train.py's paper settings (10× the pairs, longer training).",
              Config(base="paper", out_dir="runs/preference_density_experiment_paper",
                     results_dir="runs/preference_density_experiment_paper/results")),
}


def settings(item: str, base: str) -> dict:
    """{setting name: train.py overrides} of one item."""
    if item == "bt_support":
        return {"bt": dict(loss="bt", proposal="inner")}
    if item == "dpo_luce":
        return {f"beta{b:g}": dict(loss="dpo", beta=b) for b in (1.0, 4.0, 16.0)}
    if item == "dpo_on_dpo":
        return {f"beta{b:g}": dict(loss="dpo", annotator="dpo", beta=b) for b in (1.0, 4.0)}
    if item == "geometric":
        return {f"alpha{a:g}": dict(loss="geometric", alpha=a) for a in (0.25, 0.5, 0.75)}
    if item == "ipo_slic":
        return {"ipo": dict(loss="ipo", tau=0.1), "slic": dict(loss="slic", delta=1.0)}
    if item == "misspecification":
        return {"single_bt": dict(loss="bt", annotator="population"),
                "mixture": dict(loss="mixture", annotator="population", num_components=2)}
    if item == "sequences":
        return {"density_mixture": dict(annotator="density_mixture"), "annotator_mixture": dict(annotator="population")}
    if item == "bt_2d":
        return {"bt": dict(loss="bt", dims=2, grid_size=48, target_means=(-1.5, -1.0, 1.5, 1.5),
                           target_stds=(0.8, 1.0), target_weights=(0.4, 0.6), proposal="inner")}
    raise ValueError(item)


def run_config(cfg: Config, item: str, overrides: dict, name: str) -> train.Config:
    preset = {"smoke": "sequences_smoke", "cpu": "sequences", "paper": "sequences"}[cfg.base] \
        if item == "sequences" else cfg.base
    base = train.PRESETS[preset][1]
    return dataclasses.replace(base, **overrides, seed=cfg.seed, progress=cfg.progress,
                               out_dir=os.path.join(cfg.out_dir, item, name))


def run_item(cfg: Config, item: str) -> dict:
    """Trains (or reuses) every setting of ``item``; returns {setting: (config, summary, arrays)}."""
    out = {}
    for name, overrides in settings(item, cfg.base).items():
        run_cfg = run_config(cfg, item, overrides, name)
        path = os.path.join(run_cfg.out_dir, "summary.json")
        if os.path.exists(path):
            with open(path) as f:
                summary = json.load(f)
            summary["reused"] = True
        else:
            print(f"[{item}/{name}]", flush=True)
            summary = train.main(run_cfg, preset=f"experiment:{cfg.base}")
        arrays = dict(np.load(os.path.join(run_cfg.out_dir, "densities.npz")))
        out[name] = (run_cfg, summary, arrays)
    return out


def _dens(log_p, vol):
    return np.exp(log_p) / vol


def figure(item: str, runs: dict, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs)
    if item == "bt_2d":
        run_cfg, _, got = runs[names[0]]
        side = run_cfg.grid_size
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), dpi=120)
        box = (run_cfg.grid_low, run_cfg.grid_high) * 2
        w = run_cfg.inner_half_width
        on = np.where(got["support"], np.exp(got["model"][0]), 0.0)
        shown = (("model, renormalised on the proposal's support", on / on.sum()),
                 ("theory: p* on the support", np.exp(got["theory"])))
        for ax, (title, p) in zip(axes, shown):
            ax.imshow(p.reshape(side, side).T, origin="lower", extent=box, cmap="viridis")
            ax.plot([-w, w, w, -w, -w], [-w, -w, w, w, -w], "w--", lw=1)
            ax.set_title(title, fontsize=9)
        fig.suptitle("Bradley–Terry on Luce preferences, 2-D grid (dashed: proposal support)", fontsize=10)
    else:
        fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), dpi=120, squeeze=False)
        for ax, name in zip(axes[0], names):
            run_cfg, summary, got = runs[name]
            if item == "sequences":
                n = np.arange(run_cfg.max_length + 1)
                for label, h, style in zip(("π_pre", "short", "long", "density mixture"), got["reference_lengths"],
                                           (":", "--", "--", "-")):
                    ax.plot(n, h, style, marker=".", label=label)
                ax.bar(n, got["model_lengths"], color="k", alpha=0.35, label="adapted")
                ax.set_xlabel("length")
                ax.set_title(f"{name.replace('_', ' ')} dataset\nlength TV to density mixture "
                             f"{summary['final']['length_tv_to_density_mixture']:.3f}", fontsize=9)
            else:
                x, vol = got["points"][:, 0], float(got["cell_volume"])
                if not got["support"].all():
                    ax.axvspan(-run_cfg.inner_half_width, run_cfg.inner_half_width, color="0.93", label="support")
                if "annotators" in got:
                    for i, a in enumerate(got["annotators"]):
                        ax.plot(x, _dens(a, vol), "--", label=f"annotator {i} (w={run_cfg.annotator_weights[i]})")
                else:
                    ax.plot(x, _dens(got["p_star"], vol), "--", label="p*")
                if run_cfg.needs_pretraining:
                    ax.plot(x, _dens(got["pre"], vol), ":", label="π_pre")
                if "theory" in got:
                    ax.plot(x, _dens(got["theory"], vol), "k-", lw=3, alpha=0.25, label="theory")
                for k, m in enumerate(got["model"]):
                    w = f" w={got['weights'][k]:.2f}" if run_cfg.loss == "mixture" else ""
                    ax.plot(x, _dens(m, vol), label=f"model{w}")
                head = summary["headline"]
                ax.set_title(f"{train.run_title(run_cfg).split(' (')[0]}\n{head['name']} = {head['value']:.3f}",
                             fontsize=8)
                ax.set_xlabel("x")
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


ROW_METRICS = {
    "bt_support": ("tv_to_theory", "tv_to_p_star"),
    "dpo_luce": ("tv_to_theory", "tv_pre_to_theory", "tv_to_p_star"),
    "dpo_on_dpo": ("tv_to_theory", "tv_pre_to_theory"),
    "geometric": ("tv_to_theory", "tv_pre_to_theory", "tv_to_p_star"),
    "ipo_slic": ("tv_to_p_star",),
    "misspecification": ("tv_to_nearest_annotator", "tv_to_density_mixture", "tv_component_0", "tv_component_1",
                         "weight_component_0", "weight_component_1"),
    "sequences": ("length_tv_to_density_mixture", "length_tv_to_short", "length_tv_to_long", "mean_length",
                  "mixture_mean_length"),
    "bt_2d": ("tv_to_theory", "tv_to_p_star"),
}


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Runs the items and writes the table, JSON and figures."""
    cfg.validate()
    start = time.perf_counter()
    os.makedirs(cfg.results_dir, exist_ok=True)
    cli.prepare_out_dir(cfg.out_dir, cfg, resumable=False)
    invoked = sys.argv[1:] if sys.argv and sys.argv[0].endswith("experiment.py") else [preset]
    command = "python -m algorithms.preference_density.experiment " + shlex.join(invoked)
    rows, figures = [], {}
    for item in cfg.items:
        runs = run_item(cfg, item)
        figures[item] = figure(item, runs, os.path.join(cfg.results_dir, f"{item}.png"))
        for name, (run_cfg, summary, _) in runs.items():
            final = summary["final"]
            rows.append({"item": item, "setting": name, "headline": summary["headline"]["name"],
                         "value": summary["headline"]["value"], "wall_s": summary["wall_s"],
                         "reused": bool(summary.get("reused")),
                         **{k: final.get(k) for k in ROW_METRICS[item]}})
    theory = [r["value"] for r in rows if r["headline"] in ("tv_to_theory", "tv_per_component_mean")]
    wall = time.perf_counter() - start
    lines = [f"`{command}`", "",
             f"seed {cfg.seed}; base preset `{cfg.base}`; {len(rows)} runs, summed run wall time "
             f"{sum(r['wall_s'] for r in rows):.0f} s (each includes its compilation; {sum(r['reused'] for r in rows)} "
             f"runs reused from {cfg.out_dir}); this command {wall:.0f} s.", "",
             "| item | setting | headline | value | other metrics | run wall (s) |", "|---|---|---|---|---|---|"]
    for r in rows:
        other = ", ".join(f"{k} {r[k]:.3f}" for k in ROW_METRICS[r["item"]] if k != r["headline"] and r.get(k) is not None)
        lines.append(f"| {r['item']} | {r['setting']} | {r['headline']} | {r['value']:.4f} | {other} | {r['wall_s']:.0f} |")
    lines += ["", "Figures: " + ", ".join(f"`{os.path.basename(p)}`" for p in figures.values())]
    with open(os.path.join(cfg.results_dir, "evidence.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(os.path.join(cfg.results_dir, "evidence.json"), {"command": command, "rows": rows,
                                                                      "wall_s": round(wall, 1)})
    out = cli.summary(algorithm="preference_density_experiment", preset=preset, cfg=cfg,
                      headline_name="max_tv_to_theory", headline_value=max(theory) if theory else None,
                      env_steps=None, wall_s=wall, compile_s=None, sps_steady=None, extra={"rows": rows})
    cli.write_json(os.path.join(cfg.out_dir, "summary.json"), out)
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.preference_density.experiment")
