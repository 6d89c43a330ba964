"""DQN script: CLI contract, determinism, kill-and-resume, both loops, learning (slow)."""
import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from algorithms.dqn import train
from core import metrics
from core.checkpoint import Checkpointer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TIMING = ("sps", "wall_s")
SMOKE = train.PRESETS["smoke"][1]


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "algorithms.dqn.train", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _learning_metrics(run_dir):
    return [{k: v for k, v in r.items() if k not in TIMING}
            for r in metrics.read_jsonl(os.path.join(run_dir, "metrics.jsonl"))]


def _final_params(run_dir, cfg):
    ck = Checkpointer(os.path.join(run_dir, "checkpoints"))
    trainer = train.make_trainer(cfg)
    template = {"state": trainer.init(jax.random.PRNGKey(cfg.seed)), "last_eval": np.zeros(2)}
    restored = ck.restore(ck.latest_step(), template)
    trainer.close()
    return restored["state"][0].train.params


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("smoke") / "run")
    summary = train.main(dataclasses.replace(SMOKE, out_dir=out, progress=False), preset="smoke")
    return out, summary


@pytest.mark.envpool
def test_smoke_writes_every_output_of_the_cli_contract(smoke_run):
    out, summary = smoke_run
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "learning_curve.png", "summary.json"):
        assert os.path.exists(os.path.join(out, name)), name
    on_disk = json.load(open(os.path.join(out, "summary.json")))
    assert on_disk["headline"]["name"] == "eval_return" and on_disk["headline"]["value"] == summary["headline"]["value"]
    for key in ("algorithm", "preset", "seed", "env_id", "env_steps", "wall_s", "compile_s", "sps_steady",
                "versions", "git_sha"):
        assert key in on_disk
    assert on_disk["env_steps"] == SMOKE.total_steps and on_disk["preset"] == "smoke"
    # several checkpoints during the run, so kill-and-resume can be exercised on it
    assert Checkpointer(os.path.join(out, "checkpoints"), max_to_keep=SMOKE.keep_checkpoints).steps() == \
        [1500, 3000, 4500, 6000]
    records = metrics.read_jsonl(os.path.join(out, "metrics.jsonl"))
    assert [r["env_steps"] for r in records] == list(range(500, 6001, 500))
    assert all(np.isfinite(r["loss"]) for r in records if r["loss"] is not None)


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
@pytest.mark.envpool
def test_same_seed_same_metrics_and_a_sigkilled_run_resumes_identically(smoke_run, tmp_path, scripts):
    reference, _ = smoke_run
    out = str(tmp_path / "killed")
    scripts.kill_at_checkpoint_and_resume("algorithms.dqn.train", "smoke", out, step=3000, timeout=600)
    assert _learning_metrics(out) == _learning_metrics(reference)
    cfg = dataclasses.replace(SMOKE, progress=False)
    for a, b in zip(jax.tree.leaves(_final_params(out, cfg)), jax.tree.leaves(_final_params(reference, cfg))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
@pytest.mark.envpool
def test_different_seeds_differ(smoke_run, tmp_path):
    reference, _ = smoke_run
    cfg = dataclasses.replace(SMOKE, seed=1, total_steps=1500, out_dir=str(tmp_path), progress=False)
    train.main(cfg)
    assert _learning_metrics(str(tmp_path))[-1] != _learning_metrics(reference)[2]


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_jax_environment_trains_inside_one_jit(tmp_path):
    cfg = dataclasses.replace(
        train.PRESETS["cpu"][1], total_steps=2_000, learning_starts=500, buffer_size=2_000, log_every=500, train_every=1,
        eval_every=1_000, checkpoint_every=1_000, eval_episodes=2, eval_max_steps=200,
        out_dir=str(tmp_path), progress=False)
    summary = train.main(cfg, preset="test")
    assert summary["env_steps"] == 2_000 and summary["headline"]["value"] is not None
    records = metrics.read_jsonl(os.path.join(str(tmp_path), "metrics.jsonl"))
    assert records[-1]["grad_steps"] == 1_501  # updates at env steps 500, 501, ..., 2000
    # resuming a finished JAX run from its final checkpoint is a no-op that rewrites the summary
    again = train.main(cfg, preset="test")
    assert again["headline"] == summary["headline"]


@pytest.mark.parametrize("args, message", [
    (["smoke", "--total-steps", "-5"], "--total-steps: must be positive"),
    (["smoke", "--batch-size", "64", "--buffer-size", "32"], "--batch-size: batch size 64 exceeds the replay capacity 32"),
    (["smok"], "unknown preset 'smok' (did you mean smoke?)"),
    (["smoke", "--env-id", "CartPole-v2"], "'CartPole-v1'"),
    (["smoke", "--torso", "resnet"], "--torso: unknown torso 'resnet'"),
    (["smoke", "--gamma", "1.5"], "--gamma: must lie in [0, 1]"),
])
def test_bad_input_fails_before_work_with_one_message(args, message, tmp_path):
    result = _cli(*args, "--out-dir", str(tmp_path / "x"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "x")


def test_help_lists_presets_and_fields():
    result = _cli("--help")
    assert result.returncode == 0
    for word in ("smoke", "cartpole", "cpu", "paper", "--seed", "--out-dir", "--env-id", "--total-steps"):
        assert word in result.stdout


def test_resume_with_a_different_config_is_refused(smoke_run):
    out, _ = smoke_run
    result = _cli("smoke", "--out-dir", out, "--learning-rate", "0.5")
    assert result.returncode == 2
    assert "learning_rate: 0.001 -> 0.5" in result.stderr


def test_every_config_field_is_read_by_the_script():
    from algorithms.dqn import agent, loop
    source = "".join(open(m.__file__).read() for m in (train, agent, loop))
    unread = [f.name for f in dataclasses.fields(train.Config) if f"cfg.{f.name}" not in source
              and f"self.{f.name}" not in source.split("def validate")[0]]
    assert not unread, unread


@pytest.mark.slow
@pytest.mark.envpool
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cartpole_reaches_475_within_100k_steps(seed, tmp_path):
    cfg = dataclasses.replace(train.PRESETS["cartpole"][1], seed=seed, out_dir=str(tmp_path), progress=False)
    summary = train.main(cfg, preset="cartpole")
    assert summary["headline"]["value"] >= 475
