"""scripts/cpu_hours.py: a tier's CPU-hours from budget steps x CPU-seconds a step, records first, short timings else."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import cpu_hours  # noqa: E402

from zoo.app.catalogue import get_benchmark  # noqa: E402
from zoo.app.runner import build_data  # noqa: E402

COMMITTED = ROOT / "leaderboards" / "records" / "adding_t100" / "cpu" / "gru_1x128.s0.json"


def fake_record(folder: Path, benchmark: str, tier: str, model: str, seed: int, *, seconds: float, steps: int,
                threads: int) -> None:
    """A committed record re-labelled: only its benchmark, tier, model, seed, wall time, steps and threads are read."""
    record = json.loads(COMMITTED.read_text())
    record.update(benchmark=benchmark, tier=tier, model=model, seed=seed, seconds=seconds, steps=steps,
                  id=f"{benchmark}.{tier}.{model}.s{seed}")
    record["environment"]["cpu_threads"] = threads
    path = folder / benchmark / tier / f"{model}.s{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_a_record_rate_is_its_cpu_seconds_over_its_steps(tmp_path):
    fake_record(tmp_path, "first_look", "smoke", "gru_1x128", 0, seconds=20.0, steps=10, threads=2)
    fake_record(tmp_path, "first_look", "smoke", "gru_1x128", 1, seconds=10.0, steps=10, threads=1)
    rates = cpu_hours.record_rates(tmp_path, "smoke")
    assert rates[("first_look", "gru_1x128")]["seconds_per_step"] == pytest.approx((40 + 10) / 20)
    assert rates[("first_look", "gru_1x128")]["records"] == 2
    assert cpu_hours.record_rates(tmp_path, "cpu") == {}


def test_budget_steps_are_max_steps_or_epochs_times_the_loaders_batches():
    config = get_benchmark("adding_t200").run_config("cpu", "lstm_1x128")
    assert cpu_hours.budget_steps(config, build_data(config)) == 6000
    config = get_benchmark("gradient_study").run_config("smoke", "lstm.default.clip1")
    config["trainer"].update(max_steps=-1, max_epochs=3, limit_train_batches=2)
    assert cpu_hours.budget_steps(config, build_data(config)) == 6  # 2 of its 5 batches an epoch, 3 epochs
    config["trainer"]["limit_train_batches"] = 0.6
    assert cpu_hours.budget_steps(config, build_data(config)) == 9


def test_the_table_and_total_say_which_figures_come_from_records_and_which_from_timings(tmp_path, capsys):
    fake_record(tmp_path, "first_look", "smoke", "gru_1x128", 0, seconds=36.0, steps=10, threads=1)
    out = tmp_path / "rows.json"
    assert cpu_hours.main(["--benchmarks", "first_look", "--tier", "smoke", "--timing_steps", "1",
                           "--records", str(tmp_path), "--json", str(out), "--quiet", "--calibrate"]) == 0
    stdout = capsys.readouterr().out
    rows = {row["model"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == set(get_benchmark("first_look").models)
    gru = rows["gru_1x128"]
    assert gru["from_records"] and gru["source"] == "records (1)" and gru["seconds_per_step"] == pytest.approx(3.6)
    assert gru["cpu_hours"] == pytest.approx(1 * 10 * 3.6 / 3600)  # smoke: one seed, 10 steps
    assert gru["cpu_hours_to_run"] == 0  # its one seed has a record
    timed = [row for name, row in rows.items() if name != "gru_1x128"]
    assert all(not r["from_records"] and r["source"] == "timed (1 steps)" and r["seconds_per_step"] > 0 for r in timed)
    total = sum(row["cpu_hours"] for row in rows.values())
    assert f"smoke tier: 4 runs of 4 (benchmark, model) pairs, {total:,.1f} CPU-hours in all" in stdout
    assert "at rates measured from committed records" in stdout and "at short timings" in stdout
    assert re.search(r"Short timings: 1 thread, training steps only \(no evaluation\); load average [\d.]+ when "
                     r"they began and [\d.]+ when they ended, on \d+ cores", stdout)
    assert "first_look in all" in stdout and "Record rate / short timing" in stdout


@pytest.mark.parametrize("args, message", [
    (["--benchmarks", "adding_t99"], "unknown benchmark 'adding_t99'"),
    (["--tier", "gpu"], "unknown tier 'gpu'"),
    (["--timing_steps", "0"], "--timing_steps must be an integer >= 1"),
])
def test_a_bad_benchmark_tier_or_count_is_one_error(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cpu_hours.main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_script_runs_as_a_user_runs_it():
    result = subprocess.run([sys.executable, "scripts/cpu_hours.py", "--benchmarks", "first_look", "--tier",
                             "smoke", "--timing_steps", "1", "--quiet"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "smoke tier: 4 runs of 4 (benchmark, model) pairs" in result.stdout
