"""The cadence shared by the probes that are too costly for every step."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class PeriodicProbe(Callback):
    """Calls ``measure`` at initialization, every ``every_n_steps`` optimizer steps, and when training ends.

    Each measurement is one entry of ``history`` (``{"step": k, ...}``); a second one at
    the same step replaces the first. The history is saved in checkpoints, so a
    resumed run keeps the measurements it made before.
    """

    def __init__(self, every_n_steps: int) -> None:
        self.every_n_steps = every_n_steps
        self.history: list[dict[str, Any]] = []

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise NotImplementedError

    def record(self, entry: dict[str, Any], trainer: L.Trainer, metrics: dict[str, float]) -> None:
        """Keep ``entry`` in the history and send ``metrics`` to every logger at this step."""
        if self.history and self.history[-1]["step"] == entry["step"]:
            self.history.pop()
        self.history.append(entry)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.history:
            self.measure(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and outputs is not None:
            self.measure(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self.history and self.history[-1]["step"] == trainer.global_step):  # not measured at this step yet
            self.measure(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
