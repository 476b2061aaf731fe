"""Training stability, every step and cheaply: gradient norms before clipping, clipping, NaNs, loss spikes.

The per-parameter gradient norms are taken once per step by ``SequenceModel`` (it
needs them for its non-finite policy anyway) before Lightning clips; this callback
groups them into parts, counts, and logs every ``log_every_n_steps``. Parts:
``embedding``, ``input_l{k}`` (input weights and biases of layer k, both directions),
``recurrent_l{k}`` (recurrent weights and biases), ``head``.

A loss spike is a training loss above ``spike_factor`` times the median of the last
``spike_window`` losses (counted once at least 10 losses are in the window).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import deque
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

_LAYER = re.compile(r"(weight|bias)_(ih|hh)_l(\d+)")


def part_of(name: str) -> str:
    """The part a parameter of a SequenceModel belongs to, by its name."""
    if name.startswith("embedding."):
        return "embedding"
    if name.startswith("head."):
        return "head"
    match = _LAYER.search(name)
    if match:
        return f"{'input' if match.group(2) == 'ih' else 'recurrent'}_l{match.group(3)}"
    return "other"


class StabilityMonitor(Callback):
    """Gradient norm (global and per part), clip share, skipped non-finite steps and loss spikes."""

    def __init__(self, spike_factor: float = 3.0, spike_window: int = 100) -> None:
        self.spike_factor = spike_factor
        self.spike_window = spike_window
        self.steps = 0  # optimizer steps with finite gradients
        self.clipped = 0
        self.spikes = 0
        self.max_grad_norm = 0.0
        self.sum_grad_norm = 0.0
        self.max_part_norm: dict[str, float] = {}
        self._losses: deque[float] = deque(maxlen=spike_window)
        self._max_abs: float | None = None  # the largest |gradient|, for value clipping, before it clips

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        # Callbacks run this hook before Lightning clips; only value clipping needs a look of its own.
        if trainer.gradient_clip_val and trainer.gradient_clip_algorithm == "value":
            grads = [p.grad.abs().max() for p in pl_module.parameters() if p.grad is not None]
            self._max_abs = float(torch.stack(grads).max()) if grads else 0.0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        norms: dict[str, torch.Tensor] = getattr(pl_module, "grad_norms", {})
        if outputs is None or not norms:
            return  # a skipped step: nothing of it enters the statistics
        loss = float(outputs["loss"] if isinstance(outputs, dict) else outputs)
        squares: dict[str, float] = {}
        for name, norm in zip(norms, torch.stack(list(norms.values())).tolist()):  # one device sync, not one a norm
            part = part_of(name)
            squares[part] = squares.get(part, 0.0) + norm**2
        parts = {part: math.sqrt(value) for part, value in squares.items()}
        total = math.sqrt(sum(squares.values()))
        clip = trainer.gradient_clip_val
        if clip:
            over = self._max_abs if trainer.gradient_clip_algorithm == "value" else total
            self.clipped += int(over is not None and over > clip)
        self.steps += 1
        self.max_grad_norm = max(self.max_grad_norm, total)
        self.sum_grad_norm += total
        for part, value in parts.items():
            self.max_part_norm[part] = max(self.max_part_norm.get(part, 0.0), value)
        if len(self._losses) >= 10 and loss > self.spike_factor * statistics.median(self._losses):
            self.spikes += 1
        self._losses.append(loss)
        if trainer.global_step % trainer.log_every_n_steps == 0:
            metrics = {"stability/grad_norm": total, "stability/clip_share": self.clipped / self.steps,
                       "stability/skipped_steps": getattr(pl_module, "skipped_steps", 0),
                       "stability/loss_spikes": self.spikes}
            metrics.update({f"stability/grad_norm_{part}": value for part, value in parts.items()})
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)

    def summary(self, pl_module: L.LightningModule | None = None) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "max_grad_norm": self.max_grad_norm,
            "mean_grad_norm": self.sum_grad_norm / self.steps if self.steps else None,
            "max_grad_norm_per_part": dict(self.max_part_norm),
            "clipped_steps": self.clipped,
            "clip_share": self.clipped / self.steps if self.steps else None,
            "loss_spikes": self.spikes,
            "skipped_steps": getattr(pl_module, "skipped_steps", 0) if pl_module is not None else None,
        }

    _COUNTERS = ("steps", "clipped", "spikes", "max_grad_norm", "sum_grad_norm", "max_part_norm")

    def state_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self._COUNTERS} | {"losses": list(self._losses)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for key in self._COUNTERS:
            setattr(self, key, state_dict[key])
        self._losses = deque(state_dict["losses"], maxlen=self.spike_window)
