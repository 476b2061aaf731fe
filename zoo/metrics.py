"""torchmetrics collections built from a TaskSpec's metric names."""

from __future__ import annotations

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.regression import MeanSquaredError

from zoo.task_spec import TaskSpec


class ToleranceAccuracy(Metric):
    """Share of predictions within ``tolerance`` of the target.

    The adding problem's "accuracy" (Le et al. 2015 report it beside MSE): a sum in
    [0, 2] counts as right when it is off by less than 0.04.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, tolerance: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tolerance = tolerance
        self.add_state("correct", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.correct += ((preds - target).abs() < self.tolerance).sum()
        self.total += target.numel()

    def compute(self) -> torch.Tensor:
        return self.correct.float() / self.total.clamp(min=1)


def build_metrics(task: TaskSpec, prefix: str) -> MetricCollection:
    """One metric per name in ``task.metrics``, logged as ``{prefix}{name}``.

    "accuracy" of a regression task (loss mse) is the share within ``task.tolerance``;
    of a classification task, the share of right classes.
    """
    metrics: dict[str, Metric] = {}
    for name in task.metrics:
        if name == "mse":
            metrics[name] = MeanSquaredError()
        elif name == "accuracy" and task.loss == "mse":
            metrics[name] = ToleranceAccuracy(task.tolerance)
        elif name == "accuracy":
            metrics[name] = MulticlassAccuracy(num_classes=task.output_size, average="micro")
    return MetricCollection(metrics, prefix=prefix)
