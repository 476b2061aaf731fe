"""Every log a benchmark run writes lands under that run's own folder, never in the current directory.

``zoo bench run --wandb`` with ``WANDB_MODE=offline`` (no network) and ``WANDB_DIR=D``: the
wandb files and ``grad_over_time.json`` go to ``D/<run id>/``, and the working directory
the command ran in is left exactly as it was.
"""

from __future__ import annotations

import json

import pytest

from zoo.app import run_logs
from zoo.app.cli import main

RUN_ID = "adding_t100.smoke.gru_1x128.s0"


def _tree(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """wandb offline, its every folder (runs, config, cache, data, artifacts) under tmp_path/wandb-*."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / f"wandb-{name.split('_')[1].lower()}"))
    yield tmp_path / "wandb-dir"
    import wandb

    wandb.finish()  # the run stays open in this process otherwise


def test_bench_run_with_wandb_leaves_the_working_directory_untouched(tmp_path, monkeypatch, offline_wandb):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "mine.txt").write_text("a user's file\n")
    before = _tree(cwd)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("WANDB_DIR", str(offline_wandb))
    out = tmp_path / "out"
    assert main(["bench", "run", "adding_t100", "--tier", "smoke", "--models", "gru_1x128", "--seeds", "0", "--wandb",
                 "--no_progress", "--records", str(out / "records"), "--weights", str(out / "weights"),
                 "--checkpoints", str(out / "checkpoints")]) == 0
    assert _tree(cwd) == before  # no wandb/, no grad_over_time.json, no lightning_logs/, nothing
    run_dir = offline_wandb / RUN_ID
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and any(offline_runs[0].rglob("*.wandb"))
    curves = json.loads((run_dir / "grad_over_time.json").read_text())
    assert curves and curves[0]["step"] == 0
    record = json.loads((out / "records" / "adding_t100" / "smoke" / "gru_1x128.s0.json").read_text())
    assert record["wandb_run_id"] and offline_runs[0].name.endswith(record["wandb_run_id"])


def test_a_runs_log_folder_is_its_own_under_wandb_dir_or_runs_logs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    assert run_logs.run_log_dir(RUN_ID) == tmp_path / "runs" / "logs" / RUN_ID  # runs/ is git-ignored
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "D"))
    assert run_logs.run_log_dir(RUN_ID) == tmp_path / "D" / RUN_ID
    assert run_logs.run_log_dir("other.s1") != run_logs.run_log_dir(RUN_ID)  # runs never share a folder
