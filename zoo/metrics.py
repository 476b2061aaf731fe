"""torchmetrics collections built from a TaskSpec's metric names."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.regression import MeanSquaredError
from torchmetrics.text import Perplexity

from zoo.errors import ZooError
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


class ExactCopy(Metric):
    """Share of sequences whose recalled symbols are ALL right: the copy task's exact-copy rate.

    It takes flat predictions as every metric here does: logits (N, C) or class ids (N,),
    and targets (N,), an every-step head's B*T steps in order. Steps whose target is
    ``blank`` are not scored (a symbol predicted there costs nothing); the other steps
    are the recalled symbols, ``copy_length`` to a sequence (the copy task's 10: a data
    symbol is never blank), so in the flat order they come in consecutive groups of
    ``copy_length``, one per sequence. A group counts when every one of its steps is
    right; one wrong symbol and the sequence is not an exact copy.

    Beside the all-step "accuracy": at T=100 a model with 0.99 accuracy may still get
    most sequences wrong somewhere; this number says how many it copies exactly.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, copy_length: int = 10, blank: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.copy_length, self.blank = copy_length, blank
        self.add_state("exact", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.dim() == target.dim() + 1:
            preds = preds.argmax(dim=-1)
        preds, target = preds.reshape(-1), target.reshape(-1)
        recalled = target != self.blank
        right = preds[recalled] == target[recalled]
        if right.numel() % self.copy_length:
            raise ZooError(f"exact_copy scores sequences of {self.copy_length} recalled (non-blank) target steps; "
                           f"a batch had {right.numel()}, not a multiple of {self.copy_length}")
        exact = right.reshape(-1, self.copy_length).all(dim=1)
        self.exact += exact.sum()
        self.total += exact.numel()

    def compute(self) -> torch.Tensor:
        return self.exact.float() / self.total.clamp(min=1)


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
    "exact_copy" is the copy task's share of sequences copied without a wrong symbol
    (``ExactCopy``: blank targets, id 0, are not scored; 10 recalled symbols a sequence).
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
        elif name == "exact_copy":
            metrics[name] = ExactCopy()
    return MetricCollection(metrics, prefix=prefix)
