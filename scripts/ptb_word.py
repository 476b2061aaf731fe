"""Word-level Penn Treebank, the "small" configuration of Zaremba, Sutskever & Vinyals (2014).

    python scripts/ptb_word.py                      # 13 epochs, prints test perplexity and wall time
    python scripts/ptb_word.py --epochs 1 --limit_train_batches 50   # a quick look

2-layer LSTM, 200 units, no dropout, every weight U(-0.1, 0.1), BPTT 20, batch 20, SGD
with gradient norm clipped and the lr halved after each epoch from the 5th on, 13
epochs. The paper (and TensorFlow's ptb_word_lm, which reports 115.9 test perplexity)
sums the loss over the 20 steps of a window and uses lr 1 and clip 5; we average over
steps, whose gradient is 20x smaller, so the same updates are lr 20 and clip 0.25
(pytorch/examples' defaults, for the same reason).
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import logging
import math
import sys
import time
import warnings

import lightning as L
from lightning.pytorch.callbacks import Callback

from tasks.datafiles import shared_data_dir
from tasks.language import LanguageModelling
from zoo.errors import ZooError
from zoo.models.rnn import RNNConfig
from zoo.module import SequenceModel
from zoo.optim import OptimConfig
from zoo.train import fit_and_test

ANCHOR = 115.9


class EpochReport(Callback):
    """One line per epoch: lr, training and validation perplexity, elapsed seconds."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        train = math.exp(float(m["train_loss"])) if "train_loss" in m else float("nan")
        print(f"epoch {trainer.current_epoch + 1:>2}  lr {lr:7.4f}  train ppl (last batch) {train:8.1f}  "
              f"valid ppl {float(m['val_perplexity']):7.2f}  {time.perf_counter() - self.start:7.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=13)
    parser.add_argument("--data_dir", default=None, help="folder of the original files (default: ../shared/data if present)")
    parser.add_argument("--limit_train_batches", type=float, default=1.0)
    parser.add_argument("--limit_eval_batches", type=float, default=1.0, help="validation and test windows (smoke runs)")
    parser.add_argument("--eval_batch_size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tie_weights", action="store_true", help="not in the paper's recipe; off by default")
    args = parser.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")
    data_dir = args.data_dir or (str(shared_data_dir()) if shared_data_dir() else None)
    try:
        data = LanguageModelling("ptb", batch_size=20, bptt=20, eval_batch_size=args.eval_batch_size, data_dir=data_dir)
        backbone = RNNConfig(cell="lstm", hidden_size=200, num_layers=2, input_init="uniform", recurrent_init="uniform",
                             init_range=0.1)
        optim = OptimConfig(name="sgd", lr=20.0, schedule="step", step_size=1, gamma=0.5, decay_start=4)
        model = SequenceModel(data.task_spec, backbone, optim, tie_weights=args.tie_weights)
    except ZooError as err:
        parser.error(str(err))
    params = sum(p.numel() for p in model.parameters())
    print(f"PTB word, vocab {len(data.vocab)}, 2x200 LSTM, {params:,} parameters, {args.epochs} epochs", flush=True)
    result = fit_and_test(
        model,
        data,
        max_steps=-1,
        seed=args.seed,
        clip_val=0.25,
        stop_at_target=False,
        trainer_kwargs={"max_epochs": args.epochs, "limit_train_batches": args.limit_train_batches,
                        "limit_val_batches": args.limit_eval_batches, "limit_test_batches": args.limit_eval_batches,
                        "callbacks": [EpochReport()]},
    )
    test_ppl = result.test["perplexity"]
    print(f"test perplexity {test_ppl:.2f} (published anchor {ANCHOR}; unigram baseline "
          f"{data.task_spec.baselines['perplexity']:.1f}); {result.steps} steps, {result.seconds / 60:.1f} min training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
