"""Optimizers and learning-rate schedules by name.

Weight decay here is the optimizer's: for sgd, adam and rmsprop it is added to the
gradient inside ``step`` (after clipping), for adamw it is decoupled from the
gradient altogether. The L1/L2 penalties of ``SequenceModel`` are added to the loss
instead (see there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch

from zoo.errors import ZooError, check_choice, check_float, check_int, coerce_config

# The choices, as types: OptimConfig's fields are annotated with them, so ``zoo fit --help`` lists them and the
# CLI refuses any other value. The tuples are read from the types: each list is written once.
OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop"]
ScheduleName = Literal["none", "step", "plateau", "cosine"]
# Lightning's gradient_clip_algorithm (its GradClipAlgorithmType; tests/test_cli_choices.py checks they agree).
ClipAlgorithm = Literal["norm", "value"]
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
SCHEDULES: tuple[str, ...] = get_args(ScheduleName)
CLIP_ALGORITHMS: tuple[str, ...] = get_args(ClipAlgorithm)
WITH_MOMENTUM = ("sgd", "rmsprop")


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and schedule.

    ``step``: multiply the lr by ``gamma`` every ``step_size`` epochs, the first time
    after ``decay_start`` epochs (default ``step_size``, i.e. PyTorch's StepLR); Zaremba
    et al.'s "halve after the 4th epoch" is ``gamma=0.5, step_size=1, decay_start=4``.
    ``plateau``: multiply by ``gamma`` when ``monitor`` has not improved for ``patience`` validations.
    ``cosine``: anneal to zero over the run's total optimizer steps, stepping every batch.
    """

    name: OptimizerName = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: ScheduleName = "none"
    step_size: int = 1
    decay_start: int | None = None
    gamma: float = 0.5
    patience: int = 2
    monitor: str = "val_loss"

    def __post_init__(self) -> None:
        check_choice("optimizer", self.name, OPTIMIZERS)
        lr_ok = isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool) and 0 < self.lr < float("inf")
        if not lr_ok:
            raise ZooError(f"lr must be a number > 0, got {self.lr!r}")
        check_float("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        if self.momentum and self.name not in WITH_MOMENTUM:
            raise ZooError(
                f"momentum {self.momentum} was given for optimizer {self.name!r}, which takes none; "
                f"optimizers with momentum: {', '.join(WITH_MOMENTUM)}"
            )
        check_float("weight_decay", self.weight_decay, low=0.0)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("step_size", self.step_size, low=1)
        if self.decay_start is not None:
            check_int("decay_start", self.decay_start, low=0)
        check_float("gamma", self.gamma, low=0.0, high=1.0)
        check_int("patience", self.patience, low=0)
        if not (isinstance(self.monitor, str) and self.monitor):
            raise ZooError(f"monitor must be the name of a logged metric such as 'val_loss', got {self.monitor!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def coerce(cls, value: OptimConfig | dict[str, Any]) -> OptimConfig:
        return coerce_config(cls, value, "optim")


def build_optimizer(params: Iterable[torch.nn.Parameter], config: OptimConfig) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = dict(lr=config.lr, weight_decay=config.weight_decay)
    if config.name == "sgd":
        return torch.optim.SGD(params, momentum=config.momentum, **kwargs)
    if config.name == "adam":
        return torch.optim.Adam(params, **kwargs)
    if config.name == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    return torch.optim.RMSprop(params, momentum=config.momentum, **kwargs)


class StepFactor:
    """lr factor after ``epoch`` epochs: 1 until ``decay_start``, then ``gamma`` more every ``step_size``."""

    def __init__(self, config: OptimConfig) -> None:
        self.gamma, self.step_size = config.gamma, config.step_size
        self.start = config.step_size if config.decay_start is None else config.decay_start

    def __call__(self, epoch: int) -> float:
        if epoch < self.start:
            return 1.0
        return self.gamma ** ((epoch - self.start) // self.step_size + 1)


def build_schedule(optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int) -> dict[str, Any] | None:
    """The ``lr_scheduler`` entry Lightning expects from ``configure_optimizers``, or None."""
    if config.schedule == "none":
        return None
    if config.schedule == "step":
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, StepFactor(config))
        return {"scheduler": scheduler, "interval": "epoch"}
    if config.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.gamma, patience=config.patience)
        return {"scheduler": scheduler, "interval": "epoch", "monitor": config.monitor}
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, int(total_steps)))
    return {"scheduler": scheduler, "interval": "step"}
