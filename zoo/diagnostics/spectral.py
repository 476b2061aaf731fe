"""Spectral radius and largest singular value of every recurrent weight matrix, gate block by gate block.

The recurrent matrix decides whether a signal grows or fades from one step to the
next: for a linear RNN, h_t = W h_{t-1}, it fades when the spectral radius of W is
below 1 and explodes above; the largest singular value bounds the growth of one step.
An LSTM's W_hh stacks four H × H blocks (input, forget, cell, output gates), a GRU's
three (reset, update, new): each is measured on its own.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from zoo.diagnostics.periodic import PeriodicProbe

GATE_NAMES = {"rnn": ("",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}


def recurrent_spectra(backbone) -> dict[str, dict[str, float]]:
    """{"l0.f": {"radius": ..., "sigma_max": ...}, ...} for an RNNBackbone; "l0" alone for the vanilla cell."""
    gates = GATE_NAMES[backbone.config.cell]
    result = {}
    for name, weight in backbone.rnn.named_parameters():
        if not name.startswith("weight_hh_"):
            continue
        where = name.removeprefix("weight_hh_")  # "l0" or "l0_reverse"
        blocks = weight.detach().double().cpu().chunk(len(gates), dim=0)  # G of (H, H)
        for gate, block in zip(gates, blocks):
            key = f"{where}.{gate}" if gate else where
            result[key] = {
                "radius": float(torch.linalg.eigvals(block).abs().max()),
                "sigma_max": float(torch.linalg.matrix_norm(block, ord=2)),
            }
    return result


class SpectralMonitor(PeriodicProbe):
    """Logs ``recurrent_spectra`` at initialization, every ``every_n_steps`` optimizer steps and at the end."""

    def __init__(self, every_n_steps: int = 500) -> None:
        super().__init__(every_n_steps)

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        spectra = recurrent_spectra(pl_module.backbone)
        metrics = {f"spectral/{key}/{kind}": value for key, values in spectra.items() for kind, value in values.items()}
        self.record({"step": trainer.global_step, "spectra": spectra}, trainer, metrics)

    def summary(self) -> dict[str, Any]:
        if not self.history:
            return {}
        first, last = self.history[0]["spectra"], self.history[-1]["spectra"]
        return {"max_radius_at_init": max(v["radius"] for v in first.values()),
                "max_radius_final": max(v["radius"] for v in last.values()),
                "final": last}
