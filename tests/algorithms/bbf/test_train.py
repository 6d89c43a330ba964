"""The BBF script: presets, the CLI contract (help, bad input), a smoke run and its resume."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from algorithms.bbf import train
from core import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "algorithms.bbf.train", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)


def test_presets_validate_and_paper_preset_is_the_paper():
    for name, (_, cfg) in train.PRESETS.items():
        cfg.validate()
    paper = train.PRESETS["paper"][1]
    assert (paper.impala_width, paper.impala_blocks, paper.hidden_dim, paper.num_atoms) == (4, 2, 2048, 51)
    assert (paper.spr_weight, paper.spr_steps, paper.reset_every, paper.no_resets_after) == (5.0, 5, 20_000, 100_000)
    assert (paper.shrink_factor, paper.perturb_factor, paper.anneal_steps) == (0.5, 0.5, 10_000)
    assert (paper.n_step_max, paper.n_step, paper.gamma_min, paper.gamma) == (10, 3, 0.97, 0.997)
    assert (paper.learning_rate, paper.adam_eps, paper.weight_decay, paper.target_tau) == (1e-4, 1.5e-4, 0.1, 0.005)
    assert (paper.batch_size, paper.replay_ratio, paper.total_steps, paper.atari_protocol) == (32, 8, 100_000,
                                                                                                "atari100k")
    assert paper.prioritized and paper.dueling and paper.double_q and not paper.noisy and paper.act_with_target


@pytest.mark.parametrize("field, value", [("gamma_min", 0.999), ("shrink_factor", 1.5), ("encoder", "resnet"),
                                          ("n_step_max", 2), ("num_atoms", 0)])
def test_invalid_values_name_the_field(field, value):
    cfg = dataclasses.replace(train.PRESETS["smoke"][1], **{field: value})
    with pytest.raises(cli.ConfigError, match=field.replace("_", "-")):
        cfg.validate()


def test_experiment_conditions_are_valid_ablation_flags():
    from algorithms.bbf import experiment
    from algorithms.rainbow import train as rainbow

    base = train.PRESETS["cpu"][1]
    bbf_labels = [label for label, (module, _) in experiment.CONDITIONS.items() if module == experiment.BBF_MODULE]
    parsed = {label: cli.parse_cli(train.PRESETS, ["cpu", *experiment.CONDITIONS[label][1]])[1] for label in bbf_labels}
    for cfg in parsed.values():
        cfg.validate()
    assert parsed["BBF"] == base
    assert not parsed["BBF-Resets"].resets and parsed["BBF-SPR"].spr_weight == 0
    assert not parsed["BBF-Annealing"].anneal_n and not parsed["BBF-Annealing"].anneal_gamma
    assert parsed["BBF-WD"].weight_decay == 0
    assert (parsed["BBF n=10"].anneal_n, parsed["BBF n=10"].n_step, parsed["BBF n=10"].anneal_gamma) == (False, 10, True)
    assert (parsed["BBF gamma=0.99"].anneal_gamma, parsed["BBF gamma=0.99"].gamma) == (False, 0.99)
    spr = dataclasses.replace(parsed["SPR-style"], out_dir=train.PRESETS["cpu_spr"][1].out_dir)
    assert spr == train.PRESETS["cpu_spr"][1]
    module, extra = experiment.CONDITIONS["DER"]
    der = cli.parse_cli(rainbow.PRESETS, ["cpu", *extra])[1]
    der.validate()
    assert module == experiment.DER_MODULE and der.noisy and der.n_step == 10 and der.replay_ratio == 1
    assert len({experiment.dir_name(label) for label in experiment.CONDITIONS}) == len(experiment.CONDITIONS)


def test_reduced_protocol_scales_every_schedule_and_keeps_each_conditions_flags():
    from algorithms.bbf import experiment
    from algorithms.rainbow import train as rainbow

    cfgs = {}
    for label in (*experiment.PROTOCOLS["reduced"]["conditions"], "BBF-Resets", "BBF-SPR"):
        module, extra = experiment.condition_overrides(label, "reduced")
        presets = train.PRESETS if module == experiment.BBF_MODULE else rainbow.PRESETS
        cfgs[label] = cli.parse_cli(presets, ["cpu", *extra])[1]
        cfgs[label].validate()
        assert cfgs[label].total_steps == experiment.REDUCED_STEPS
    bbf = cfgs["BBF"]
    assert (bbf.reset_every, bbf.no_resets_after, bbf.replay_ratio, bbf.impala_channels) == (800, 4000, 2, (8, 16, 16))
    assert not cfgs["BBF-Resets"].resets and cfgs["BBF-SPR"].spr_weight == 0
    assert cfgs["SPR-style"].replay_ratio == 1 and cfgs["SPR-style"].encoder == "minatar"
    assert cfgs["DER"].target_update_every == 80 and cfgs["DER"].n_step == 10
    assert experiment.merge_overrides(("--a", "1", "--b"), ("--a", "2")) == ("--b", "--a", "2")


def test_help_lists_presets_and_bbf_fields(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.cli_main(train.PRESETS, train.main, argv=["--help"], prog="python -m algorithms.bbf.train")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for word in ("smoke", "cpu", "cpu_spr", "atari_smoke", "paper", "--spr-weight", "--no-resets", "--anneal-steps"):
        assert word in out


def test_bad_input_is_one_line_and_exit_2(capsys):
    out = _cli("smok")  # end to end: the script's exit status and stderr
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "smoke" in lines[0], out.stderr
    with pytest.raises(SystemExit) as exit_info:  # a bad value, in process
        cli.cli_main(train.PRESETS, train.main, argv=["smoke", "--shrink-factor", "2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --shrink-factor"), err


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("bbf") / "smoke")
    cfg = dataclasses.replace(train.PRESETS["smoke"][1], out_dir=out)
    return cfg, train.main(cfg, preset="smoke")


@pytest.mark.slow
def test_smoke_run_writes_the_cli_contract_and_follows_the_schedules(smoke_run):
    cfg, summary = smoke_run
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "learning_curve.png", "summary.json", "checkpoints"):
        assert os.path.exists(os.path.join(cfg.out_dir, name)), name
    assert summary["algorithm"] == "bbf" and summary["env_steps"] == cfg.total_steps
    assert summary["headline"]["name"] == "eval_return" and summary["headline"]["value"] is not None
    with open(os.path.join(cfg.out_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    steps = [r["grad_steps"] for r in records]
    # replay ratio 2: every logged chunk after learning starts adds log_every × 2 gradient steps
    assert all(b - a == cfg.log_every * cfg.replay_ratio for a, b in zip(steps[1:], steps[2:]))
    assert [r["resets"] for r in records] == [0, 1, 1, 1]  # one reset at 1000 (1000 + 1000 <= no_resets_after)
    assert records[1]["n_step"] == 10 and records[1]["gamma"] == pytest.approx(0.97, abs=1e-3)  # just reset
    assert records[2]["n_step"] == 3 and records[2]["gamma"] == pytest.approx(0.997, abs=1e-6)  # annealed


@pytest.mark.slow
def test_rerunning_a_finished_run_resumes_from_its_checkpoint(smoke_run, capsys):
    cfg, summary = smoke_run
    again = train.main(cfg, preset="smoke")
    assert "resuming" in capsys.readouterr().out
    assert again["env_steps"] == summary["env_steps"] and again["headline"] == summary["headline"]
    with open(os.path.join(cfg.out_dir, "metrics.jsonl")) as f:
        assert len(f.readlines()) == cfg.total_steps // cfg.log_every
