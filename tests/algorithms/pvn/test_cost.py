"""``python -m algorithms.pvn.cost``: the measured update of a preset's network and its projection."""
import json

import pytest

from algorithms.pvn import cost


def test_random_batch_has_the_atari_layout():
    import jax

    batch = cost.random_batch(jax.random.PRNGKey(0), 3, num_actions=18)
    assert batch.observation.shape == (3, 4, 84, 84) and str(batch.observation.dtype) == "uint8"
    assert batch.action.shape == (3,) and int(batch.action.max()) < 18


@pytest.mark.slow
def test_cost_of_a_small_batch_scales_to_the_preset(tmp_path):
    out = tmp_path / "cost.json"
    assert cost.main(["--preset", "paper", "--impala-width", "1", "--batch-size", "2", "--steps", "1",
                      "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["td_loss_finite"] and result["batch_scale"] == 256 / 2
    assert result["preset_step_cpu_s"] == pytest.approx(result["median_step_cpu_s"] * 128, rel=1e-2)
    assert result["projected_cpu_hours_per_run"] == pytest.approx(
        result["updates_per_run"] * result["preset_step_cpu_s"] / 3600, rel=1e-2)


def test_bad_batch_size_is_one_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cost.main(["--preset", "paper", "--batch-size", "1000"])
    assert exit_info.value.code == 2
    assert "--batch-size must be in [1, 256]" in capsys.readouterr().err
