"""DrQ(ε) script: CLI contract on MinAtar, hyperparameters, learning (slow)."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from algorithms.drq import train
from core import metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SMOKE = train.PRESETS["smoke"][1]


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_smoke_writes_the_cli_contract_and_resumes_a_finished_run(tmp_path):
    out = str(tmp_path / "run")
    cfg = dataclasses.replace(SMOKE, out_dir=out, progress=False)
    summary = train.main(cfg, preset="smoke")
    on_disk = json.load(open(os.path.join(out, "summary.json")))
    assert on_disk["algorithm"] == "drq_eps" and on_disk["env_steps"] == SMOKE.total_steps
    assert on_disk["headline"]["value"] is not None
    records = metrics.read_jsonl(os.path.join(out, "metrics.jsonl"))
    # One update per environment step from learning_starts on (and DrQ's target is the online network).
    assert records[-1]["grad_steps"] == SMOKE.total_steps - SMOKE.learning_starts + 1
    assert train.main(cfg, preset="smoke")["headline"] == summary["headline"]


def test_paper_preset_is_drq_epsilon_on_atari_100k():
    paper = train.PRESETS["paper"][1]
    assert (paper.n_step, paper.train_every, paper.target_update_every, paper.learning_starts) == (10, 1, 1, 1_600)
    assert (paper.eps_end, paper.eval_epsilon, paper.eps_decay_steps) == (0.01, 0.001, 5_000)
    assert paper.augment_pad == 4 and paper.atari_protocol == "atari100k" and paper.double_q
    assert not (paper.noisy or paper.prioritized or paper.num_atoms)


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_help_and_bad_input(tmp_path):
    result = subprocess.run([sys.executable, "-m", "algorithms.drq.train", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--augment-pad" in result.stdout
    result = subprocess.run([sys.executable, "-m", "algorithms.drq.train", "smoke", "--augment-pad", "-1",
                             "--out-dir", str(tmp_path / "x")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--augment-pad: must be >= 0" in result.stderr
    assert not os.path.exists(tmp_path / "x")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_learns_breakout_minatar_beyond_the_random_policy(tmp_path):
    # The uniform random policy returns 0.36 ± 0.61 on Breakout-MinAtar (random_policy.py, 100 episodes).
    cfg = dataclasses.replace(train.PRESETS["cpu"][1], total_steps=20_000, eval_every=20_000,
                              checkpoint_every=20_000, out_dir=str(tmp_path), progress=False)
    assert train.main(cfg, preset="cpu")["headline"]["value"] >= 2.0
