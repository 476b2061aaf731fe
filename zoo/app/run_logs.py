"""Where a benchmark run's own logs go: one folder per run, never the current directory.

A run's loggers (Weights & Biases, with ``zoo bench run --wandb``) and what the
diagnostics write beside them (``grad_over_time.json``, into the trainer's ``log_dir``)
go to ``<root>/<run id>/``: ``<root>`` is ``WANDB_DIR`` when it is set (so wandb's own
setting is honoured, each run in its own subfolder of it), else ``runs/logs`` (ignored
by git, beside ``runs/weights`` and ``runs/checkpoints``). Without a folder Lightning's
WandbLogger would write ``./wandb`` and the trainer's log_dir would be ``.``.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_LOGS = "runs/logs"
ENV_WANDB_DIR = "WANDB_DIR"


def run_log_dir(run_id: str) -> Path:
    """The folder of run ``run_id``'s logs (see the module docstring), made if missing."""
    folder = (Path(os.environ.get(ENV_WANDB_DIR) or DEFAULT_LOGS) / run_id).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wandb_logger(run_id: str, config: dict):
    """Lightning's WandbLogger for one run, writing under the run's own folder (``WANDB_MODE=offline`` keeps it there)."""
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(project="rnn-zoo", name=run_id, config=config, save_dir=str(run_log_dir(run_id)))
