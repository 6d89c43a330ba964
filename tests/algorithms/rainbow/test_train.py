"""Rainbow/DER script: CLI contract, learning on CartPole, SIGKILL-and-resume with prioritized replay."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from algorithms.rainbow import train
from core import metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SMOKE = train.PRESETS["smoke"][1]


def _cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "algorithms.rainbow.train", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("rainbow") / "run")
    summary = train.main(dataclasses.replace(SMOKE, out_dir=out, progress=False), preset="smoke")
    return out, summary


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
@pytest.mark.envpool
def test_smoke_learns_cartpole_and_writes_the_cli_contract(smoke_run):
    out, summary = smoke_run
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "learning_curve.png", "summary.json"):
        assert os.path.exists(os.path.join(out, name)), name
    on_disk = json.load(open(os.path.join(out, "summary.json")))
    assert on_disk["algorithm"] == "rainbow" and on_disk["env_steps"] == SMOKE.total_steps
    # The uniform random policy returns ~22 on CartPole; 6k steps of Rainbow are well above it.
    assert summary["headline"]["value"] > 60
    losses = [r["loss"] for r in metrics.read_jsonl(os.path.join(out, "metrics.jsonl")) if r["loss"] is not None]
    assert losses and all(np.isfinite(losses))


@pytest.mark.envpool
@pytest.mark.slow  # the default suite keeps one SIGKILL-and-resume test: the DQN script's
def test_a_sigkilled_prioritized_run_resumes_identically(smoke_run, tmp_path, scripts):
    reference, _ = smoke_run
    out = str(tmp_path / "killed")
    scripts.kill_at_checkpoint_and_resume("algorithms.rainbow.train", "smoke", out, step=3000)
    assert scripts.learning_metrics(out) == scripts.learning_metrics(reference)


def test_help_lists_the_presets():
    result = _cli("--help")
    assert result.returncode == 0
    for word in ("smoke", "cpu", "der", "paper", "--num-atoms", "--prioritized", "--noisy"):
        assert word in result.stdout


@pytest.mark.parametrize("args, message", [
    (["smoke", "--num-atoms", "1"], "--num-atoms: must be 0 (scalar Q values) or >= 2"),
    (["smoke", "--importance-exponent", "2"], "--importance-exponent: must lie in [0, 1]"),
    (["smoke", "--augment-pad", "4"], "--augment-pad: random shifts need image observations"),
    (["der", "--env-id", "Pongg-v5"], "Pong-v5"),
])
def test_bad_input_fails_before_work_with_one_message(args, message, tmp_path):
    result = _cli(*args, "--out-dir", str(tmp_path / "x"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "x")


def test_der_preset_has_the_atari_100k_hyperparameters():
    der = train.PRESETS["der"][1]
    assert (der.n_step, der.train_every, der.target_update_every, der.learning_rate, der.adam_eps,
            der.learning_starts) == (10, 1, 2_000, 1e-4, 1.5e-4, 1_600)
    assert der.atari_protocol == "atari100k" and der.total_steps == 100_000
    assert der.noisy and der.dueling and der.prioritized and der.num_atoms == 51 and der.double_q
