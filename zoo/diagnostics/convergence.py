"""Convergence: when a run first reaches its task's target, the best it ever did, and its learning curves."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from zoo.task_spec import TaskSpec


class ConvergenceMonitor(Callback):
    """Steps, samples and seconds until the validation metric first reaches the task's target.

    Also the best validation value and the step it came at. With ``stop=True`` the run
    ends at the first validation that reaches the target (early stopping at the goal,
    not at a plateau). Seconds count training and validation since training started.

    And the run's learning curves, kept for its record: the training loss every
    ``curve_every`` optimizer steps (about ``CURVE_POINTS`` points over the run's budget;
    reading it costs one look at the device then, not every step) and the validation
    metric at every validation. They are in the checkpointed state, so a resumed run's
    curves are the uninterrupted run's.
    """

    CURVE_POINTS = 200

    def __init__(self, task: TaskSpec, stop: bool = False) -> None:
        self.key = f"val_{task.target_metric}"
        self.target, self.mode, self.stop = task.target, task.target_mode, stop
        self.step: int | None = None
        self.samples_at_target: int | None = None
        self.seconds: float | None = None
        self.best: float | None = None
        self.best_step: int | None = None
        self.samples = 0
        self.last_val: dict[str, float] = {}  # the last validation's metrics, without the "val_" prefix
        self.curve_every = 1
        self.train_curve: list[list[float]] = []  # [step, training loss]
        self.val_curve: list[list[float]] = []  # [step, validation metric]
        self._start = time.perf_counter()
        self._elapsed_before = 0.0  # seconds spent before a resume

    def _better(self, value: float, than: float) -> bool:
        return value < than if self.mode == "min" else value > than

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        total = trainer.estimated_stepping_batches
        self.curve_every = max(1, int(total) // self.CURVE_POINTS) if math.isfinite(total) else 10

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        target = batch[1] if isinstance(batch, (tuple, list)) else batch
        # Under DDP every process reads a batch of the same size (Lightning's DistributedSampler
        # deals them out evenly): the global batch is world_size of them.
        self.samples += int(target.shape[0]) * trainer.world_size
        loss = trainer.callback_metrics.get("train_loss")
        if loss is not None and trainer.global_step % self.curve_every == 0:
            self.train_curve.append([trainer.global_step, float(loss)])

    def elapsed(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._start

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        # Kept here, and so in checkpoints: a run resumed after its last validation reports it too.
        self.last_val = {k.removeprefix("val_"): float(v) for k, v in trainer.callback_metrics.items()
                         if k.startswith("val_")}
        value = trainer.callback_metrics.get(self.key)
        if value is None:
            return
        value = float(value)
        self.val_curve.append([trainer.global_step, value])
        if value != value:  # NaN: never the best, never the target
            return
        if self.best is None or self._better(value, self.best):
            self.best, self.best_step = value, trainer.global_step
        if self.target is None or self.step is not None:
            return
        if value == self.target or self._better(value, self.target):
            self.step, self.samples_at_target, self.seconds = trainer.global_step, self.samples, self.elapsed()
            if self.stop:
                trainer.should_stop = True

    @property
    def reached(self) -> bool:
        return self.step is not None

    def summary(self) -> dict[str, Any]:
        return {"metric": self.key, "target": self.target, "reached": self.reached, "steps_to_target": self.step,
                "samples_to_target": self.samples_at_target, "seconds_to_target": self.seconds,
                "best": self.best, "best_step": self.best_step,
                "curves": {"every": self.curve_every, "train_loss": list(self.train_curve),
                           "val": {"metric": self.key, "points": list(self.val_curve)}}}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "samples_at_target": self.samples_at_target, "seconds": self.seconds,
                "best": self.best, "best_step": self.best_step, "samples": self.samples, "elapsed": self.elapsed(),
                "last_val": self.last_val, "train_curve": self.train_curve, "val_curve": self.val_curve}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.step, self.samples_at_target = state_dict["step"], state_dict["samples_at_target"]
        self.seconds, self.best, self.best_step = state_dict["seconds"], state_dict["best"], state_dict["best_step"]
        self.samples, self._elapsed_before = state_dict["samples"], state_dict["elapsed"]
        self.last_val = dict(state_dict.get("last_val", {}))
        self.train_curve = [list(p) for p in state_dict.get("train_curve", [])]
        self.val_curve = [list(p) for p in state_dict.get("val_curve", [])]
