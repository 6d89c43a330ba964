"""Sparse DQN script: the sparse agent's state, an in-process smoke run, the CLI contract."""
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.jaxpruner import train
from core import metrics
from core.types import EnvSpec

SMOKE = train.PRESETS["smoke"][1]
SPEC = EnvSpec(env_id="Breakout-MinAtar", observation_shape=(10, 10, 4), observation_dtype=jnp.float32, num_actions=3)


@pytest.mark.slow
def test_sparse_training_starts_sparse_with_masks_in_the_optimizer_state():
    cfg = dataclasses.replace(SMOKE, pruner="static_sparse", bit_packing=True)
    agent = train.make_agent(cfg, SPEC)
    state = agent.init(jax.random.PRNGKey(0))
    params, masks = state.train.params, state.train.opt_state.masks
    names = {k: v for k, v in params.items()}
    for module, layer in names.items():
        w, b = layer["w"], layer["b"]
        assert masks[module]["b"] is None and masks[module]["w"].dtype == jnp.uint8
        assert masks[module]["w"].size == -(-w.size // 8)  # bit-packed
    weights = np.concatenate([np.asarray(layer["w"]).reshape(-1) for layer in params.values()])
    np.testing.assert_allclose(np.mean(weights == 0), 0.98, atol=2e-3)  # ERK keeps the total budget
    for module in params:  # the target network is a separate, equal copy
        np.testing.assert_array_equal(state.train.target_params[module]["w"], params[module]["w"])


def test_schedule_steps_follow_the_fractions_of_the_gradient_steps():
    cfg = train.PRESETS["cpu"][1]
    assert cfg.total_updates == (30_000 - 1_000) // 4
    config = cfg.sparsity_config
    assert config["update_start_step"] == round(0.2 * cfg.total_updates)
    assert config["update_end_step"] == round(0.8 * cfg.total_updates)
    assert config["algorithm"] == "magnitude" and config["sparsity"] == 0.98 and config["dist_type"] == "erk"
    paper = train.PRESETS["paper"][1]
    assert paper.sparsity == 0.98 and paper.update_freq == 1_000 and paper.torso == "nature"
    # the paper's Dopamine config: 40 iterations of 250k agent steps, pruning from 500k to 2M gradient steps
    assert paper.total_updates == 2_495_000 and abs(paper.update_start_step - 500_000) < 2_000
    assert abs(paper.update_end_step - 2_000_000) < 5_000


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_smoke_run_prunes_to_the_target(tmp_path):
    out = str(tmp_path / "run")
    summary = train.main(dataclasses.replace(SMOKE, out_dir=out, progress=False), preset="smoke")
    assert summary["algorithm"] == "dqn_magnitude" and summary["headline"]["value"] is not None
    records = metrics.read_jsonl(os.path.join(out, "metrics.jsonl"))
    sparsity = [r["sparsity"] for r in records]
    assert sparsity[0] == 0.0 and abs(sparsity[-1] - 0.98) < 1e-3  # dense before the start, 98% after the end
    assert all(a <= b + 1e-9 for a, b in zip(sparsity, sparsity[1:]))  # gradual: never decreasing
    assert os.path.isdir(os.path.join(out, "checkpoints")) and os.path.isfile(os.path.join(out, "learning_curve.png"))
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["pruner"] == "magnitude"


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_help_and_bad_input(tmp_path, scripts):
    result = scripts.run("algorithms.jaxpruner.train", "--help")
    assert result.returncode == 0 and "--pruner" in result.stdout and "--sparsity-type" in result.stdout
    result = scripts.run("algorithms.jaxpruner.train", "smoke", "--pruner", "lottery", "--out-dir", str(tmp_path / "x"))
    assert result.returncode == 2 and "--pruner: unknown algorithm 'lottery'" in result.stderr, result.stderr
    assert not os.path.exists(tmp_path / "x")


@pytest.mark.slow
@pytest.mark.parametrize("preset, pruner", [("cpu_der", "rigl"), ("smoke", "magnitude_ste"), ("smoke", "global_magnitude")])
def test_sparse_rainbow_and_other_pruners_run(tmp_path, preset, pruner):
    tiny = dict(total_steps=2_000, learning_starts=500, eval_every=2_000, log_every=500, checkpoint_every=1_000,
                eval_episodes=4, update_freq=50)
    cfg = dataclasses.replace(train.PRESETS[preset][1], pruner=pruner, out_dir=str(tmp_path / "run"), progress=False,
                              update_start_fraction=0.0 if pruner == "rigl" else 0.2, **tiny)
    summary = train.main(cfg, preset=preset)
    assert summary["headline"]["value"] is not None
    last = metrics.read_jsonl(os.path.join(cfg.out_dir, "metrics.jsonl"))[-1]
    assert abs(last["sparsity"] - 0.98) < 2e-3
