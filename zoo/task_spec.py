"""What a DataModule tells the model about its task.

The model is built from a TaskSpec alone, so nothing in ``zoo/`` branches on a
task's name: a new task is a new DataModule with a new spec.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.errors import check_choice, check_float, check_int, coerce_config

HEADS = ("last", "every")  # read the final state once, or predict at every step
INPUT_KINDS = ("dense", "tokens")  # float features (B, T, I), or token ids (B, T) read through an embedding
LOSSES = ("mse", "cross_entropy")
# "exact_copy": share of sequences whose recalled (non-blank) target steps are all right (zoo.metrics.ExactCopy)
METRICS = ("mse", "accuracy", "perplexity", "bpc", "exact_copy")
PERFECT = {"mse": 0.0, "accuracy": 1.0, "perplexity": 1.0, "bpc": 0.0, "exact_copy": 1.0}  # the best score each metric can take


@dataclass(frozen=True)
class TaskSpec:
    """The contract between a task and a model.

    ``baselines`` maps a metric to the score of a trivial predictor, printed beside a
    result so that "0.16 MSE" can be read as "learnt nothing". ``input_size`` is the
    vocabulary size when ``input_kind`` is "tokens". ``stateful`` tasks (language
    models) carry the recurrent state from one batch to the next, detached, because
    their batches are consecutive windows of the same streams; their every-step target
    is the stream's next token, so a model of one may read only the past, and
    ``SequenceModel`` refuses a bidirectional backbone for them.

    ``baseline_margin`` is the share of the way from the trivial baseline to a perfect
    score (``PERFECT``) that a run must cover on the test set to count as having learnt
    anything; a run that covers less is "failed" (``zoo.records.outcome``), however close
    its number looks to the others.
    """

    name: str
    input_size: int
    output_size: int
    head: str = "last"
    input_kind: str = "dense"
    stateful: bool = False
    loss: str = "mse"
    metrics: tuple[str, ...] = ("mse",)
    target_metric: str = "mse"
    target: float | None = None
    target_mode: str = "min"  # "min": reached when metric <= target; "max": when >=
    tolerance: float = 0.04  # |error| under which a regression counts as correct ("accuracy" of an mse task)
    baselines: dict[str, float] = field(default_factory=dict)
    baseline_note: str = ""
    baseline_margin: float = 0.05

    def __post_init__(self) -> None:
        check_int("task input_size", self.input_size, low=1)
        check_int("task output_size", self.output_size, low=1)
        check_choice("task head", self.head, HEADS)
        check_choice("task input_kind", self.input_kind, INPUT_KINDS)
        check_choice("task loss", self.loss, LOSSES)
        object.__setattr__(self, "metrics", tuple(self.metrics))
        for metric in self.metrics:
            check_choice("task metric", metric, METRICS)
        check_choice("task target_metric", self.target_metric, self.metrics)
        check_choice("task target_mode", self.target_mode, ("min", "max"))
        check_float("task baseline_margin", self.baseline_margin, low=0.0, high=1.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML types only (lists, not tuples), for hyperparameters and records."""
        return {**asdict(self), "metrics": list(self.metrics)}

    @classmethod
    def coerce(cls, value: TaskSpec | dict[str, Any]) -> TaskSpec:
        """Accept a spec or the dict saved in a checkpoint's hyperparameters."""
        return coerce_config(cls, value, "task", required=("name", "input_size", "output_size"))
