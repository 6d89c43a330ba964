"""PVN learner and scripts: shapes, learning on a tiny budget, the dataset → pretrain → linear-evaluation pipeline, CLI errors."""
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.pvn import dataset, experiment, gridworld, pretrain, train
from algorithms.pvn import learner as learner_lib
from core import cli


@pytest.mark.parametrize("indicator", ["random_network", pytest.param("hash", marks=pytest.mark.slow)])
def test_learner_shapes_warmup_and_td_loss_falls_on_four_rooms(indicator):
    cfg = gridworld.StudyConfig(num_tasks=8, num_features=8, indicator=indicator, proportion=0.1, num_updates=300,
                                batch_size=64, warmup_updates=20, hidden=32)
    mdp = gridworld.four_rooms()
    learner = learner_lib.make_learner(gridworld.learner_config(cfg, 4))
    table = gridworld.transition_table(mdp)
    state = learner.init(jax.random.PRNGKey(0), table.observation[:1])
    ind = learner.indicators(state, table.observation)
    assert ind.shape == (416, 8) and ind.dtype == jnp.float32
    assert learner.network.task_values(state.params, table.observation[:5]).shape == (5, 4, 8)
    update = jax.jit(learner.update)
    rng = np.random.default_rng(0)
    losses = []
    for step in range(300):
        before = state
        state, m = update(state, jax.tree.map(lambda x: x[rng.integers(0, 416, 64)], table))
        losses.append(float(m.td_loss))
        if step == 0:  # the warm-up trains the thresholds only
            jax.tree.map(np.testing.assert_array_equal, state.params, before.params)
            jax.tree.map(np.testing.assert_array_equal, state.target_params, before.target_params)
            assert (indicator == "hash") == np.allclose(state.thresholds, before.thresholds)
    assert int(state.step) == 300 and np.all(np.isfinite(losses))
    assert not np.allclose(state.params["encoder/features"]["w"], before.params["encoder/features"]["w"])
    assert np.mean(losses[-30:]) < np.mean(losses[20:50])
    rate = float(jnp.mean(learner.indicators(state, table.observation)))
    assert 0.02 < rate < 0.3  # p = 0.1: about 10% of the (one-hot) states


def test_presets_validate_and_paper_preset_matches_the_paper():
    for presets in (dataset.PRESETS, pretrain.PRESETS):
        assert {"smoke", "cpu", "paper"} <= set(presets)
    p = pretrain.PRESETS["paper"][1]
    assert (p.torso, p.impala_width, p.num_features, p.num_tasks, p.batch_size) == ("impala", 8, 4096, 100, 256)
    assert (p.learning_rate, p.adam_eps, p.gamma, p.ema_decay, p.proportion) == (1.05e-4, 1.5e-4, 0.99, 0.99, 0.01)
    assert p.learning_rate == pytest.approx(6.25e-5 * (256 / 32) ** 0.25, rel=2e-3)  # the authors' batch scaling
    assert (p.num_updates, p.warmup_updates) == (25 * 62_500, 62_500)  # 25 Dopamine iterations, 1 of warm-up
    p.validate()
    lin = train.PRESETS["paper"][1]  # the authors' online linear-evaluation DQN
    assert (lin.total_steps, lin.n_step, lin.eps_start, lin.eps_end, lin.learning_rate, lin.adam_eps) == \
        (1_000_000, 5, 0.01, 0.01, 6.25e-5, 1.5e-4)
    assert (lin.max_grad_norm, lin.target_update_every, lin.learning_starts, lin.buffer_size, lin.batch_size) == \
        (10.0, 2_000, 2_000, 1_000_000, 32)
    assert lin.head_hidden == 0 and (lin.num_features, lin.impala_width) == (4096, 8)
    pretrain.PRESETS["cpu"][1].validate()
    assert train.PRESETS["cpu"][1].double_q and train.PRESETS["cpu"][1].head_hidden == 0


def test_bad_values_fail_with_one_line_and_exit_2(tmp_path, capsys):
    for module, argv in [(pretrain, ["cpu", "--indicator", "bogus"]), (pretrain, ["cpu", "--proportion", "1.5"]),
                         (dataset, ["smoke", "--behaviour", "expert"]), (dataset, ["smoke", "--env-id", "Breakout"]),
                         (train, ["smoke", "--encoder", "random", "--head-hidden", "64"])]:
        with pytest.raises(SystemExit) as exit_info:
            cli.cli_main(module.PRESETS, module.main, argv=argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")


def test_linear_evaluation_refuses_an_encoder_of_another_architecture(tmp_path, capsys):
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "config.json").write_text(json.dumps({"torso": "minatar", "num_features": 32, "impala_width": 1}))
    with pytest.raises(SystemExit) as exit_info:
        cli.cli_main(train.PRESETS, train.main, argv=["smoke", "--pretrained-dir", str(pre), "--num-features", "64",
                                                      "--out-dir", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--num-features" in err and "32" in err
    assert not (tmp_path / "o").exists()  # failed before any work


def test_missing_or_corrupt_dataset_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.cli_main(pretrain.PRESETS, pretrain.main, argv=["smoke", "--dataset-dir", str(tmp_path / "none"),
                                                            "--out-dir", str(tmp_path / "o")])
    assert "--dataset-dir" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pipeline_smoke_dataset_pretrain_linear_eval_and_corruption(tmp_path, capsys):
    data = str(tmp_path / "data")
    out = dataset.main(dataclasses.replace(dataset.PRESETS["smoke"][1], out_dir=data, progress=False), preset="smoke")
    assert out["headline"]["value"] > 1500
    pre = str(tmp_path / "pre")
    summary = pretrain.main(dataclasses.replace(pretrain.PRESETS["smoke"][1], dataset_dir=data, out_dir=pre,
                                                progress=False), preset="smoke")
    assert np.isfinite(summary["headline"]["value"])
    records = [json.loads(l) for l in open(os.path.join(pre, "metrics.jsonl"))]
    assert [r["updates"] for r in records] == [20, 40]
    lin = str(tmp_path / "lin")
    res = train.main(dataclasses.replace(train.PRESETS["smoke"][1], pretrained_dir=pre, out_dir=lin, progress=False),
                     preset="smoke")
    assert res["headline"]["name"] == "eval_return" and res["headline"]["value"] is not None
    # the encoder stayed frozen: its parameters equal the pretrained ones after training
    enc, _, _ = pretrain.load_encoder(pre)
    from core.checkpoint import Checkpointer
    ck = Checkpointer(os.path.join(lin, "checkpoints"))
    cfg = dataclasses.replace(train.PRESETS["smoke"][1], pretrained_dir=pre, out_dir=lin)
    from algorithms.dqn import loop
    trainer = loop.make_trainer(cfg, train.make_agent)
    state = ck.restore(ck.latest_step(), {"state": trainer.init(jax.random.PRNGKey(0)),
                                          "last_eval": np.zeros(2)})["state"]
    for k in enc:
        jax.tree.map(np.testing.assert_array_equal, state[0].train.params[k], enc[k])
    # truncate a chunk of the dataset: pretraining refuses it with one line naming the file
    manifest = json.load(open(os.path.join(data, "manifest.json")))
    victim = os.path.join(data, manifest["chunks"][0]["files"]["observation"]["path"])
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) - 10)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.cli_main(pretrain.PRESETS, pretrain.main, argv=["smoke", "--dataset-dir", data,
                                                            "--out-dir", str(tmp_path / "pre2")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated" in err[0] and os.path.basename(victim) in err[0]


def test_experiment_reports_what_exists(tmp_path):
    assert experiment.report_gridworld(str(tmp_path)) == 0
    assert experiment.main(["minatar", "--dry-run", "--seeds", "0", "--games", "Breakout-MinAtar",
                            "--results", str(tmp_path), "--runs", str(tmp_path / "runs")]) == 0
