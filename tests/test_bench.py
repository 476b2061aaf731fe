"""Benchmarks, run records, suites that resume, and reproducing a record."""

import json
import os
import re
import subprocess
import sys
import math

import pytest
from safetensors.torch import load_file

from zoo.app.catalogue import BENCHMARKS, MIN_VAL_POINTS, STUDY_ACTIVATIONS, STUDY_CLIPS, STUDY_INITS, TIERS, get_benchmark
from zoo.app.runner import execute, reproduce, run_benchmark
from zoo.app.cli import main
from zoo.errors import ZooError
from zoo.files import sha256_file
from zoo.records import SCHEMA_VERSION, read_record, record_path, write_record

REQUIRED = ("adding_t100", "adding_t200", "adding_t500", "adding_t1000", "copy_t100", "smnist", "psmnist",
            "ptb_word", "wikitext2_word", "ptb_char", "gradient_study")


def test_every_benchmark_is_defined_with_every_tier_and_a_json_config():
    assert set(REQUIRED) <= set(BENCHMARKS)
    for bench in BENCHMARKS.values():
        assert tuple(bench.tiers) == TIERS, bench.name
        for tier in TIERS:
            for model in bench.models:
                config = bench.run_config(tier, model)
                assert json.loads(json.dumps(config)) == config
        assert bench.tier_seeds("smoke") == (0,)
    assert len(get_benchmark("adding_t100").tier_seeds("cpu")) >= 3


def validations_in(config) -> float:
    """How many times a run of ``config`` validates when it trains its whole budget."""
    t = config["trainer"]
    if t["max_steps"] > 0:  # the synthetic tasks: an epoch is batches_per_epoch fresh batches
        return t["max_steps"] / config["data"]["args"].get("batches_per_epoch", 100)
    per_epoch = 1 if t["val_check_interval"] is None else round(1 / t["val_check_interval"])
    return t["max_epochs"] * per_epoch


@pytest.mark.parametrize("tier", ["cpu", "full"])
def test_every_run_validates_often_enough_for_a_learning_curve(tier):
    for bench in BENCHMARKS.values():
        for model in bench.models:
            assert validations_in(bench.run_config(tier, model)) >= MIN_VAL_POINTS, (bench.name, model)


def test_an_epoch_budget_validates_inside_its_epochs_and_the_trainer_does_so(tmp_path, tiny_config):
    assert get_benchmark("smnist").run_config("cpu", "lstm_1x128")["trainer"]["val_check_interval"] == 0.5
    assert get_benchmark("ptb_char").run_config("cpu", "lstm_1x512")["trainer"]["val_check_interval"] == 1 / 7
    config = tiny_config()
    config["data"]["args"]["batches_per_epoch"] = 4
    config["trainer"].update(max_steps=-1, max_epochs=2, val_check_interval=0.5)
    record = execute(config, 0, weights_dir=None)
    assert len(record["curves"]["val"]["points"]) == 4


def test_study_crosses_activation_init_and_clipping_with_references():
    study = get_benchmark("gradient_study")
    grid = [m for m in study.models if m.startswith("rnn_")]
    assert len(grid) == len(STUDY_ACTIVATIONS) * len(STUDY_INITS) * len(STUDY_CLIPS) == 40
    assert {"lstm.default.clip1", "gru.default.clip1"} <= set(study.models)
    config = study.run_config("cpu", "rnn_elu.identity.noclip")
    assert config["model"]["backbone"]["nonlinearity"] == "elu"
    assert config["model"]["backbone"]["recurrent_init"] == "identity"
    assert config["trainer"]["gradient_clip_val"] is None
    assert config["data"]["args"]["seq_len"] == 100 and config["lengths"] == [50, 100, 200, 400]


@pytest.mark.parametrize("call, message", [
    (lambda: get_benchmark("adding_t99"), "unknown benchmark 'adding_t99'; valid choices: adding_t100"),
    (lambda: get_benchmark("adding_t100").run_config("gpu", "lstm_1x128"), "unknown tier of benchmark"),
    (lambda: get_benchmark("adding_t100").run_config("cpu", "transformer"), "valid choices: lstm_1x128"),
    (lambda: run_benchmark("adding_t100", "cpu", seeds=[-1]), "seed must be an integer >= 0"),
])
def test_bad_benchmark_input_names_the_choices(call, message):
    with pytest.raises(ZooError, match=message.replace("(", r"\(")):
        call()


def test_record_has_everything_the_run_did(tmp_path, tiny_config):
    record = execute(tiny_config(), 3, weights_dir=tmp_path)
    assert record["schema_version"] == SCHEMA_VERSION and record["seed"] == 3
    assert record["id"] == "gradient_study.smoke.rnn_tanh.identity.clip1.s3"
    assert record["steps"] == 6 and record["stopped_by"] == "max_steps" and not record["diverged"]
    assert set(record["metrics"]["test"]) >= {"mse", "accuracy"} and record["metrics"]["best"]["metric"] == "val_mse"
    assert record["stability"]["steps"] == 6 and record["stability"]["clip_share"] is not None
    assert len(record["gradients"]["final_norms_l0"]) == 12
    assert set(record["lengths"]) == {"6", "12", "24"}
    assert record["data"] == {"synthetic": "AddingProblem", "data_seed": 1234}
    env = record["environment"]
    assert env["flush_denormal"] is True and env["deterministic"]["algorithms"] is True
    assert env["packages"]["torch"] and env["git"].keys() == {"commit", "dirty"}
    weights = tmp_path / record["weights"]["file"]
    assert sha256_file(weights) == record["weights"]["sha256"] and weights.stat().st_size == record["weights"]["bytes"]
    assert sum(t.numel() for t in load_file(weights).values()) == record["params"]


def test_suite_writes_one_record_per_pair_and_resumes(tmp_path):
    records = tmp_path / "records"
    kwargs = dict(models=["rnn_tanh_1x128", "gru_1x128"], records_dir=records, weights_dir=tmp_path / "w",
                  checkpoints_dir=tmp_path / "c", progress=False)
    first = run_benchmark("adding_t100", "smoke", **kwargs)
    assert [d["status"] for d in first] == ["ran", "ran"]
    path = record_path(records, "adding_t100", "smoke", "gru_1x128", 0)
    mtime = path.stat().st_mtime_ns
    again = run_benchmark("adding_t100", "smoke", **kwargs)
    assert [d["status"] for d in again] == ["exists", "exists"] and path.stat().st_mtime_ns == mtime
    assert not list(records.rglob(".*"))  # no temporary file left behind
    path.write_text(path.read_text()[:100])  # a truncated record is an error, not a skip or a silent redo
    with pytest.raises(ZooError, match="not valid JSON"):
        run_benchmark("adding_t100", "smoke", **kwargs)


def test_reproduce_is_identical_on_cpu_and_says_when_it_differs(tmp_path, tiny_config):
    path = tmp_path / "r.json"
    write_record(path, execute(tiny_config(), 0, weights_dir=tmp_path))
    result = reproduce(path)
    assert result["verdict"] == "identical" and result["weights_identical"] and result["difference"] == 0
    record = json.loads(path.read_text())
    record["metrics"]["test"]["mse"] += 0.001  # inside the study's tolerance of 0.002
    path.write_text(json.dumps(record))
    assert reproduce(path)["verdict"] == "within tolerance"
    record["metrics"]["test"]["mse"] += 0.01
    path.write_text(json.dumps(record))
    assert main(["reproduce", str(path)]) == 1


def test_reproduce_a_folder_names_every_record_the_code_no_longer_gives(tmp_path, tiny_config, capsys):
    root = tmp_path / "records"
    for model, steps in (("rnn_tanh.identity.clip1", 6), ("gru.default.clip1", 4)):
        record = execute(tiny_config(model, steps=steps), 0, weights_dir=None)
        write_record(record_path(root, record["benchmark"], record["tier"], record["model"], 0), record)
    assert main(["reproduce", str(root)]) == 0
    assert "2 of 2 records reproduced" in capsys.readouterr().out
    tampered = record_path(root, record["benchmark"], record["tier"], "gru.default.clip1", 0)
    record = read_record(tampered)
    record["metrics"]["test"]["mse"] += 1.0  # what an older code's number would look like
    write_record(tampered, record)
    assert main(["reproduce", str(root)]) == 1
    out = capsys.readouterr().out
    assert "1 of 2 records reproduced; the current code no longer gives: gradient_study.smoke.gru.default.clip1.s0" in out
    assert main(["reproduce", str(root), "--max_seconds", "0"]) == 2


def test_divergence_is_a_record_not_a_crash(tmp_path, tiny_config):
    config = tiny_config("rnn_relu.he.noclip", steps=30)
    config["model"]["optim"]["lr"] = 1e4
    record = execute(config, 0, weights_dir=tmp_path)
    assert record["diverged"] and record["diverged_reason"].startswith("diverged at step")
    assert record["metrics"]["test"] == {} and record["weights"] is None and record["lengths"] == {}
    path = write_record(tmp_path / "d.json", record)
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


def test_read_record_rejects_other_files_and_versions(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"schema": "rnn-zoo/run-record", "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ZooError, match=f"schema version {SCHEMA_VERSION + 1}; this rnn-zoo reads versions 1, 2"):
        read_record(path)
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ZooError, match="is not an rnn-zoo run record"):
        read_record(path)
    with pytest.raises(ZooError, match="does not exist"):
        read_record(tmp_path / "missing.json")


def test_bench_cli(tmp_path, capsys):
    assert main(["bench", "list"]) == 0
    assert "gradient_study" in capsys.readouterr().out
    assert main(["bench", "run", "adding_t42", "--tier", "smoke"]) == 2
    assert "unknown benchmark 'adding_t42'" in capsys.readouterr().err
    assert main(["bench", "run", "adding_t100", "--tier", "smoke", "--models", "rnn_tanh_1x128", "--records",
                 str(tmp_path / "r"), "--weights", str(tmp_path / "w"), "--no_progress"]) == 0
    assert "1 ran, 0 diverged, 0 already recorded" in capsys.readouterr().out
    assert math.isfinite(read_record(record_path(tmp_path / "r", "adding_t100", "smoke", "rnn_tanh_1x128", 0))
                         ["metrics"]["test"]["mse"])


def test_own_model_runs_under_the_benchmark_budget_and_compares(tmp_path, capsys):
    own = tmp_path / "mine.yaml"
    own.write_text("name: my_gru_1x32\nbackbone: {cell: gru, hidden_size: 32}\noptim: {name: adam, lr: 0.003}\n"
                   "clip_val: 1.0\n")
    board, mine = tmp_path / "board", tmp_path / "mine"
    common = ["--tier", "smoke", "--weights", str(tmp_path / "w"), "--no_progress"]
    assert main(["bench", "run", "adding_t100", "--models", "rnn_tanh_1x128", "--records", str(board), *common]) == 0
    assert main(["bench", "run", "adding_t100", "--model_config", str(own), "--records", str(mine),
                 *common]) == 0
    record = read_record(record_path(mine, "adding_t100", "smoke", "my_gru_1x32", 0))
    assert record["config"]["model"]["backbone"]["hidden_size"] == 32
    assert record["config"]["trainer"] == get_benchmark("adding_t100").run_config("smoke", "gru_1x128")["trainer"]
    capsys.readouterr()
    assert main(["leaderboard", "compare", str(mine), "--records", str(board)]) == 0
    out = capsys.readouterr().out
    # ten smoke steps learn nothing: the run is failed on the test split, so it is not ranked
    assert "failed, so it has no rank" in out and "apples to apples" in out


def test_a_run_made_to_explode_is_a_diverged_record_counted_apart_and_never_a_nan(tmp_path, capsys):
    """relu RNN, He init, no clipping, lr 1e4: the suite goes on, the record says so, the board counts it apart."""
    boom = tmp_path / "boom.yaml"
    boom.write_text("name: relu_boom\nbackbone: {cell: rnn, nonlinearity: relu, recurrent_init: he_normal, hidden_size: 32}\n"
                    "optim: {name: sgd, lr: 10000.0}\n")
    records, out = tmp_path / "r", tmp_path / "boards"
    assert main(["bench", "run", "adding_t100", "--tier", "smoke", "--models", "gru_1x128", "--model_config", str(boom),
                 "--records", str(records), "--weights", str(tmp_path / "w"), "--checkpoints", "none",
                 "--no_progress"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"adding_t100\.smoke\.relu_boom\.s0: diverged at step \d+: ", printed)
    assert "1 ran, 1 diverged" in printed
    record = read_record(record_path(records, "adding_t100", "smoke", "relu_boom", 0))
    assert record["diverged"] and record["stopped_by"] == "diverged" and record["metrics"]["test"] == {}
    assert main(["leaderboard", "build", "--records", str(records), "--out", str(out), "--readme",
                 str(tmp_path / "README.md"), "--allow_dirty"]) == 0
    table = (out / "adding_t100.smoke.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("|") and "relu_boom" in line)
    assert "| – | 0 | 0/1 | 0/1 | 1/1 |" in row  # no median, n scored 0, solved 0, failed 0, diverged 1 of 1
    for path in out.rglob("*"):
        if path.suffix in (".md", ".csv", ".json"):
            assert not re.search(r"\bnan\b|\binf\b", path.read_text(), re.IGNORECASE), path


@pytest.mark.parametrize("text, message", [
    ("name: x\nbackbone: {cell: lstm, hidden: 3}\n", r"unknown backbone setting\(s\) hidden; valid settings: cell"),
    ("name: x\nbackbone: {cell: lsmt}\n", "unknown cell 'lsmt'; valid choices: rnn, lstm, gru"),
    ("name: x\nbackbone: {}\nlr: 3\n", r"unknown keys \['lr'\]; valid keys: name, backbone"),
    ("backbone: {}\n", "must be a mapping with at least 'name' and 'backbone'"),
    ("name: [unclosed\n", "is not valid YAML"),
])
def test_bad_model_config_is_one_clear_error(tmp_path, capsys, text, message):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    assert main(["bench", "run", "adding_t100", "--tier", "smoke", "--model_config", str(path), "--records",
                 str(tmp_path / "r")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_two_suites_split_pairs_and_a_dead_suites_lock_is_taken_over(tmp_path):
    records = tmp_path / "records"
    kwargs = dict(models=["rnn_tanh_1x128"], records_dir=records, weights_dir=None, checkpoints_dir=None,
                  progress=False)
    path = record_path(records, "adding_t100", "smoke", "rnn_tanh_1x128", 0)
    lock = path.with_name(f".{path.name}.lock")
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(  # another live suite holds the pair
        [sys.executable, "-c", f"import filelock, time; held = filelock.FileLock({str(lock)!r}); held.acquire(); "
                               "print('held', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert [d["status"] for d in run_benchmark("adding_t100", "smoke", **kwargs)] == ["running elsewhere"]
        assert not path.exists()
    finally:
        holder.kill()  # its suite was killed: the operating system lets its lock go
        holder.wait()
    assert [d["status"] for d in run_benchmark("adding_t100", "smoke", **kwargs)] == ["ran"]
    assert path.exists() and not lock.exists()


SUITE = ["bench", "run", "adding_t100", "--tier", "smoke", "--no_progress"]


def _suite(folder, *, records="r"):
    """``zoo bench run`` in a child process (one thread), records under ``folder/records``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "zoo", *SUITE, "--records", records, "--weights", "w",
                             "--checkpoints", "c"], cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finished(proc) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out


def _records(folder) -> dict[str, dict]:
    """Every record of the suite's folder, checked: each reads, and its weights file is the one it names."""
    found = {}
    for path in sorted((folder / "r").rglob("*.json")):
        record = read_record(path)
        assert sha256_file(folder / "w" / record["weights"]["file"]) == record["weights"]["sha256"]
        found[record["id"]] = record
    return found


def test_a_suite_killed_at_a_random_point_and_started_again_ends_with_every_record_once(tmp_path):
    """The kill may land in start-up, mid-run, mid-checkpoint or mid-record-write: the end is the same."""
    import random
    import time

    (tmp_path / "whole").mkdir(), (tmp_path / "killed").mkdir()
    whole = _suite(tmp_path / "whole")
    start = time.monotonic()
    _finished(whole)
    took = time.monotonic() - start
    delay = random.uniform(0.2, took)  # printed by the assertion below when it fails
    victim = _suite(tmp_path / "killed")
    time.sleep(delay)
    victim.kill()
    victim.wait()
    out = _finished(_suite(tmp_path / "killed"))
    expected, got = _records(tmp_path / "whole"), _records(tmp_path / "killed")
    assert len(expected) == len(get_benchmark("adding_t100").models), out
    assert set(got) == set(expected), f"killed after {delay:.2f} s of {took:.2f} s"
    for rid, record in expected.items():  # resumed or rerun, every run ends where it would have
        assert got[rid]["metrics"] == record["metrics"] and got[rid]["weights"] == record["weights"], rid
    leftovers = [p.name for p in (tmp_path / "killed" / "r").rglob("*") if p.is_file() and p.suffix != ".json"]
    assert not leftovers and not list((tmp_path / "killed" / "c").rglob("*"))  # checkpoints and their folders gone


def test_two_suites_on_one_records_folder_lose_nothing_and_run_nothing_twice(tmp_path):
    one, two = _suite(tmp_path), _suite(tmp_path)
    outs = [_finished(one), _finished(two)]
    ran = [int(re.search(r"(\d+) ran", out).group(1)) for out in outs]
    models = get_benchmark("adding_t100").models
    assert sum(ran) == len(models), outs  # every pair by exactly one of them
    assert set(_records(tmp_path)) == {f"adding_t100.smoke.{m}.s0" for m in models}
    assert not [p for p in (tmp_path / "r").rglob(".*")]  # no lock, no temporary file


def test_wandb_run_id_is_recorded(tmp_path):
    pytest.importorskip("wandb")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}
    result = subprocess.run([sys.executable, "-m", "zoo.app.cli", "bench", "run", "adding_t100", "--tier", "smoke",
                             "--models", "rnn_tanh_1x128", "--records", "r", "--weights", "w", "--wandb",
                             "--no_progress"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = read_record(record_path(tmp_path / "r", "adding_t100", "smoke", "rnn_tanh_1x128", 0))["wandb_run_id"]
    # WANDB_DIR honoured, each run in its own folder there (zoo.app.run_logs)
    assert run_id and list((tmp_path / "adding_t100.smoke.rnn_tanh_1x128.s0" / "wandb").glob(f"offline-run-*-{run_id}"))


def test_frontier_cells_run_every_adding_length_and_smnist_with_their_papers_settings():
    for t in (100, 200, 500, 1000):
        models = get_benchmark(f"adding_t{t}").models
        assert {"indrnn_2x128", "cornn_1x128", "lem_1x128", "mingru_3x128", "minlstm_3x128", "lru_1x128"} <= set(models)
        indrnn = models["indrnn_2x128"]
        assert indrnn.backbone.cell_options == {"recurrent_max_len": t} and indrnn.optim.lr == 2e-4  # |u| <= 2^(1/T)
        assert models["cornn_1x128"].clip_val is None and models["cornn_1x128"].optim.lr == 2e-2
    smnist, psmnist = get_benchmark("smnist").models, get_benchmark("psmnist").models
    assert smnist["lem_1x128"].backbone.cell_options == {"dt": 0.21} and smnist["lem_1x128"].optim.lr == 0.0018
    assert psmnist["lem_1x128"].backbone.cell_options == {"dt": 0.31}
    assert psmnist["cornn_1x256"].backbone.cell_options == {"dt": 0.076, "gamma": 0.4, "epsilon": 8.0}
