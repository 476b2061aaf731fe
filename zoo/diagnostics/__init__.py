"""Callbacks that measure what the zoo is about: stability, vanishing gradients, spectra, convergence.

Any run can switch them on (``default_diagnostics``); they log through Lightning's
loggers and each has a ``summary()`` for the run record.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from zoo.cadence import DIAGNOSTICS_EVERY_N_STEPS
from zoo.diagnostics.convergence import ConvergenceMonitor
from zoo.diagnostics.gradients import GradientOverTime, decay_log10, gradient_over_time
from zoo.diagnostics.lengths import at_length, evaluate_at_lengths, length_factors
from zoo.diagnostics.spectral import SpectralMonitor, recurrent_spectra
from zoo.diagnostics.stability import StabilityMonitor
from zoo.diagnostics.unroll import unrolled_forward
from zoo.task_spec import TaskSpec


def default_diagnostics(task: TaskSpec, *, stop_at_target: bool = False,
                        every_n_steps: int = DIAGNOSTICS_EVERY_N_STEPS) -> list[Callback]:
    """Stability, convergence, gradient-over-time and spectral monitors at the default cadence."""
    return [
        StabilityMonitor(),
        ConvergenceMonitor(task, stop=stop_at_target),
        GradientOverTime(every_n_steps=every_n_steps),
        SpectralMonitor(every_n_steps=every_n_steps),
    ]


def summarize(callbacks: list[Callback], pl_module=None) -> dict:
    """The run record's "diagnostics" section from whichever monitors ran."""
    out = {}
    for callback in callbacks:
        if isinstance(callback, StabilityMonitor):
            out["stability"] = callback.summary(pl_module)
        elif isinstance(callback, ConvergenceMonitor):
            out["convergence"] = callback.summary()
        elif isinstance(callback, GradientOverTime):
            out["gradients"] = callback.summary()
        elif isinstance(callback, SpectralMonitor):
            out["spectral"] = callback.summary()
    return out


__all__ = [
    "ConvergenceMonitor",
    "DIAGNOSTICS_EVERY_N_STEPS",
    "GradientOverTime",
    "SpectralMonitor",
    "StabilityMonitor",
    "at_length",
    "decay_log10",
    "default_diagnostics",
    "evaluate_at_lengths",
    "gradient_over_time",
    "length_factors",
    "recurrent_spectra",
    "summarize",
    "unrolled_forward",
]
