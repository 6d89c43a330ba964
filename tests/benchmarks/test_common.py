"""benchmarks.common: the shared write-out of every benchmark."""
import os

import pytest

from benchmarks import common


def test_markdown_table_aligns_and_checks_widths():
    text = common.markdown_table(["a", "b"], [[1, "x"], [22, "y"]], align="rl")
    assert text.splitlines() == ["| a | b |", "|---:|---|", "| 1 | x |", "| 22 | y |"]
    with pytest.raises(ValueError):
        common.markdown_table(["a", "b"], [[1]])


def test_measurement_ratio_is_speed_up_for_rates_and_times():
    rate = common.measurement("g", "n", 200.0, "steps/s", baseline="b", baseline_value=100.0)
    time_ = common.measurement("g", "n", 2.0, "ms", baseline="b", baseline_value=4.0, higher_is_better=False)
    alone = common.measurement("g", "n", 2.0, "ms")
    assert rate["ratio"] == 2.0 and time_["ratio"] == 2.0 and alone["ratio"] is None


def test_jsonl_round_trip_and_results_path(tmp_path):
    path = common.results_path(str(tmp_path / "r"), "bench")
    assert os.path.basename(path) == f"bench_{common.today()}_{common.device_name()}.jsonl"
    common.append_jsonl(path, {"a": 1})
    common.append_jsonl(path, {"b": [1.5]})
    assert common.read_jsonl(path) == [{"a": 1}, {"b": [1.5]}]
    assert os.path.basename(common.results_path(str(tmp_path), "")) == f"{common.today()}_{common.device_name()}.jsonl"


def test_timed_reports_median_and_spread():
    out = common.timed(lambda: None, repeats=3)
    assert out["repeats"] == 3 and out["min_s"] <= out["median_s"] <= out["max_s"]
