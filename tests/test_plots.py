import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.app.cli import main
from zoo.app.plots import load_run, plot_lengths, read_metrics

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--data", "AddingProblem", "--data.seq_len", "12", "--data.batch_size", "8", "--data.batches_per_epoch", "4",
        "--data.val_size", "16", "--data.test_size", "16", "--trainer.max_steps", "8",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.log_every_n_steps", "1", "--seed_everything", "0", "--diagnostics_every_n_steps", "4"]


def _fit(tmp_path, monkeypatch, *extra) -> Path:
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *TINY, *extra]) == 0
    return sorted(tmp_path.glob("runs/lightning_logs/version_*"))[-1]


def test_zoo_fit_logs_diagnostics_and_zoo_plot_draws_them(tmp_path, monkeypatch):
    lstm = _fit(tmp_path, monkeypatch, "--model.backbone.cell", "lstm", "--trainer.gradient_clip_val", "0.01")
    rnn = _fit(tmp_path, monkeypatch, "--model.backbone.cell", "rnn")
    metrics = read_metrics(lstm / "metrics.csv")
    assert metrics["stability/clip_share"][-1][1] == 1.0  # a threshold of 0.01 clips every step
    assert [step for step, _ in metrics["gradients/decay_log10"]] == [0, 4, 8]
    assert len(json.loads((lstm / "grad_over_time.json").read_text())) == 3
    assert main(["plot", str(lstm), str(rnn), "--labels", "lstm", "rnn", "--out", str(tmp_path / "fig")]) == 0
    for name in ("curves", "stability", "gradients_over_time", "spectral"):
        assert (tmp_path / "fig" / f"{name}.png").read_bytes()[:8] == PNG
    assert not list((tmp_path / "fig").glob(".*"))  # no temporary file left behind


def test_diagnostics_can_be_switched_off(tmp_path, monkeypatch):
    run = _fit(tmp_path, monkeypatch, "--diagnostics", "false")
    assert not any(k.startswith(("stability/", "gradients/")) for k in read_metrics(run / "metrics.csv"))
    assert not (run / "grad_over_time.json").exists()


def test_nonfinite_values_never_reach_a_plot(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,step,train_loss\n0,0,1.5\n0,1,nan\n0,2,inf\n0,3,0.5\n")
    assert load_run(tmp_path).metrics["train_loss"] == [(0, 1.5), (3, 0.5)]
    out = plot_lengths({"lstm": {50: 0.001, 100: 0.002, 200: math.nan}}, "mse", tmp_path / "lengths.png", trained_at=100)
    assert out.read_bytes()[:8] == PNG


def test_plot_bad_input(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nowhere")]) == 2
    assert "nowhere holds no logged run: expected a run record (.json), or a logger folder" in capsys.readouterr().err
    (tmp_path / "grad_over_time.json").write_text('[{"step": 0, "norms"')
    assert main(["plot", str(tmp_path)]) == 2
    assert "grad_over_time.json is not valid JSON" in capsys.readouterr().err
    (tmp_path / "grad_over_time.json").write_text("[]")
    assert main(["plot", str(tmp_path), str(tmp_path), "--labels", "one"]) == 2
    assert "1 labels were given for 2 runs" in capsys.readouterr().err


def test_wandb_offline(tmp_path):
    """wandb when asked, with no network: WANDB_MODE=offline keeps the run on disk for a later `wandb sync`."""
    pytest.importorskip("wandb")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}
    result = subprocess.run([sys.executable, "-m", "zoo.app.cli", "fit", *TINY, "--trainer.logger+=WandbLogger",
                             "--trainer.logger.save_dir", str(tmp_path), "--trainer.logger.project", "rnn-zoo-test"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list(run_dir.glob("*.wandb"))


def test_zoo_plot_draws_a_run_records_learning_curves(tmp_path, tiny_config, capsys):
    from zoo.app.runner import execute
    from zoo.records import record_path, write_record

    record = execute(tiny_config(steps=9), 0, weights_dir=None)
    path = record_path(tmp_path / "records", record["benchmark"], record["tier"], record["model"], 0)
    write_record(path, record)
    run = load_run(path)
    assert [step for step, _ in run.metrics["val_mse"]] == [3, 6, 9]  # every validation, from the record
    assert run.metrics["train_loss"] and run.label == f"{record['model']} s0"
    assert main(["plot", str(path), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "curves.png").read_bytes()[:8] == PNG
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["curves.png"]  # nothing empty drawn
    old = dict(record, curves=None)
    write_record(path, old)
    assert main(["plot", str(path)]) == 2
    assert "run record without learning curves" in capsys.readouterr().err
