"""SequenceModel: a recurrent backbone, the head its task asks for, the loss, metrics and optimizer.

Built from a TaskSpec (what the data is) plus an RNNConfig (what the network is) plus
an OptimConfig (how it learns), so nothing here knows which task it is solving.

L1 and L2 penalties are added to the loss: their gradient goes through clipping and,
with Adam, through the adaptive per-parameter scaling. That is not the optimizer's
``weight_decay``: for sgd/adam/rmsprop weight decay is added to the gradient after
clipping (for plain SGD, l2 = weight_decay / 2 is the same update when nothing is
clipped), and for adamw it is decoupled from the gradient entirely (Loshchilov &
Hutter 2019). The penalties cover weight matrices only, not biases.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from zoo.errors import ZooError, check_float
from zoo.metrics import build_metrics
from zoo.models.rnn import RNNBackbone, RNNConfig
from zoo.optim import OptimConfig, build_optimizer, build_schedule
from zoo.task_spec import TaskSpec


class DivergedError(ZooError):
    """Training produced a non-finite loss."""


class SequenceModel(L.LightningModule):
    """A recurrent network trained on one task; see the module docstring for the penalties."""

    def __init__(
        self,
        task: TaskSpec,
        backbone: RNNConfig = RNNConfig(),
        optim: OptimConfig = OptimConfig(),
        l1: float = 0.0,
        l2: float = 0.0,
    ) -> None:
        super().__init__()
        self.task = TaskSpec.coerce(task)
        self.backbone_config = RNNConfig.coerce(backbone)
        self.optim_config = OptimConfig.coerce(optim)
        self.l1 = check_float("l1", l1, low=0.0)
        self.l2 = check_float("l2", l2, low=0.0)
        # Plain dicts, so a checkpoint's hyperparameters load without unpickling our classes.
        self.save_hyperparameters(
            {
                "task": self.task.to_dict(),
                "backbone": self.backbone_config.to_dict(),
                "optim": self.optim_config.to_dict(),
                "l1": self.l1,
                "l2": self.l2,
            }
        )
        self.backbone = RNNBackbone(self.task.input_size, self.backbone_config)
        self.head = nn.Linear(self.backbone.output_size, self.task.output_size)
        self.val_metrics = build_metrics(self.task, prefix="val_")
        self.test_metrics = build_metrics(self.task, prefix="test_")

    # ----------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, I) -> (B, O) for a classifier, (B,) for a scalar regression
        _, state = self.backbone(x)
        out = self.head(self.backbone.last_features(state))  # (B, O)
        if self.task.loss == "mse" and self.task.output_size == 1:
            out = out.squeeze(-1)  # (B,)
        return out

    def task_loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.task.loss == "mse":
            return F.mse_loss(out, target)
        return F.cross_entropy(out, target)

    def penalty(self) -> torch.Tensor | None:
        """l1 * sum|W| + l2 * sum W^2 over weight matrices, or None when both are off."""
        if not (self.l1 or self.l2):
            return None
        weights = [p for p in self.parameters() if p.dim() >= 2]
        total = torch.zeros((), device=weights[0].device)
        if self.l1:
            total = total + self.l1 * sum(w.abs().sum() for w in weights)
        if self.l2:
            total = total + self.l2 * sum(w.pow(2).sum() for w in weights)
        return total

    # ----------------------------------------------------------------- steps
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.task_loss(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        penalty = self.penalty()
        if penalty is not None:
            self.log("train_penalty", penalty)
            loss = loss + penalty
        if not torch.isfinite(loss):
            raise DivergedError(f"diverged at step {self.global_step}: training loss is {loss.item()}")
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        x, y = batch
        out = self(x)
        self.log(f"{stage}_loss", self.task_loss(out, y), prog_bar=stage == "val")
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(out, y)
        self.log_dict(metrics, prog_bar=stage == "val")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)

    def on_test_end(self) -> None:
        """Print each test metric beside its trivial baseline, so a number can be read at a glance."""
        metrics = self.trainer.callback_metrics
        for name, baseline in self.task.baselines.items():
            key = f"test_{name}"
            if key in metrics:
                note = f" ({self.task.baseline_note})" if self.task.baseline_note else ""
                rank_zero_info(f"{key} {float(metrics[key]):.4f}; trivial baseline {baseline:.4f}{note}")

    # ----------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.parameters(), self.optim_config)
        schedule = build_schedule(optimizer, self.optim_config, total_steps=self._total_steps())
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def _total_steps(self) -> int:
        if self.optim_config.schedule != "cosine":
            return 0
        steps = self.trainer.estimated_stepping_batches
        if steps == float("inf"):
            raise ZooError("schedule 'cosine' needs a finite run: set trainer max_steps or max_epochs")
        return int(steps)
