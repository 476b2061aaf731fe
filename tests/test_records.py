"""Run records: the outcome of a run decided on its test split, learning curves, version-1 records read as version 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tasks.adding import AddingProblem
from tasks.copy_memory import CopyMemory
from zoo.records import DIVERGED_FACTOR, SCHEMA_VERSION, STATES, find_records, outcome, read_record

ROOT = Path(__file__).resolve().parent.parent
ADDING = AddingProblem(seq_len=100).task_spec.to_dict()  # target MSE 0.01, trivial 1/6
COPY = CopyMemory(seq_len=100).task_spec.to_dict()  # target accuracy, trivial: the memoryless predictor's


@pytest.mark.parametrize("mse,state", [
    (0.0099, "solved"), (0.01, "solved"), (0.0102, "unsolved"),  # the target, on the test split
    (0.15, "unsolved"), (0.165, "failed"), (0.1667, "failed"), (1.3, "failed"),  # no better than always 1.0
    (1.7, "diverged"), (3429.0, "diverged"), (math.inf, "diverged"), (math.nan, "diverged"),
])
def test_the_adding_problems_outcomes(mse, state):
    result = outcome(ADDING, {"mse": mse}, diverged=False)
    assert result["state"] == state and result["solved"] == (state == "solved")
    assert result["reason"]


def test_a_run_stopped_on_a_nonfinite_loss_is_diverged_whatever_its_numbers():
    assert outcome(ADDING, {}, diverged=True)["state"] == "diverged"
    assert outcome(ADDING, {"mse": 0.001}, diverged=True)["state"] == "diverged"


def test_the_diverged_factor_is_the_stated_multiple_of_the_baseline():
    baseline = ADDING["baselines"]["mse"]
    assert outcome(ADDING, {"mse": DIVERGED_FACTOR * baseline * 0.99}, False)["state"] == "failed"
    assert outcome(ADDING, {"mse": DIVERGED_FACTOR * baseline * 1.01}, False)["state"] == "diverged"


def test_copy_memory_a_hair_above_the_memoryless_baseline_learnt_nothing():
    baseline = COPY["baselines"]["accuracy"]
    assert outcome(COPY, {"accuracy": baseline + 0.0002}, False)["state"] == "failed"  # the committed LSTM's
    assert outcome(COPY, {"accuracy": baseline + 0.0114}, False)["state"] == "unsolved"  # the committed GRU's
    assert outcome(COPY, {"accuracy": 1.0}, False)["state"] == "solved"


def test_a_task_without_a_target_is_finished_not_solved():
    lm = {**ADDING, "target": None, "target_metric": "perplexity", "target_mode": "min",
          "baselines": {"perplexity": 600.0}}
    assert outcome(lm, {"perplexity": 120.0}, False) | {"reason": ""} == {"state": "finished", "solved": False,
                                                                        "reason": ""}
    assert outcome(lm, {"perplexity": 590.0}, False)["state"] == "failed"
    assert outcome(lm, {"perplexity": 7000.0}, False)["state"] == "diverged"


def test_every_committed_record_reads_with_a_state_consistent_with_its_test_metric():
    paths = find_records(ROOT / "leaderboards" / "records")
    assert paths
    for path in paths:
        record = read_record(path)
        assert record["schema_version"] == SCHEMA_VERSION and record["state"] in STATES, path
        assert record == {**record, **outcome(record["task"], record["metrics"]["test"], record["diverged"])}, path
        metric, target = record["task"]["target_metric"], record["task"]["target"]
        value = record["metrics"]["test"].get(metric)
        if record["solved"]:
            assert value <= target if record["task"]["target_mode"] == "min" else value >= target, path


def test_a_version_1_record_is_read_as_version_2(tmp_path):
    # A copy of a committed version-1 record (gradient_study rnn_elu.identity.clip1 s2), kept after its re-run
    source = ROOT / "tests/data/record_v1_gradient_study.json"
    old = json.loads(source.read_text())
    assert old["schema_version"] == 1
    record = read_record(source)
    assert record["upgraded_from"] == 1 and record["curves"] is None
    assert record["state"] == "diverged" and old["diverged"] is False  # MSE 3,429: finite, and diverged


def test_a_benchmark_run_records_its_state_and_learning_curves(tmp_path):
    import dataclasses

    from zoo.app.catalogue import Budget, get_benchmark
    from zoo.app.runner import execute

    bench = get_benchmark("adding_t100")
    tiny = Budget(max_steps=40, data={"seq_len": 10, "batch_size": 8, "batches_per_epoch": 4, "val_size": 16,
                                      "test_size": 16}, seeds=(0,))
    bench = dataclasses.replace(bench, tiers={"smoke": tiny}, stop_at_target=False)
    record = execute(bench.run_config("smoke", "gru_1x128"), seed=0, weights_dir=None)
    assert record["schema_version"] == SCHEMA_VERSION and record["state"] in STATES
    assert record["solved"] == (record["state"] == "solved")
    curves = record["curves"]
    assert curves["every"] == 1 and [step for step, _ in curves["train_loss"]] == list(range(1, 41))
    assert all(math.isfinite(loss) for _, loss in curves["train_loss"])
    assert curves["val"]["metric"] == "val_mse"
    assert [step for step, _ in curves["val"]["points"]] == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]  # every validation
    assert "curves" not in record["convergence"]


def test_reproduce_re_creates_the_records_thread_count(monkeypatch):
    """A CPU run's sums are split by thread: a re-run uses the record's torch thread count, then puts it back."""
    import torch

    from zoo.app import runner

    old = {"id": "r", "seed": 0, "steps": 5, "config": {"trainer": {}},
           "environment": {"device_name": "x", "packages": {}, "cpu_threads": 1, "device": "cpu"}}
    seen = []

    def execute(config, seed, **kwargs):
        seen.append(torch.get_num_threads())
        return {"environment": {"device_name": "x", "packages": {}}}

    monkeypatch.setattr(runner, "read_record", lambda path: old)
    monkeypatch.setattr(runner, "execute", execute)
    monkeypatch.setattr(runner, "compare_runs", lambda a, b, tolerance: {"verdict": "identical"})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = runner.reproduce("record.json")
        assert seen == [1] and torch.get_num_threads() == 2
        assert "re-run with the record's 1 torch thread(s) (this process had 2)" in result["notes"]
    finally:
        torch.set_num_threads(before)


def test_a_wall_clock_budget_is_refused():
    from zoo.app.catalogue import get_benchmark
    from zoo.app.runner import execute
    from zoo.errors import ZooError

    config = get_benchmark("adding_t100").run_config("smoke", "gru_1x128")
    config["trainer"]["max_minutes"] = 5.0
    with pytest.raises(ZooError, match=r"has a wall-clock budget \(5.0 minutes\); budgets are steps or epochs"):
        execute(config, seed=0, weights_dir=None)


def test_no_benchmark_has_a_wall_clock_budget():
    from zoo.app.catalogue import BENCHMARKS

    for bench in BENCHMARKS.values():
        for tier in bench.tiers:
            for model in bench.models:
                trainer = bench.run_config(tier, model)["trainer"]
                assert "max_minutes" not in trainer and (trainer["max_steps"] > 0 or trainer["max_epochs"] > 0)
