"""Offline linear value error: Monte-Carlo returns across episode boundaries, ridge regression, the episode-split protocol."""
import json
import os

import numpy as np
import pytest

from algorithms.pvn import experiment
from algorithms.pvn import value_error as ve
from core import transition_dataset as td

F, M, L = ve.FIRST, ve.MID, ve.LAST


def test_monte_carlo_returns_hand_computed_across_an_episode_boundary():
    # stream 0: an episode of 4 rows, one of 3, then one still running when the data ends.
    # stream 1: an episode ending in a truncation (discount 1 at LAST), then a 2-row episode.
    step_type = np.array([[F, F], [M, M], [M, L], [L, F], [F, L], [M, F], [L, M], [F, M], [M, M]])
    reward = np.array([[0, 0], [1, 1], [0, 1], [2, 0], [0, 3], [1, 0], [1, 0], [0, 0], [5, 0]], float)
    discount = np.array([[1, 1], [1, 1], [1, 1], [0, 1], [1, 0], [1, 1], [0, 1], [1, 1], [1, 1]], float)
    mc = ve.monte_carlo_returns(reward, discount, step_type, gamma=0.5)
    # stream 0: G_2 = r_3 = 2, G_1 = r_2 + ½ G_2 = 1, G_0 = r_1 + ½ G_1 = 1.5; G_5 = r_6 = 1, G_4 = r_5 + ½ = 1.5.
    np.testing.assert_allclose(mc.returns[:, 0], [1.5, 1.0, 2.0, 0, 1.5, 1.0, 0, 0, 0])
    np.testing.assert_array_equal(mc.valid[:, 0], [1, 1, 1, 0, 1, 1, 0, 0, 0])  # LAST rows and the running tail out
    # stream 1: the truncated episode (rows 0-2) is unusable; row 3: G = r_4 = 3; the tail from row 5 runs on.
    np.testing.assert_allclose(mc.returns[:, 1], [0, 0, 0, 3.0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(mc.valid[:, 1], [0, 0, 0, 1, 0, 0, 0, 0, 0])


def test_monte_carlo_returns_gamma_one_sums_the_rewards_to_the_end():
    step_type = np.array([[F], [M], [M], [M], [L]])
    reward = np.array([[0], [1], [2], [3], [4]], float)
    discount = np.array([[1], [1], [1], [1], [0]], float)
    mc = ve.monte_carlo_returns(reward, discount, step_type, gamma=1.0)
    np.testing.assert_allclose(mc.returns[:, 0], [10, 9, 7, 4, 0])
    np.testing.assert_array_equal(mc.valid[:, 0], [1, 1, 1, 1, 0])


def test_monte_carlo_returns_rejects_bad_shapes_and_gamma():
    with pytest.raises(ValueError, match="one shape"):
        ve.monte_carlo_returns(np.zeros((3, 2)), np.zeros((3, 1)), np.zeros((3, 2)), gamma=0.9)
    with pytest.raises(ValueError, match="gamma"):
        ve.monte_carlo_returns(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)), gamma=1.5)


def test_episode_ids_unique_per_episode_and_stream():
    step_type = np.array([[F, F], [M, L], [L, F], [F, M]])
    ids = ve.episode_ids(step_type)
    assert ids[0, 0] == ids[1, 0] == ids[2, 0] != ids[3, 0]
    assert ids[0, 1] == ids[1, 1] != ids[2, 1] == ids[3, 1]
    assert len(np.unique(ids)) == 4


def test_ridge_recovers_an_exact_linear_target():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * [1, 10, 0.1, 3, 1] + 4.0  # unequal scales and a mean: scaling, bias
    y = x @ np.array([1.0, -0.2, 5.0, 0.0, 2.0]) - 3.0
    fit = ve.ridge_fits(x, y, ridges=[0.0])[0]
    np.testing.assert_allclose(ve.ridge_predict(fit, x), y, atol=1e-9)
    assert ve.normalised_error(ve.ridge_predict(fit, x), y) < 1e-18
    x_new = rng.normal(size=(50, 5))
    np.testing.assert_allclose(ve.ridge_predict(fit, x_new), x_new @ [1.0, -0.2, 5.0, 0.0, 2.0] - 3.0, atol=1e-9)


def test_constant_feature_has_error_one_and_predicts_the_mean():
    y = np.arange(10.0)
    fit = ve.ridge_fits(np.ones((10, 1)), y, ridges=[0.0, 1e-3])
    for f in fit:
        np.testing.assert_allclose(ve.ridge_predict(f, np.ones((3, 1))), 4.5)
        assert ve.normalised_error(ve.ridge_predict(f, np.ones((10, 1))), y) == pytest.approx(1.0)


def test_ridge_shrinks_toward_the_mean_as_lambda_grows():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 3))
    y = x @ [1.0, 2.0, 3.0]
    norms = [np.linalg.norm(f.weights) for f in ve.ridge_fits(x, y, ridges=[0.0, 1.0, 100.0, 1e6])]
    assert norms[0] > norms[1] > norms[2] > norms[3] and norms[3] < 1e-4
    # the closed form: (ZᵀZ/n + λI) w = Zᵀ(y − ȳ)/n, Z centred and divided by the RMS of the stds
    z = (x - x.mean(0)) / np.sqrt(x.var(0).mean())
    w = np.linalg.solve(z.T @ z / 100 + np.eye(3), z.T @ (y - y.mean()) / 100)
    np.testing.assert_allclose(ve.ridge_fits(x, y, ridges=[1.0])[0].weights, w, rtol=1e-10)


def test_cross_validated_error_near_zero_for_linear_targets_and_near_one_for_noise():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(40), 10)  # 40 episodes of 10 rows
    x = rng.normal(size=(400, 4))
    y = x @ [1.0, -1.0, 0.5, 2.0] + 1.0
    res = ve.cross_validated_value_error(x, y, groups, num_folds=5)
    assert res.value_error < 1e-6 and res.fold_errors.shape == (5,) and res.ridges.shape == (5,)
    noise = ve.cross_validated_value_error(rng.normal(size=(400, 4)), y, groups, num_folds=5)
    assert 0.9 < noise.value_error < 1.3
    assert noise.train_error < noise.value_error  # in-sample fits noise a little, out of sample it cannot


def test_cross_validation_keeps_episodes_together():
    """A feature that identifies the episode explains the returns in sample but not on held-out episodes."""
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(30), 5)
    y = np.repeat(rng.normal(size=30), 5)  # the return is a per-episode constant
    one_hot = np.eye(30)[groups]
    res = ve.cross_validated_value_error(one_hot, y, groups, num_folds=3, ridges=(1e-6,))
    assert res.train_error < 1e-3
    assert res.value_error > 0.9  # a held-out episode's own column was constant in training: weight 0


def test_cross_validation_rejects_bad_arguments():
    x, y, g = np.zeros((10, 2)), np.zeros(10), np.arange(10)
    with pytest.raises(ValueError, match="num_folds"):
        ve.cross_validated_value_error(x, y, g, num_folds=2)
    with pytest.raises(ValueError, match="episodes"):
        ve.cross_validated_value_error(x, y, np.zeros(10), num_folds=3)
    with pytest.raises(ValueError, match="targets"):
        ve.cross_validated_value_error(x, y[:5], g)


def _tiny_dataset(path, rows=240, streams=4):
    """Breakout-like planes whose return depends on a fixed pixel; episodes of 6 rows, half the streams 'DQN'."""
    rng = np.random.default_rng(0)
    writer = td.DatasetWriter(path, num_streams=streams, observation_shape=(10, 10, 4), observation_dtype=np.uint8,
                              chunk_rows=100, metadata={"env_id": "Breakout-MinAtar", "num_actions": 3,
                                                        "dqn_streams": [False] * (streams // 2) + [True] * (streams // 2),
                                                        "frame_stack": 1, "observation_cast": "float32"})
    phase = np.arange(rows) % 6
    step_type = np.where(phase == 0, F, np.where(phase == 5, L, M))[:, None].repeat(streams, 1).astype(np.int8)
    observation = (rng.random((rows, streams, 10, 10, 4)) < 0.1).astype(np.uint8)
    reward = np.where(step_type == F, 0.0, observation[..., 0, 0, 0] + rng.random((rows, streams))).astype(np.float32)
    discount = np.where(step_type == L, 0.0, 1.0).astype(np.float32)
    writer.append(step_type=step_type, reward=reward, discount=discount, observation=observation,
                  action=np.zeros((rows, streams), np.int32))
    writer.close()
    with open(os.path.join(path, "summary.json"), "w") as f:
        f.write("{}")


@pytest.mark.parametrize("with_encoder", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_minatar_value_command_on_a_tiny_dataset(tmp_path, with_encoder):
    """Raw pixels only in the default suite (no JAX compile); with a random encoder (≈ 12 s) under `slow`."""
    runs = tmp_path / "runs"
    _tiny_dataset(str(runs / "data" / "Breakout-MinAtar"))
    (runs / "dqn_behaviour" / "Breakout-MinAtar").mkdir(parents=True)
    (runs / "dqn_behaviour" / "Breakout-MinAtar" / "summary.json").write_text("{}")
    conditions = ["random encoder D=64", "PVN T=10"] if with_encoder else ["PVN T=10"]
    code = experiment.main(["minatar-value", "--runs", str(runs), "--results", str(tmp_path), "--seeds", "0",
                            "--conditions", *conditions, "--no-pretrain"])
    assert code == 0
    result = json.loads((tmp_path / "pvn_minatar_value_breakout.json").read_text())
    # 40 episodes per stream, 5 decision rows each; 2 streams per behaviour.
    assert (result["data"]["dqn_streams"]["rows"], result["data"]["dqn_streams"]["episodes"]) == (400, 80)
    assert result["data"]["dropped_rows_unfinished"] == 0
    pixels = result["conditions"]["raw pixels"][0]
    assert pixels["num_features"] == 400 and 0.0 < pixels["dqn_streams"]["value_error"] < 2.0
    # every row's observation is distinct: Ψ̂ has one state per non-terminal row with a successor
    assert result["data"]["successor_measure"]["states"] == 4 * 40 * 5
    assert 0.0 <= pixels["successor_measure"]["value_error"] <= 1.0 and 0.0 <= pixels["successor_measure"]["mean_cos2"] <= 1.0
    if with_encoder:  # PVN T=10 is not pretrained: skipped
        assert set(result["conditions"]) == {"raw pixels", "random encoder D=64"}
        rand = result["conditions"]["random encoder D=64"][0]
        assert rand["num_features"] == 64 and 0.0 < rand["dqn_streams"]["value_error"] < 2.0
    else:
        assert set(result["conditions"]) == {"raw pixels"}
    assert (tmp_path / "pvn_minatar_value_breakout.md").exists() and (tmp_path / "pvn_minatar_value_breakout.png").exists()


def test_minatar_value_dry_run_lists_the_pretraining_it_needs(tmp_path, capsys):
    assert experiment.main(["minatar-value", "--dry-run", "--seeds", "1", "--conditions", "PVN T=100 D=64",
                            "--runs", str(tmp_path / "runs"), "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "--num-tasks 100 --num-features 64 --seed 1" in out and "algorithms.dqn.train" in out


@pytest.mark.slow
def test_random_encoder_is_the_pvn_learners_initial_encoder():
    import jax

    from algorithms.pvn import learner as learner_lib
    from algorithms.pvn import networks

    cfg = networks.EncoderConfig(num_features=32)
    example = np.zeros((1, 10, 10, 4), np.float32)
    ours = experiment.random_encoder_params(cfg, seed=3, num_actions=3, example=example)
    learner = learner_lib.make_learner(learner_lib.LearnerConfig(encoder=cfg, num_actions=3, num_tasks=8))
    theirs = networks.encoder_params(learner.init(jax.random.PRNGKey(3), example).params)
    assert sorted(ours) == sorted(theirs)
    jax.tree.map(np.testing.assert_array_equal, ours, theirs)


def test_empirical_successor_measure_hand_computed():
    # stream 0: x0 -a0-> x1 -a0-> x2 (termination), x0 -a0-> x2 (termination).
    # stream 1: x0 -a1-> x0 -a1-> x0 -a0-> x1 -a1-> x3 (truncation).
    state = np.array([[0, 0], [1, 0], [2, 0], [0, 1], [2, 3]])
    action = np.array([[0, 1], [0, 1], [0, 0], [0, 1], [0, 0]])
    step_type = np.array([[F, F], [M, M], [L, M], [F, M], [L, L]])
    discount = np.array([[1, 1], [1, 1], [0, 1], [1, 1], [0, 1]], float)
    gamma = 0.9
    sm = ve.empirical_successor_measure(state, action, discount, step_type, num_actions=2, gamma=gamma)
    # x0: a0 -> x1 in 2 of 3, else terminates; a1 -> x0 always: P^unif(x0) = ½ δ_x0 + ⅓ δ_x1. x1: a0 terminates,
    # a1 leaves to x3, never seen with a transition out: P^unif(x1) = 0. Row 2 → 3 is no transition (LAST).
    np.testing.assert_array_equal(sm.states, [0, 1])
    expected = np.linalg.inv(np.eye(2) - gamma * np.array([[0.5, 1 / 3], [0.0, 0.0]]))
    np.testing.assert_allclose(sm.psi, expected)
    np.testing.assert_allclose(sm.psi[0], [1 / (1 - 0.45), 0.3 / (1 - 0.45)])
    assert sm.all_actions_seen == 1.0
    assert sm.escaped == pytest.approx(1 / 5)  # 5 transitions into live states, one of them into x3
    only_two = ve.empirical_successor_measure(state, action, discount, step_type, num_actions=3, gamma=gamma)
    assert only_two.all_actions_seen == 0.0  # action 2 never taken
    np.testing.assert_allclose(only_two.psi, expected)  # the mean runs over the actions that were taken
    with pytest.raises(ValueError, match="gamma"):
        ve.empirical_successor_measure(state, action, discount, step_type, num_actions=2, gamma=1.0)


def test_empirical_successor_measure_of_uniform_data_approaches_the_true_one():
    """Sampled from a random 6-state MDP under the uniform policy, Ψ̂ → (I − γ P^unif)⁻¹ (computed from P itself)."""
    rng = np.random.default_rng(7)
    num_states, num_actions, gamma, steps = 6, 3, 0.8, 40_000
    p = rng.dirichlet(np.ones(num_states + 1), size=(num_states, num_actions))  # last column: termination
    state, action, step, disc = np.zeros(steps, int), np.zeros(steps, int), np.zeros(steps, int), np.ones(steps)
    x, first = 0, True
    for t in range(steps):
        state[t], step[t] = x, F if first else M
        if step[t] == M and x == num_states:  # the termination observation
            step[t], disc[t], x, first = L, 0.0, rng.integers(num_states), True
            state[t] = num_states
            continue
        first = False
        action[t] = rng.integers(num_actions)
        x = rng.choice(num_states + 1, p=p[x, action[t]])
    sm = ve.empirical_successor_measure(state[:, None], action[:, None], disc[:, None], step[:, None],
                                        num_actions=num_actions, gamma=gamma)
    np.testing.assert_array_equal(sm.states, np.arange(num_states))
    truth = np.linalg.inv(np.eye(num_states) - gamma * p[:, :, :num_states].mean(1))
    np.testing.assert_allclose(sm.psi, truth, atol=0.05)
    assert sm.escaped == 0.0 and sm.all_actions_seen == 1.0
