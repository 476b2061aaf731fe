"""A live progress bar inside one run: optimizer step of the budget, training loss, last validation, ETA.

Why our own and not Lightning's: Lightning's bar counts the batches of one epoch, and
the synthetic tasks' epochs are only a validation cadence (100 fresh batches), so its
ETA is for the epoch, not the run. This bar counts the run's optimizer steps against its
whole budget (``trainer.estimated_stepping_batches``), starts where a resumed run
starts, and shows the figures a reader watches: the loss and the validation metric.

Several runs at once (``zoo bench run --jobs N``) each draw on their own line
(``position``), and the bar is gone once its run ends: the suite prints one line per
finished run in its place.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class RunProgress(Callback):
    """tqdm over a run's optimizer steps, with its loss and latest validation metric as the postfix."""

    def __init__(self, label: str, position: int = 0, every_n_steps: int = 10, file: Any = None) -> None:
        self.label, self.position, self.every, self.file = label, position, max(1, every_n_steps), file
        self.bar: Any = None
        self.val: str = ""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from tqdm.auto import tqdm

        total = trainer.estimated_stepping_batches
        self.bar = tqdm(total=int(total) if math.isfinite(total) else None, initial=trainer.global_step,
                        desc=self.label, unit="step", position=self.position, leave=False, dynamic_ncols=True,
                        file=self.file, mininterval=0)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self.bar is None:
            return
        self.bar.update(trainer.global_step - self.bar.n)
        if trainer.global_step % self.every == 0:
            loss = trainer.callback_metrics.get("train_loss")
            text = f"loss {float(loss):.4g}" if loss is not None else ""
            self.bar.set_postfix_str(", ".join(t for t in (text, self.val) if t), refresh=False)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        key = f"val_{pl_module.task.target_metric}"  # a SequenceModel's TaskSpec, as ConvergenceMonitor reads it
        value = trainer.callback_metrics.get(key)
        if value is not None:
            self.val = f"{key} {float(value):.4g}"

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
