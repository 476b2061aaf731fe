"""Vanishing and exploding gradients through time: ‖∂L/∂h_t‖ for every step t.

The loss is the task's loss at the final step alone (the last-step head's loss, or an
every-step head's prediction at step T), on a fixed probe batch, so the curve shows
how much of the error signal at T reaches each earlier step: the picture of the
cs224n lecture on vanishing gradients. Each norm is the Frobenius norm over the probe
batch of the gradient with respect to the (B, H) state after step t.

The one-number summary, kept for every run: ``decay_log10`` =
log10(‖∂L/∂h_1‖ / ‖∂L/∂h_T‖) in the first layer's forward direction, the path every
long dependency has to cross. 0 means the signal arrives undiminished, -3 that a
thousandth of it does, positive values that it grows (exploding).

The probe runs on a float64 copy of the model: in float32 a tanh RNN's gradient at
T=200 passes below 1e-38, where a CPU that flushes denormals reads 0 and a GPU stops
at 1e-45, so the curve would show the number format, not the network. Norms are
floored at 1e-300 so that a gradient that is exactly zero reads as -300 orders, not -inf.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import lightning as L
import torch

from zoo.cadence import DIAGNOSTICS_EVERY_N_STEPS
from zoo.diagnostics.periodic import PeriodicProbe
from zoo.diagnostics.probe import probe_batch
from zoo.diagnostics.unroll import unrolled_forward
from zoo.files import write_json_atomic

NORM_FLOOR = 1e-300


def gradient_over_time(model, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """‖∂L/∂h_t‖ per layer and direction ("l0", "l0_reverse", "l1", ...) for t = 1..T, and the loss.

    ``model`` is a SequenceModel; the probe runs on a float64 copy of it in eval mode
    (no dropout; float32 where the device has no float64, as on MPS), so the model
    itself, its mode and its ``.grad`` are left alone.
    """
    dtype = torch.float32 if x.device.type == "mps" else torch.float64
    probe = copy.deepcopy(model).to(dtype).eval()
    if x.is_floating_point():
        x = x.to(dtype)
    if y.is_floating_point():
        y = y.to(dtype)
    with torch.enable_grad():
        outputs, state, hidden = unrolled_forward(probe.backbone, probe.embed(x))
        out = probe.read_out(outputs, state)
        if out.dim() == 3:  # every-step head: the prediction at the final step only
            out, y = out[:, -1], y[:, -1]
        loss = probe.task_loss(out, y)
        flat = [h for layer in hidden for direction in layer for h in direction]
        grads = torch.autograd.grad(loss, flat, allow_unused=True)
    norms: dict[str, list[float]] = {}
    steps = len(hidden[0][0])
    for k, grad in enumerate(grads):
        layer, direction = divmod(k // steps, len(hidden[0]))
        name = f"l{layer}" + ("_reverse" if direction else "")
        value = 0.0 if grad is None else float(torch.linalg.vector_norm(grad.double()))
        norms.setdefault(name, []).append(value)
    return {"loss": float(loss.detach()), "norms": norms}


def decay_log10(norms: list[float]) -> float:
    """log10(‖∂L/∂h_1‖ / ‖∂L/∂h_T‖), with both norms floored at ``NORM_FLOOR``."""
    return math.log10(max(norms[0], NORM_FLOOR)) - math.log10(max(norms[-1], NORM_FLOOR))


class GradientOverTime(PeriodicProbe):
    """Measures ‖∂L/∂h_t‖ at initialization, every ``every_n_steps`` steps and at the end of training.

    The probe batch is the first ``probe_size`` sequences of the first validation batch
    (or training batch, when there is no validation data), taken once, so every
    measurement of a run sees the same sequences. The curves go to
    ``grad_over_time.json`` in the logger's folder; the summary to the loggers and to
    ``summary()`` (and so to the run record).
    """

    def __init__(self, every_n_steps: int = DIAGNOSTICS_EVERY_N_STEPS, probe_size: int = 32) -> None:
        super().__init__(every_n_steps)
        self.probe_size = probe_size
        self._probe: tuple[torch.Tensor, torch.Tensor] | None = None

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._probe is None:
            self._probe = probe_batch(trainer, self.probe_size, pl_module.device)
        result = gradient_over_time(pl_module, *self._probe)
        decay = decay_log10(result["norms"]["l0"])
        entry = {"step": trainer.global_step, "loss": result["loss"], "decay_log10": decay, "norms": result["norms"]}
        self.record(entry, trainer, {"gradients/decay_log10": decay})

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if trainer.log_dir and trainer.loggers:
            write_json_atomic(f"{trainer.log_dir}/grad_over_time.json", self.history)

    def summary(self) -> dict[str, Any]:
        if not self.history:
            return {}
        first, last = self.history[0], self.history[-1]
        return {"decay_log10_at_init": first["decay_log10"], "decay_log10_final": last["decay_log10"],
                "measured_steps": [entry["step"] for entry in self.history],
                "final_norms_l0": last["norms"]["l0"]}
