import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zoo import runtime
from zoo.app.cli import main

TINY = ["--data", "AddingProblem", "--data.seq_len", "12", "--data.batch_size", "8", "--data.batches_per_epoch", "3",
        "--data.val_size", "16", "--data.test_size", "16", "--trainer.max_steps", "4",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.log_every_n_steps", "1", "--seed_everything", "0"]


def _metrics(root: Path) -> list[dict]:
    (path,) = root.glob("runs/lightning_logs/version_*/metrics.csv")
    with open(path) as f:
        return list(csv.DictReader(f))


COMBINATIONS = [
    ["--model.backbone.cell", "rnn", "--model.backbone.nonlinearity", "elu", "--model.backbone.num_layers", "2",
     "--model.backbone.bidirectional", "true", "--model.backbone.dropout", "0.2",
     "--model.backbone.input_init", "he_normal", "--model.backbone.recurrent_init", "orthogonal",
     "--trainer.gradient_clip_val", "0.5", "--trainer.gradient_clip_algorithm", "value",
     "--model.optim.name", "sgd", "--model.optim.momentum", "0.9", "--model.optim.schedule", "step"],
    ["--model.backbone.cell", "lstm", "--model.backbone.recurrent_init", "orthogonal",
     "--model.backbone.forget_bias", "1.0", "--trainer.gradient_clip_val", "1.0",
     "--model.optim.name", "adamw", "--model.optim.weight_decay", "0.01", "--model.optim.schedule", "cosine"],
    ["--model.backbone.cell", "gru", "--model.backbone.input_init", "xavier_uniform",
     "--model.backbone.recurrent_init", "xavier_normal", "--model.l1", "1e-4", "--model.l2", "1e-3",
     "--model.optim.name", "rmsprop", "--model.optim.schedule", "plateau"],
    ["--model.backbone.cell", "rnn", "--model.backbone.nonlinearity", "relu", "--model.backbone.hidden_size", "12",
     "--model.backbone.recurrent_init", "identity", "--model.backbone.identity_scale", "0.9",
     "--model.backbone.bias_init", "0.0", "--trainer.precision", "bf16-mixed", "--trainer.accelerator", "cpu",
     "--trainer.deterministic", "true"],
]


@pytest.mark.parametrize("extra", COMBINATIONS, ids=["rnn-elu-bi", "lstm-ortho", "gru-xavier", "irnn-bf16"])
def test_fit_smoke(tmp_path, monkeypatch, extra):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *TINY, *extra]) == 0
    losses = [float(row["train_loss"]) for row in _metrics(tmp_path) if row.get("train_loss")]
    assert losses and all(math.isfinite(v) for v in losses)
    config = yaml.safe_load(next(tmp_path.glob("runs/lightning_logs/version_*/config.yaml")).read_text())
    assert config["model"]["backbone"]["cell"] == extra[1]


def test_yaml_config_and_test_from_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({
        "model": {"backbone": {"cell": "gru", "hidden_size": 6}, "optim": {"lr": 0.01}},
        "data": {"class_path": "tasks.AddingProblem", "init_args": {"seq_len": 9}},
    }))
    assert main(["fit", "--config", "run.yaml", *TINY, "--data.seq_len", "9"]) == 0
    hparams = yaml.safe_load(next(tmp_path.glob("runs/lightning_logs/version_0/hparams.yaml")).read_text())
    assert hparams["backbone"]["hidden_size"] == 6 and hparams["optim"]["lr"] == 0.01
    assert hparams["task"]["name"] == "adding_T9"  # the model's task came from the DataModule
    ckpt = next(tmp_path.glob("runs/lightning_logs/version_0/checkpoints/*.ckpt"))
    assert main(["test", "--config", "run.yaml", *TINY, "--data.seq_len", "9", "--ckpt_path", str(ckpt)]) == 0
    rows = _metrics_all(tmp_path)
    assert any(row.get("test_mse") for row in rows)


def _metrics_all(root: Path) -> list[dict]:
    rows = []
    for path in root.glob("runs/lightning_logs/version_*/metrics.csv"):
        with open(path) as f:
            rows += list(csv.DictReader(f))
    return rows


def test_print_config(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--data", "AddingProblem", "--model.backbone.cell", "gru", "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["backbone"]["cell"] == "gru"
    assert printed["data"]["class_path"].endswith("AddingProblem")
    assert printed["flush_denormal"] is True


@pytest.mark.parametrize("args,message", [
    (["--model.backbone.cell", "lst"], "unknown cell 'lst'; valid choices: rnn, lstm, gru"),
    (["--model.backbone.cell", "gru", "--model.backbone.nonlinearity", "relu"], "only the vanilla cell 'rnn' and the independently recurrent network 'indrnn' take one"),
    (["--model.backbone.nonlinearity", "sigmoid", "--model.backbone.cell", "rnn"], "unknown nonlinearity 'sigmoid'"),
    (["--model.backbone.recurrent_init", "glorot"], "unknown recurrent_init 'glorot'"),
    (["--model.backbone.cell", "rnn", "--model.backbone.input_init", "identity"], "identity init needs square matrices"),
    (["--model.backbone.hidden_size", "0"], "hidden_size must be an integer between 1 and 65536, got 0"),
    (["--model.backbone.num_layers", "0"], "num_layers must be an integer between 1 and 64, got 0"),
    (["--model.optim.name", "adagrad"], "unknown optimizer 'adagrad'; valid choices: sgd, adam, adamw, rmsprop"),
    (["--model.optim.schedule", "exp"], "unknown schedule 'exp'; valid choices: none, step, plateau, cosine"),
    (["--data.seq_len", "1"], r"seq_len \(T\) must be an integer between 2 and 100000, got 1"),
])
def test_bad_input_is_one_clear_error(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *TINY, *args]) == 2
    err = capsys.readouterr().err
    assert "zoo: error:" in err
    assert pytest.importorskip("re").search(message, err), err
    assert "Traceback" not in err
    assert not list(tmp_path.glob("runs/**/*.ckpt"))  # nothing trained, nothing written


def test_flush_denormal_flag(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        assert main(["fit", *TINY, "--flush_denormal", "false", "--model.backbone.hidden_size", "4"]) == 0
        assert not runtime.flush_denormal_active()
    finally:
        runtime.set_flush_denormal(True)
    assert runtime.flush_denormal_active()


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_denormals_flushed_on_import_and_env_switch():
    code = "import zoo; from zoo.runtime import flush_denormal_active as f; print(f())"
    assert _python(code, ZOO_FLUSH_DENORMAL="1").stdout.strip() == "True"
    assert _python(code, ZOO_FLUSH_DENORMAL="0").stdout.strip() == "False"
    bad = _python(code, ZOO_FLUSH_DENORMAL="maybe")
    assert bad.returncode != 0 and "ZOO_FLUSH_DENORMAL='maybe' is not a boolean" in bad.stderr
    # the command gives the one line, with the valid values, and no traceback
    for command in ([sys.executable, "-m", "zoo", "--help"], [str(Path(sys.executable).with_name("zoo")), "--help"]):
        bad = subprocess.run(command, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "ZOO_FLUSH_DENORMAL": "maybe"})
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
        assert bad.stderr.strip() == ("zoo: error: ZOO_FLUSH_DENORMAL='maybe' is not a boolean; "
                                      "valid values: 1, 0, true, false, yes, no, on, off"), bad.stderr


def test_installed_command(tmp_path):
    """The console script as a user runs it."""
    zoo_bin = Path(sys.executable).with_name("zoo")
    result = subprocess.run([str(zoo_bin), "fit", *TINY, "--model.backbone.cell", "gru"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    bad = subprocess.run([str(zoo_bin), "fit", "--data", "AddingProblem", "--model.backbone.cell", "lst"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "zoo: error: unknown cell 'lst'" in bad.stderr


def test_data_class_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model.backbone.cell", "gru"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: fit.data" in capsys.readouterr().err


def test_another_task_does_not_inherit_adding_defaults(tmp_path, monkeypatch, capsys):
    """Choosing a DataModule takes that class's own defaults, whatever came before it."""
    with pytest.raises(SystemExit):
        main(["fit", "--data", "tasks.LanguageModelling", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["init_args"]["batch_size"] == 20 and printed["data"]["init_args"]["eval_batch_size"] == 10


def test_fit_copy_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--data", "tasks.CopyMemory", "--data.seq_len", "5", "--data.batch_size", "8",
            "--data.batches_per_epoch", "2", "--data.val_size", "8", "--data.test_size", "8",
            "--model.backbone.cell", "gru", "--model.backbone.hidden_size", "8", "--trainer.max_steps", "2",
            "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false"]
    assert main(args) == 0
    losses = [float(row["train_loss"]) for row in _metrics(tmp_path) if row.get("train_loss")]
    assert losses and all(math.isfinite(v) for v in losses)
