"""Train an LSTM (hidden 128, batch 128, Adam lr 1e-3, gradient norm clipped at 1.0) on sequential MNIST.

    python scripts/smnist.py                                  # pixel by pixel (784 steps), 30 minutes
    python scripts/smnist.py --permuted --max_epochs 20       # psMNIST, permutation of seed 0
    python scripts/smnist.py --variant row --max_minutes 5    # row by row (28 steps): quick
    python scripts/smnist.py --limit_train_batches 3 --max_epochs 1 --limit_eval_batches 1   # smoke run

Validation (5,000 images) runs after each epoch. Prints, per epoch, its steps, the
seconds spent training and validating, and the validation accuracy; then the steps,
the step at which validation first reached the task's target, and the test accuracy
beside the trivial baseline. --max_minutes is the training budget in wall-clock
minutes (Lightning's ``max_time``); a run cut short ends inside an epoch.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import datetime
import logging
import sys
import time
import warnings

import lightning as L
from lightning.pytorch.callbacks import Callback

from tasks.mnist import VARIANTS, SequentialMNIST
from zoo.errors import ZooError
from zoo.files import write_json_atomic
from zoo.models.rnn import RNNConfig
from zoo.module import SequenceModel
from zoo.optim import OptimConfig
from zoo.diagnostics import ConvergenceMonitor
from zoo.train import seed_run


class EpochTimer(Callback):
    """Seconds of each training epoch, with the validation run at its end measured apart."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float | int | None]] = []
        self._start = self._val_start = self._val = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._val = time.perf_counter(), 0.0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val += time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = time.perf_counter() - self._start
        accuracy = trainer.callback_metrics.get("val_accuracy") if self._val else None
        self.rows.append(dict(epoch=trainer.current_epoch + 1, steps=trainer.global_step,
                              train_seconds=total - self._val, val_seconds=self._val,
                              val_accuracy=None if accuracy is None else float(accuracy)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=VARIANTS, default="pixel", help="pixel: 784 steps x 1; row: 28 x 28")
    parser.add_argument("--permuted", action="store_true", help="psMNIST: one fixed pixel permutation")
    parser.add_argument("--permutation_seed", type=int, default=0)
    parser.add_argument("--max_minutes", type=float, default=30.0, help="training budget, wall-clock minutes")
    parser.add_argument("--max_epochs", type=int, default=-1, help="-1: until --max_minutes")
    parser.add_argument("--limit_train_batches", type=int, default=None, help="batches per epoch (default all 430)")
    parser.add_argument("--limit_eval_batches", type=int, default=None, help="val and test batches (default: all)")
    parser.add_argument("--data_dir", default=None, help="folder with mnist/*-ubyte.gz (default: cache or download)")
    parser.add_argument("--offline", action="store_true", help="no downloads: data_dir or the cache only")
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--stop_at_target", action="store_true", help="stop once validation reaches the target")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.max_minutes <= 0:
        parser.error(f"--max_minutes must be > 0, got {args.max_minutes}")
    try:
        data = SequentialMNIST(variant=args.variant, permuted=args.permuted, permutation_seed=args.permutation_seed,
                               batch_size=args.batch_size, data_dir=args.data_dir, offline=args.offline or None)
        seed_run(args.seed)
        model = SequenceModel(data.task_spec, RNNConfig(cell="lstm", hidden_size=args.hidden_size),
                              OptimConfig(name="adam", lr=args.lr))
    except ZooError as err:
        parser.error(str(err))
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")

    task = data.task_spec
    timer, watch = EpochTimer(), ConvergenceMonitor(task, stop=args.stop_at_target)
    seed_run(args.seed)  # again, so training draws the same numbers whatever building the model drew
    trainer = L.Trainer(
        max_epochs=args.max_epochs,
        max_time=datetime.timedelta(minutes=args.max_minutes),
        limit_train_batches=args.limit_train_batches,
        limit_val_batches=args.limit_eval_batches,
        limit_test_batches=args.limit_eval_batches,
        gradient_clip_val=1.0,
        gradient_clip_algorithm="norm",
        deterministic=True,
        accelerator=args.accelerator,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[timer, watch],
    )
    try:
        start = time.perf_counter()
        trainer.fit(model, datamodule=data)
        seconds = time.perf_counter() - start
        test = trainer.test(model, datamodule=data, verbose=False)[0]
    except ZooError as err:
        print(f"smnist: error: {err}", file=sys.stderr)
        return 2

    steps = trainer.global_step
    print(f"{task.name}: LSTM 1x{args.hidden_size}, batch {args.batch_size}, Adam lr {args.lr:g}, clip norm 1.0, "
          f"on {trainer.strategy.root_device}")
    print(f"{'epoch':>5} {'steps':>6} {'train s':>8} {'val s':>7} {'val acc':>8}")
    for row in timer.rows:
        acc = "-" if row["val_accuracy"] is None else f"{row['val_accuracy']:.4f}"
        print(f"{row['epoch']:>5} {row['steps']:>6} {row['train_seconds']:>8.1f} {row['val_seconds']:>7.1f} {acc:>8}")
    train_seconds = sum(row["train_seconds"] for row in timer.rows)
    per_step = train_seconds / steps if steps else float("nan")
    reached = f"step {watch.step} ({watch.seconds:.0f} s)" if watch.step is not None else "not reached"
    print(f"{steps} steps in {seconds:.1f} s ({per_step:.3f} s per training step); "
          f"validation accuracy {task.target} {reached}")
    print(f"test accuracy {test['test_accuracy']:.4f}; trivial baseline {task.baselines['accuracy']:.4f} "
          f"({task.baseline_note})")
    if args.json:
        result = dict(task=task.name, variant=args.variant, permuted=args.permuted,
                      permutation_seed=args.permutation_seed if args.permuted else None, hidden_size=args.hidden_size,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed, steps=steps, seconds=seconds,
                      epochs=timer.rows, steps_to_target=watch.step, seconds_to_target=watch.seconds,
                      test_accuracy=test["test_accuracy"], device=str(trainer.strategy.root_device))
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
