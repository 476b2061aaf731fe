"""The fixed batch that the through-time probes measure on."""

from __future__ import annotations

import lightning as L
import torch


def probe_batch(trainer: L.Trainer, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``size`` sequences of the first validation batch, or of the first training batch without one.

    Validation data is fixed by the task's seed, so the probe is the same in every run of
    a benchmark and does not depend on where the training stream is.
    """
    loader = None
    datamodule = trainer.datamodule
    if datamodule is not None and type(datamodule).val_dataloader is not L.LightningDataModule.val_dataloader:
        loader = datamodule.val_dataloader()
    if loader is None:
        loader = trainer.train_dataloader
    # Making a DataLoader iterator draws a seed from torch's global generator; forked, the
    # probe leaves the training's random stream alone, so a diagnostic never changes a
    # result, and a resumed run (which takes its probe later) draws what it would have.
    with torch.random.fork_rng(devices=[]):
        x, y = next(iter(loader))[:2]
    return x[:size].to(device), y[:size].to(device)
