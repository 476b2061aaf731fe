"""Train-and-test in one call, for scripts and benchmarks that run many models.

``zoo fit`` (Lightning's CLI) is the interactive way in; this is the programmatic
one: it builds the Trainer the same way for every run, stops once the task's target
is reached on validation, and returns the figures a results table needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from zoo.module import SequenceModel
from zoo.task_spec import TaskSpec


def seed_run(seed: int) -> None:
    """Seed torch, numpy and Python for one run; call it before building the model.

    torch seeds itself from the OS at start-up, so a model built before this call gets
    different initial weights in every process, and one built after another model's
    construction depends on that model: seeding right before each build makes a
    run's weights a function of its seed alone.
    """
    L.seed_everything(seed, workers=True, verbose=False)


class StopAtTarget(Callback):
    """Notes the first validation at which the task's target is met, and may stop the run there."""

    def __init__(self, task: TaskSpec, stop: bool = True) -> None:
        self.key = f"val_{task.target_metric}"
        self.target, self.mode, self.stop = task.target, task.target_mode, stop
        self.step: int | None = None
        self.seconds: float | None = None
        self._start = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.target is None or trainer.sanity_checking or self.step is not None:
            return
        value = trainer.callback_metrics.get(self.key)
        if value is None:
            return
        value = float(value)
        if (value <= self.target) if self.mode == "min" else (value >= self.target):
            self.step, self.seconds = trainer.global_step, time.perf_counter() - self._start
            if self.stop:
                trainer.should_stop = True


@dataclass
class RunResult:
    steps: int
    seconds: float
    steps_to_target: int | None
    seconds_to_target: float | None
    test: dict[str, float] = field(default_factory=dict)

    @property
    def reached_target(self) -> bool:
        return self.steps_to_target is not None


def fit_and_test(
    model: SequenceModel,
    data: L.LightningDataModule,
    *,
    max_steps: int,
    seed: int = 0,
    clip_val: float | None = 1.0,
    clip_algorithm: str = "norm",
    stop_at_target: bool = True,
    deterministic: bool = True,
    trainer_kwargs: dict[str, Any] | None = None,
) -> RunResult:
    """Fit ``model`` for at most ``max_steps`` optimizer steps, then score it on the test set.

    Build ``model`` right after ``seed_run(seed)``: this seeds again for training (data
    order, dropout, fresh batches) but cannot reach back to the initial weights.
    """
    seed_run(seed)
    watch = StopAtTarget(model.task, stop=stop_at_target)
    kwargs: dict[str, Any] = dict(
        max_steps=max_steps,
        max_epochs=-1,
        gradient_clip_val=clip_val,
        gradient_clip_algorithm=clip_algorithm if clip_val else None,
        deterministic=deterministic,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    kwargs.update(trainer_kwargs or {})
    kwargs["callbacks"] = [watch, *kwargs.get("callbacks", [])]
    trainer = L.Trainer(**kwargs)
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    tested = trainer.test(model, datamodule=data, verbose=False)[0]
    return RunResult(
        steps=trainer.global_step,
        seconds=seconds,
        steps_to_target=watch.step,
        seconds_to_target=watch.seconds,
        test={k.removeprefix("test_"): float(v) for k, v in tested.items()},
    )
