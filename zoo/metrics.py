"""torchmetrics collections built from a TaskSpec's metric names."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.regression import MeanSquaredError
from torchmetrics.text import Perplexity

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


class BitsPerCharacter(Metric):
    """Mean cross-entropy in bits per predicted symbol: the character-level language-model metric.

    preds: logits (N, V); target: ids (N,).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("nats", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.nats += F.cross_entropy(preds.float(), target, reduction="sum").double()
        self.count += target.numel()

    def compute(self) -> torch.Tensor:
        return (self.nats / self.count.clamp(min=1) / math.log(2)).float()


class TokenPerplexity(Perplexity):
    """torchmetrics' perplexity for flat token logits (N, V) and targets (N,), as the model hands them."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update(preds.reshape(1, -1, preds.shape[-1]), target.reshape(1, -1))


def build_metrics(task: TaskSpec, prefix: str) -> MetricCollection:
    """One metric per name in ``task.metrics``, logged as ``{prefix}{name}``.

    "accuracy" of a regression task (loss mse) is the share within ``task.tolerance``;
    of a classification task, the share of right classes. Every metric takes flat
    predictions, (N,) or (N, C), and targets (N,): an every-step head flattens B and T.
    """
    metrics: dict[str, Metric] = {}
    for name in task.metrics:
        if name == "mse":
            metrics[name] = MeanSquaredError()
        elif name == "accuracy" and task.loss == "mse":
            metrics[name] = ToleranceAccuracy(task.tolerance)
        elif name == "accuracy":
            metrics[name] = MulticlassAccuracy(num_classes=task.output_size, average="micro")
        elif name == "perplexity":
            metrics[name] = TokenPerplexity()
        elif name == "bpc":
            metrics[name] = BitsPerCharacter()
    return MetricCollection(metrics, prefix=prefix)
