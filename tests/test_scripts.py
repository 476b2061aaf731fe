"""The long-job scripts, run for a few steps as a user would run them."""

import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tasks.datafiles import shared_data_dir

ROOT = Path(__file__).resolve().parent.parent
needs_shared = pytest.mark.skipif(shared_data_dir() is None, reason="../shared/data is not beside this checkout")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@needs_shared
def test_ptb_word_smoke():
    result = _run("scripts/word_lm.py", "--epochs", "1", "--limit_train_batches", "3", "--limit_eval_batches", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ptb_small: ptb word, vocab 10000, 2x200 LSTM, 4,653,200 parameters" in result.stdout
    assert "epoch  1  lr 20.0000" in result.stdout
    assert "test perplexity" in result.stdout and "published anchor 115.9" in result.stdout


@needs_shared
def test_smnist_smoke():
    result = _run("scripts/smnist.py", "--variant", "row", "--limit_train_batches", "2", "--max_epochs", "1",
                  "--limit_eval_batches", "1", "--data_dir", str(shared_data_dir()))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test accuracy" in result.stdout and "trivial baseline 0.1135" in result.stdout


def test_denormal_speed_smoke():
    result = _run("scripts/denormal_speed.py", "--cell", "gru", "--batch", "4", "--seq_len", "20", "--hidden", "8",
                  "--reps", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "denormals flushed:" in result.stdout and "speed-up from flushing:" in result.stdout


@needs_shared
def test_wikitext2_recipe_smoke(tmp_path):
    out = tmp_path / "wt2.json"
    result = _run("scripts/word_lm.py", "--recipe", "wikitext2_examples", "--epochs", "1", "--limit_train_batches", "2",
                  "--limit_eval_batches", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wikitext2_examples: wikitext2 word, vocab 33278, 2x200 LSTM" in result.stdout
    row = json.loads(out.read_text())
    assert row["anchor"] == 100.3 and row["steps"] == 2 and row["test_perplexity"] > 1


def test_word_lm_unknown_recipe():
    result = _run("scripts/word_lm.py", "--recipe", "ptb_huge")
    assert result.returncode == 2
    assert "unknown language-model recipe 'ptb_huge'; valid choices: ptb_small, wikitext2_examples" in result.stderr


def test_vanishing_figure_smoke(tmp_path):
    out = tmp_path / "v.png"
    result = _run("scripts/vanishing_figure.py", "--seq_len", "12", "--max_steps", "2", "--test_size", "32",
                  "--models", "rnn_tanh_1x128", "lstm_1x128", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.read_bytes()[:4] == b"\x89PNG"
    rows = json.loads(out.with_suffix(".json").read_text())["runs"]
    assert [row["model"] for row in rows] == ["rnn_tanh_1x128", "lstm_1x128"]
    assert [entry["step"] for entry in rows[0]["history"]] == [0, 2] and len(rows[0]["history"][0]["norms"]["l0"]) == 12


def test_long_dependencies_smoke(tmp_path):
    out = tmp_path / "ld.json"
    result = _run("scripts/long_dependencies.py", "--lengths", "8", "16", "--max_steps", "2", "--test_size", "32",
                  "--models", "gru_1x128", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["longest_solved"] is None and len(row["runs"]) == 1  # 2 steps solve nothing: the search stops at T=8
    assert sorted(map(int, row["at_lengths"])) == [4, 8, 16, 32] and "mse" in row["at_lengths"]["8"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    out.with_suffix(".png").unlink()
    assert _run("scripts/long_dependencies.py", "--replot", "--out", str(out)).returncode == 0
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_diagnostics_cost_smoke():
    result = _run("scripts/diagnostics_cost.py", "--seq_len", "10", "--hidden_size", "8", "--batch_size", "4",
                  "--steps", "3", "--warmup", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "slowest speed ratio with diagnostics:" in result.stdout


def test_throughput_quick_writes_ratios_and_a_csv(tmp_path):
    import csv

    out = tmp_path / "speed.csv"
    result = _run("scripts/throughput.py", "--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "L/torch speed" in result.stdout and "(loop) step time / fused rnn_tanh" in result.stdout
    rows = list(csv.DictReader(out.open()))
    paths = {(r["shape"], r["cell"], r["path"]) for r in rows}
    assert {("smnist", "lstm", "torch"), ("smnist", "lstm", "lightning"), ("word_lm", "lstm", "lightning")} <= paths
    for r in rows:
        assert r["torch"] and r["device"].startswith("cpu-")
        if r["shape"] != "tiny":  # the tiny shape's rows hold the milliseconds Lightning adds, below
            assert float(r["ms_per_step"]) > 0 and float(r["speed_vs_baseline"]) > 0
    if shared_data_dir() is not None:
        assert any(r["path"] == "data" and float(r["data_share"]) > 0 for r in rows)
    kernels = {r["path"]: r for r in rows if r["shape"] == "smnist" and r["cell"] == "lstm" and r["baseline"] == "fused"}
    assert set(kernels) == {"fused", "zoo_kernel"}
    assert float(kernels["zoo_kernel"]["max_rel_diff"]) < 1e-4  # the same numbers as the fused kernel
    # which kernel ran, read off the autograd graph: oneDNN's fused LSTM, the zoo's, PyTorch's tanh loop
    assert (kernels["fused"]["kernel"], kernels["zoo_kernel"]["kernel"]) == ("onednn", "zoo")
    ran = {r["cell"]: r["kernel"] for r in rows if r["shape"] == "smnist" and r["path"] == "torch"}
    assert ran == {"rnn_tanh": "aten", "rnn_elu": "zoo", "lstm": "onednn"}
    assert "max relative difference" in result.stdout
    for r in (r for r in rows if r["path"] in ("lightning", "zoo_kernel", "loop_vs_fused_tanh")):
        # each paired speed comes with its bootstrap interval and the number of pairs behind it
        assert float(r["speed_ci95_low"]) <= float(r["speed_vs_baseline"]) <= float(r["speed_ci95_high"]), r
        assert int(r["pairs"]) >= 2
    added = {r["path"]: float(r["added_ms"]) for r in rows if r["shape"] == "tiny"}
    assert set(added) == {"lightning_with_diagnostics", "lightning_without_diagnostics",
                          "lightning_without_diagnostics_or_log"}
    # the full run ends with the frontier section (tests/test_throughput_frontier.py checks it); the rows before it
    # leave its columns empty
    frontier = [r for r in rows if r["baseline"] == "lstm_fused"]
    assert {r["cell"] for r in frontier} == {"indrnn", "cornn", "lem", "exprnn", "lru", "mingru", "minlstm"}
    assert all(r["goal"] and r["met"] for r in frontier)
    assert all(r["goal"] == r["met"] == "" for r in rows if r["baseline"] != "lstm_fused")


def _throughput_module():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import throughput
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return throughput


def test_throughput_pairs_run_until_the_time_asked_for():
    """Short steps are timed in more pairs than --reps, until the pairs took --min_seconds."""
    throughput = _throughput_module()
    torch_times, lightning_times = throughput.time_paired(throughput.TINY, "rnn_tanh", 1, 3)
    assert len(torch_times) == len(lightning_times) == 3
    torch_times, lightning_times = throughput.time_paired(throughput.TINY, "rnn_tanh", 1, 3, min_seconds=0.5)
    assert len(torch_times) == len(lightning_times) > 3  # a tiny step is a few ms: many more pairs
    assert sum(torch_times) + sum(lightning_times) >= 0.5


def test_throughput_speed_interval_brackets_the_median_and_narrows_with_pairs():
    throughput = _throughput_module()
    few = [0.8, 1.2, 0.9, 1.1, 1.0]
    low, high = throughput.speed_interval(few)
    assert low < statistics.median(few) < high
    assert throughput.speed_interval(few) == (low, high)  # seeded: the same pairs, the same interval
    many_low, many_high = throughput.speed_interval(few * 20)
    assert low <= many_low <= 1.0 <= many_high <= high and many_high - many_low < high - low


@pytest.mark.parametrize("args, message", [
    (("--reps", "0"), "--reps must be an integer >= 1, got 0"),
    (("--rounds", "0"), "--rounds must be an integer >= 1, got 0"),
    (("--warmup", "-1"), "--warmup must be an integer >= 0, got -1"),
    (("--min_seconds", "nan"), "--min_seconds must be a number >= 0, got nan"),  # pairs until nan: never done
    (("--threads", "0"), "--threads must be an integer >= 1, got 0"),
])
def test_throughput_bad_counts_are_one_clear_error(args, message):
    result = _run("scripts/throughput.py", *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where there is no GPU")
def test_throughput_on_cuda_without_a_gpu_is_one_clear_error():
    result = _run("scripts/throughput.py", "--accelerator", "cuda", "--quick")
    assert result.returncode == 2
    assert "--accelerator cuda: torch sees no CUDA device here" in result.stderr
    assert "Traceback" not in result.stderr


def test_kernel_speed_quick_compares_both_kernels_in_both_modes(tmp_path):
    import csv

    out = tmp_path / "kernels.csv"
    result = _run("scripts/kernel_speed.py", "--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pick(s) clearly disagree with the measurement" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert {(r["cell"], r["mode"]) for r in rows} == {("lstm", "train"), ("lstm", "eval"), ("gru", "train"),
                                                      ("gru", "eval")}
    assert all(float(r["fused_ms"]) > 0 and float(r["zoo_ms"]) > 0 and r["auto_picks"] in ("zoo", "fused")
               for r in rows)


def test_gpu_pack_stops_at_its_window_and_the_next_call_finishes_the_tier(tmp_path):
    state = tmp_path / "pack"
    args = ("scripts/gpu_pack.py", "--tier", "smoke", "--benchmarks", "copy_t100", "--state", str(state),
            "--no_throughput", "--models", "lstm_1x128", "gru_1x128", "rnn_tanh_1x128")
    first = _run(*args, "--call_seconds", "21")  # a 1-second window: the suite is stopped at once
    assert first.returncode == 3, first.stderr[-3000:]
    assert "pair(s) left; call again to resume" in first.stdout
    second = _run(*args, "--call_seconds", "280")
    assert second.returncode == 0, second.stderr[-3000:]
    records = sorted(p.name for p in (state / "records" / "copy_t100" / "smoke").glob("*.json"))
    assert records == ["gru_1x128.s0.json", "lstm_1x128.s0.json", "rnn_tanh_1x128.s0.json"]
    for path in (state / "records" / "copy_t100" / "smoke").glob("*.json"):
        assert json.loads(path.read_text())["environment"]["device_name"]  # each record names its device
    third = _run(*args, "--call_seconds", "60")  # nothing left: a call that only says so
    assert third.returncode == 0 and "all done" in third.stdout
    bad = _run("scripts/gpu_pack.py", "--call_seconds", "5")
    assert bad.returncode == 2 and "--call_seconds must be more than 20" in bad.stderr
    unknown = _run("scripts/gpu_pack.py", "--tier", "smoke", "--benchmarks", "copy_t100", "--models", "lsmt_1x128")
    assert unknown.returncode == 2 and "unknown model of benchmark 'copy_t100' 'lsmt_1x128'; valid choices: " \
        "lstm_1x128" in unknown.stderr, unknown.stderr


def test_first_look_runs_the_story_and_prints_its_table_and_figure(tmp_path):
    result = _run("scripts/first_look.py", "--tier", "smoke", "--out", str(tmp_path / "fl"), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    for model in ("rnn_tanh_1x128", "rnn_relu.identity.clip1", "gru_1x128", "lstm_1x128.chrono"):
        assert re.search(rf"^{re.escape(model)} ", result.stdout, re.M), result.stdout
    table = tmp_path / "fl" / "board" / "first_look.smoke.md"
    assert f"table:  {table}" in result.stdout and table.is_file()
    assert (tmp_path / "fl" / "board" / "first_look.smoke.curves.png").is_file()
    again = _run("scripts/first_look.py", "--tier", "smoke", "--out", str(tmp_path / "fl"), "--quiet")
    assert "first_look.smoke.gru_1x128.s0: test mse" in result.stdout
    assert again.returncode == 0 and ": test mse" not in again.stdout  # every run recorded: none runs again
