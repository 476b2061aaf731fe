"""What the diagnostics cost: training-step speed with them on, as a ratio to the same steps with them off.

    python scripts/diagnostics_cost.py                    # LSTM 128, batch 128, adding T=28 and T=200
    python scripts/diagnostics_cost.py --cell gru --seq_len 784 --steps 20

Everything is measured in this one process on the same model and batches:
- a step without diagnostics and a step with the every-step monitors (stability,
  convergence), each the median over ``--steps`` steps after ``--warmup`` steps;
- one measurement of each periodic probe (gradient through time, spectra), the
  median of three, which at the default cadence is paid once every N steps.
The ratio printed is speed with diagnostics / speed without, at the default cadence:
t_off / (t_on + t_probes / N). The goal is >= 0.90.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import logging
import statistics
import sys
import time
import warnings
from types import SimpleNamespace

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from tasks.adding import AddingProblem
from zoo.diagnostics import DIAGNOSTICS_EVERY_N_STEPS, ConvergenceMonitor, GradientOverTime, SpectralMonitor, StabilityMonitor
from zoo.models.rnn import CELLS, RNNConfig
from zoo.module import SequenceModel
from zoo.train import seed_run


class StepTimer(Callback):
    """Wall time of each training step, the callbacks listed before this one included."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter() - self._start)


def step_time(model: SequenceModel, data: AddingProblem, callbacks: list[Callback], steps: int, warmup: int) -> float:
    timer = StepTimer()
    trainer = L.Trainer(max_steps=steps + warmup, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, gradient_clip_val=1.0, deterministic=True,
                        callbacks=[*callbacks, timer])
    trainer.fit(model, datamodule=data)
    return statistics.median(timer.times[warmup:])


def probe_time(probe, model: SequenceModel, data: AddingProblem) -> float:
    trainer = SimpleNamespace(datamodule=data, global_step=0, loggers=[])  # all a probe reads of its trainer
    times = []
    for _ in range(3):
        start = time.perf_counter()
        probe.measure(trainer, model)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=CELLS, default="lstm")
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--seq_len", type=int, nargs="+", default=[28, 200])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--every_n_steps", type=int, default=DIAGNOSTICS_EVERY_N_STEPS)
    args = parser.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")
    print(f"{args.cell.upper()} {args.hidden_size}, batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; probes every {args.every_n_steps} steps")
    print(f"{'T':>5} {'off ms':>8} {'on ms':>8} {'probe ms':>9} {'spectra ms':>10} {'speed ratio':>12}")
    worst = 1.0
    for seq_len in args.seq_len:
        data = AddingProblem(seq_len=seq_len, batch_size=args.batch_size, val_size=256, test_size=256)
        seed_run(0)
        model = SequenceModel(data.task_spec, RNNConfig(cell=args.cell, hidden_size=args.hidden_size))
        off = step_time(model, data, [], args.steps, args.warmup)
        on = step_time(model, data, [StabilityMonitor(), ConvergenceMonitor(data.task_spec)], args.steps, args.warmup)
        probe = probe_time(GradientOverTime(), model, data)
        spectra = probe_time(SpectralMonitor(), model, data)
        ratio = off / (on + (probe + spectra) / args.every_n_steps)
        worst = min(worst, ratio)
        print(f"{seq_len:>5} {off * 1e3:>8.1f} {on * 1e3:>8.1f} {probe * 1e3:>9.1f} {spectra * 1e3:>10.1f} {ratio:>11.3f}x",
              flush=True)
    print(f"slowest speed ratio with diagnostics: {worst:.3f}x (goal >= 0.90)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
