"""Train-and-test in one call, for scripts and benchmarks that run many models.

``zoo fit`` (Lightning's CLI) is the interactive way in; this is the programmatic
one: it builds the Trainer the same way for every run, stops once the task's target
is reached on validation, and returns the figures a results table needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import lightning as L

from zoo import resume
from zoo.cadence import CHECKPOINT_EVERY_N_STEPS
from zoo.diagnostics import DIAGNOSTICS_EVERY_N_STEPS, ConvergenceMonitor, default_diagnostics, summarize
from zoo.module import DivergedError, SequenceModel


def seed_run(seed: int) -> None:
    """Seed torch, numpy and Python for one run; call it before building the model.

    torch seeds itself from the OS at start-up, so a model built before this call gets
    different initial weights in every process, and one built after another model's
    construction depends on that model: seeding right before each build makes a
    run's weights a function of its seed alone.
    """
    L.seed_everything(seed, workers=True, verbose=False)


@dataclass
class RunResult:
    steps: int
    seconds: float
    steps_to_target: int | None
    seconds_to_target: float | None
    test: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"  # where it trained (Lightning moves the model back to the CPU when it is done)
    diverged: str | None = None  # "diverged at step k: reason"; then there is no test result
    diagnostics: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0  # Lightning's current_epoch when training ended
    val: dict[str, float] = field(default_factory=dict)  # the last validation's metrics

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
    diagnostics: bool = False,
    diagnostics_every_n_steps: int = DIAGNOSTICS_EVERY_N_STEPS,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every_n_steps: int | None = None,
) -> RunResult:
    """Fit ``model`` for at most ``max_steps`` optimizer steps, then score it on the test set.

    Build ``model`` right after ``seed_run(seed)``: this seeds again for training (data
    order, dropout, fresh batches) but cannot reach back to the initial weights.

    With ``checkpoint_dir`` the run writes ``last.ckpt`` there every
    ``checkpoint_every_n_steps`` steps (default ``zoo.cadence.CHECKPOINT_EVERY_N_STEPS``)
    and, when one is already there (a run that was
    killed), resumes from it: it ends with the weights and metrics the run would have
    had uninterrupted (``zoo/resume.py``). ``seconds`` then counts every attempt.
    """
    seed_run(seed)
    monitors = (default_diagnostics(model.task, stop_at_target=stop_at_target, every_n_steps=diagnostics_every_n_steps)
                if diagnostics
                else [ConvergenceMonitor(model.task, stop=stop_at_target)])
    watch = next(m for m in monitors if isinstance(m, ConvergenceMonitor))
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
    kwargs["callbacks"] = [*monitors, *kwargs.get("callbacks", [])]
    ckpt_path = None
    if checkpoint_dir is not None:
        kwargs["callbacks"] += resume.resume_callbacks(checkpoint_dir,
                                                       checkpoint_every_n_steps or CHECKPOINT_EVERY_N_STEPS)
        kwargs.update(enable_checkpointing=True, plugins=[*kwargs.get("plugins", []), resume.SafeCheckpointIO()])
        ckpt_path = resume.last_checkpoint(checkpoint_dir)
    trainer = L.Trainer(**kwargs)
    diverged = None
    try:
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    except DivergedError as err:  # a result, not a crash: reported, and nothing is tested
        diverged = str(err)
    seconds = watch.elapsed()  # since training started, resumed runs' earlier attempts included
    tested = {} if diverged else trainer.test(model, datamodule=data, verbose=False)[0]
    return RunResult(
        steps=trainer.global_step,
        seconds=seconds,
        steps_to_target=watch.step,
        seconds_to_target=watch.seconds,
        test={k.removeprefix("test_"): float(v) for k, v in tested.items()},
        device=str(trainer.strategy.root_device),
        diverged=diverged,
        diagnostics=summarize(monitors, model),
        epochs=trainer.current_epoch,
        val=dict(watch.last_val),
    )
