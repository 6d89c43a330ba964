"""The random-MDP study script: MDP generator, measured quantities, CLI contract, resume."""
import dataclasses
import json
import os

import numpy as np
import pytest

from algorithms.ksme import random_mdp
from core import metrics

TINY = dataclasses.replace(random_mdp.PRESETS["smoke"][1], num_mdps=3, num_states=4, checkpoint_every=2,
                           progress=False)


def test_random_mdp_is_a_markov_chain_with_rewards_in_the_unit_interval():
    P, r = random_mdp.random_mdp(0, 0, num_states=10, num_actions=4, transition_concentration=1.0,
                                 reward_mean=0.5, reward_std=2.0)
    assert P.shape == (10, 10) and r.shape == (10,) and P.dtype == np.float64
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-12)
    assert (P >= 0).all() and (r >= 0).all() and (r <= 1).all()
    P2, _ = random_mdp.random_mdp(0, 1, num_states=10, num_actions=4,
                                  transition_concentration=1.0, reward_mean=0.5, reward_std=2.0)
    assert not np.allclose(P, P2)


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_run_measures_every_mdp_and_resumes(tmp_path):
    out = str(tmp_path / "run")
    summary = random_mdp.main(dataclasses.replace(TINY, out_dir=out), preset="smoke")
    rows = metrics.read_jsonl(os.path.join(out, "metrics.jsonl"))
    assert [r["mdp"] for r in rows] == [1, 2, 3]
    for row in rows:
        # Every bound held (gap ≥ 0); the identities are exact; MICo and KSMe converged.
        assert min(row["bisim_gap_min"], row["mico_gap_min"], row["ksme_gap_min"]) >= -1e-9
        assert row["ksme_reduced_mico_error"] < 1e-9 and row["embedding_distortion"] < 1e-9
        assert row["bisim_converged"] == 1.0 and row["mico_iterations"] < TINY.max_iterations
    assert summary["headline"]["name"] == "ksme_gap_mean" and summary["headline"]["value"] > 0
    for name in ("config.json", "table.md", "random_mdp.png", "summary.json"):
        assert os.path.exists(os.path.join(out, name)), name
    # Resume: drop the last MDP's record and the final checkpoint; the rerun measures it again, identically.
    before = rows
    checkpoints = os.path.join(out, "checkpoints")
    import shutil
    shutil.rmtree(os.path.join(checkpoints, "3"))
    again = random_mdp.main(dataclasses.replace(TINY, out_dir=out), preset="smoke")
    after = metrics.read_jsonl(os.path.join(out, "metrics.jsonl"))
    timing = lambda r: {k: v for k, v in r.items() if not k.endswith("time_s")}  # noqa: E731
    assert [timing(r) for r in after] == [timing(r) for r in before]
    assert again["headline"]["value"] == summary["headline"]["value"]
    assert json.load(open(os.path.join(out, "config.json")))["num_mdps"] == 3


def test_help_and_bad_input(tmp_path, scripts):
    result = scripts.run("algorithms.ksme.random_mdp", "--help")
    assert result.returncode == 0 and "--num-states" in result.stdout and "paper" in result.stdout
    for flag, value, message in (("--gamma", "1.0", "--gamma: must lie in [0, 1)"),):
        result = scripts.run("algorithms.ksme.random_mdp", "smoke", flag, value, "--out-dir", str(tmp_path / "x"))
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert not os.path.exists(tmp_path / "x")
