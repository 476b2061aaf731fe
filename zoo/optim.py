"""Optimizers and learning-rate schedules by name.

Weight decay here is the optimizer's: for sgd, adam and rmsprop it is added to the
gradient inside ``step`` (after clipping), for adamw it is decoupled from the
gradient altogether. The L1/L2 penalties of ``SequenceModel`` are added to the loss
instead (see there).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
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

    ``group_lrs`` gives some parameters a learning rate of their own: ``{pattern: lr}``, where a
    parameter whose full name (as ``model.named_parameters()`` spells it, e.g.
    ``backbone.rnn.skew_weight_hh_l0``) matches the shell-style ``pattern`` trains at that lr
    and every other parameter at ``lr``. Each pattern must match at least one parameter of the
    model and no parameter may match two (``parameter_groups`` checks both when the model is
    built). The schedule scales every group's lr alike; ``weight_decay`` and ``momentum`` are
    the same for all. expRNN's paper trains its orthogonal parameters 10x slower this way:
    ``group_lrs={"*.skew_weight_hh_*": 7e-5}`` beside ``lr=7e-4``. Empty (the default), the
    optimizer has the one group it always had, and ``to_dict`` leaves the field out, so a
    config written before it existed reads and writes the same.
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
    group_lrs: dict[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_choice("optimizer", self.name, OPTIMIZERS)
        check_lr("lr", self.lr)
        if not isinstance(self.group_lrs, dict):
            raise ZooError(f"group_lrs must be a mapping of parameter-name patterns to learning rates, such as "
                           f"{{'*.skew_weight_hh_*': 7e-5}}, got {self.group_lrs!r}")
        for pattern, lr in self.group_lrs.items():
            if not (isinstance(pattern, str) and pattern):
                raise ZooError(f"group_lrs: each key must be a parameter-name pattern such as '*.skew_weight_hh_*', "
                               f"got {pattern!r}")
            check_lr(f"group_lrs[{pattern!r}]", lr)
        object.__setattr__(self, "group_lrs", dict(self.group_lrs))  # a copy: the config stays as it was built
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
        """Plain JSON; ``group_lrs`` only when it has a pattern (see the class docstring)."""
        values = asdict(self)
        if not values["group_lrs"]:
            del values["group_lrs"]
        return values

    @classmethod
    def coerce(cls, value: OptimConfig | dict[str, Any]) -> OptimConfig:
        return coerce_config(cls, value, "optim")


def check_lr(setting: str, value: Any) -> float:
    """A learning rate: a finite number > 0."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf):
        raise ZooError(f"{setting} must be a number > 0, got {value!r}")
    return value


def parameter_groups(named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
                     config: OptimConfig) -> list[torch.nn.Parameter] | list[dict[str, Any]]:
    """What ``build_optimizer`` takes: the parameters as they are, or split into groups by ``config.group_lrs``.

    Without ``group_lrs``, every parameter in order (one group at ``config.lr``, as always).
    With it, the parameters no pattern matches (at ``config.lr``), then one group per pattern,
    in the config's order, at that pattern's lr. A pattern that matches no parameter is an
    error listing the model's parameter names (the valid choices); a parameter that two
    patterns match is an error naming both.
    """
    named = list(named_parameters)
    if not config.group_lrs:
        return [param for _, param in named]
    grouped: dict[str, list[torch.nn.Parameter]] = {pattern: [] for pattern in config.group_lrs}
    rest = []
    for name, param in named:
        matched = [pattern for pattern in config.group_lrs if fnmatch.fnmatchcase(name, pattern)]
        if len(matched) > 1:
            raise ZooError(f"parameter {name!r} matches group_lrs patterns {matched[0]!r} and {matched[1]!r}; "
                           "give each parameter one learning rate")
        (grouped[matched[0]] if matched else rest).append(param)
    unmatched = [pattern for pattern, params in grouped.items() if not params]
    if unmatched:
        raise ZooError(f"group_lrs pattern {unmatched[0]!r} matches no parameter of the model; its parameters: "
                       f"{', '.join(name for name, _ in named)}")
    groups = [{"params": rest}] if rest else []
    return groups + [{"params": params, "lr": config.group_lrs[pattern]} for pattern, params in grouped.items()]


def build_optimizer(params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
                    config: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer over ``params``: parameters, or parameter groups (``parameter_groups``) with their own lr."""
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
