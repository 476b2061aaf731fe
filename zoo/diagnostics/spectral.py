"""Spectral radius and largest singular value of every recurrent weight matrix, gate block by gate block.

The recurrent matrix decides whether a signal grows or fades from one step to the
next: for a linear RNN, h_t = W h_{t-1}, it fades when the spectral radius of W is
below 1 and explodes above; the largest singular value bounds the growth of one step.
An LSTM's W_hh stacks four H × H blocks (input, forget, cell, output gates), a GRU's
three (reset, update, new): each is measured on its own. Which parameters are
recurrent and how their blocks are named is the cell's descriptor (zoo.cells).

A cell without a square recurrent matrix (an elementwise or diagonal recurrence) has
nothing to measure: ``spectra_do_not_apply`` says why, ``recurrent_spectra`` is empty
and the monitor's summary says so, instead of failing a run.
"""

from __future__ import annotations

from typing import Any

import lightning as L

from zoo.cadence import DIAGNOSTICS_EVERY_N_STEPS
from zoo.cells import Cell
from zoo.cells.base import matrix_spectrum, split_name
from zoo.diagnostics.periodic import PeriodicProbe


def spectra_do_not_apply(cell: Cell) -> str | None:
    """Why the spectra do not apply to ``cell``, or None where they do."""
    if cell.recurrent_matrix or cell.spectra is not None:
        return None
    return (f"does not apply: cell {cell.name!r} has no square recurrent matrix "
            f"({cell.recurrence_in_words()})")


def recurrent_spectra(backbone) -> dict[str, dict[str, float]]:
    """{"l0.f": {"radius": ..., "sigma_max": ...}, ...} for an RNNBackbone; "l0" alone for a single gate block.

    Empty for a cell without a square recurrent matrix (``spectra_do_not_apply``).
    """
    cell = backbone.cell
    if spectra_do_not_apply(cell):
        return {}
    if cell.spectra is not None:
        return cell.spectra(backbone.rnn)
    result = {}
    for name, weight in backbone.rnn.named_parameters():
        base = (split_name(name) or ("",))[0]
        if base not in cell.recurrent_weights:
            continue
        where = name.removeprefix(f"{base}_")  # "l0" or "l0_reverse"
        if len(cell.recurrent_weights) > 1:
            where = f"{base}.{where}"
        blocks = weight.detach().double().cpu().chunk(cell.num_gates, dim=0)  # G of (H, H)
        for gate, block in zip(cell.gates, blocks):
            key = f"{where}.{gate}" if gate else where
            result[key] = matrix_spectrum(block)
    return result


class SpectralMonitor(PeriodicProbe):
    """Logs ``recurrent_spectra`` at initialization, every ``every_n_steps`` optimizer steps and at the end."""

    def __init__(self, every_n_steps: int = DIAGNOSTICS_EVERY_N_STEPS) -> None:
        super().__init__(every_n_steps)
        self.not_applicable: str | None = None  # the reason, for a cell without a square recurrent matrix

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.not_applicable = spectra_do_not_apply(pl_module.backbone.cell)
        if self.not_applicable:
            return  # nothing to measure, log or keep
        spectra = recurrent_spectra(pl_module.backbone)
        metrics = {f"spectral/{key}/{kind}": value for key, values in spectra.items() for kind, value in values.items()}
        self.record({"step": trainer.global_step, "spectra": spectra}, trainer, metrics)

    def summary(self) -> dict[str, Any]:
        if self.not_applicable:
            return {"applies": False, "reason": self.not_applicable}
        if not self.history:
            return {}
        first, last = self.history[0]["spectra"], self.history[-1]["spectra"]
        return {"max_radius_at_init": max(v["radius"] for v in first.values()),
                "max_radius_final": max(v["radius"] for v in last.values()),
                "final": last}
