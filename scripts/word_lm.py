"""Word-level language models with their published recipes: test perplexity and wall time.

    python scripts/word_lm.py                                   # PTB, Zaremba et al.'s "small": 13 epochs
    python scripts/word_lm.py --recipe wikitext2_examples --max_minutes 45 --accelerator auto
    python scripts/word_lm.py --epochs 1 --limit_train_batches 50   # a quick look

Recipes (the benchmarks ``ptb_word`` and ``wikitext2_word`` in ``zoo/app/catalogue.py``):
- ``ptb_small``: 2-layer LSTM, 200 units, no dropout, every weight U(-0.1, 0.1), BPTT 20,
  batch 20, SGD with gradient norm clipped and the lr halved after each epoch from the 5th
  on, 13 epochs. TensorFlow's ptb_word_lm reports 115.9 test perplexity.
- ``wikitext2_examples``: pytorch/examples' ``word_language_model`` defaults, tied: 2 x 200,
  dropout 0.2, SGD lr 20 divided by 4 whenever validation stops improving, clip 0.25,
  BPTT 35, batch 20, 40 epochs (users report 100.3 test perplexity).

``--max_minutes`` stops training at a wall-clock budget (Lightning's ``max_time``) and
tests the model as it is then; the line per epoch says how far it got.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import datetime
import logging
import math
import sys
import time
import warnings

import lightning as L
from lightning.pytorch.callbacks import Callback

from tasks.datafiles import shared_data_dir
from tasks.language import LanguageModelling
from zoo.app.catalogue import get_benchmark
from zoo.errors import ZooError, check_choice
from zoo.files import write_json_atomic
from zoo.module import SequenceModel
from zoo.train import fit_and_test, seed_run

# The published recipes, by the name this script has always taken, and the benchmark that holds each.
RECIPES = {"ptb_small": "ptb_word", "wikitext2_examples": "wikitext2_word"}


def batch_limit(text: str) -> int | float:
    """Lightning's convention: an integer is a count of batches, a number with a point a fraction ("1" is one batch)."""
    return float(text) if "." in text else int(text)


class EpochReport(Callback):
    """One line per epoch: lr, training and validation perplexity, elapsed seconds."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.rows: list[dict[str, float]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        train = math.exp(float(m["train_loss"])) if "train_loss" in m else float("nan")
        row = dict(epoch=trainer.current_epoch + 1, lr=lr, train_ppl_last_batch=train,
                   val_ppl=float(m["val_perplexity"]), seconds=time.perf_counter() - self.start)
        self.rows.append(row)
        print(f"epoch {row['epoch']:>2}  lr {lr:7.4f}  train ppl (last batch) {train:8.1f}  "
              f"valid ppl {row['val_ppl']:7.2f}  {row['seconds']:7.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="ptb_small", help=f"one of: {', '.join(RECIPES)}")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--max_minutes", type=float, default=None, help="training budget, wall-clock minutes")
    parser.add_argument("--data_dir", default=None, help="folder of the original files (default: ../shared/data if present)")
    parser.add_argument("--limit_train_batches", type=batch_limit, default=1.0, help="windows per epoch (3) or share (0.5)")
    parser.add_argument("--limit_eval_batches", type=batch_limit, default=1.0, help="validation and test windows, likewise")
    parser.add_argument("--eval_batch_size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.max_minutes is not None and args.max_minutes <= 0:
        parser.error(f"--max_minutes must be > 0, got {args.max_minutes}")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")
    data_dir = args.data_dir or (str(shared_data_dir()) if shared_data_dir() else None)
    try:
        bench = get_benchmark(RECIPES[check_choice("language-model recipe", args.recipe, RECIPES)])
        (recipe,) = bench.models.values()
        anchor = bench.anchors[0]
        data = LanguageModelling(**bench.data_args, eval_batch_size=args.eval_batch_size, data_dir=data_dir)
        seed_run(args.seed)
        model = SequenceModel(data.task_spec, recipe.backbone, recipe.optim, **recipe.module)
    except ZooError as err:
        parser.error(str(err))
    epochs = args.epochs or bench.budget("full").max_epochs
    params = sum(p.numel() for p in model.parameters())
    cfg = recipe.backbone
    print(f"{args.recipe}: {data.corpus.name} word, vocab {len(data.vocab)}, {cfg.num_layers}x{cfg.hidden_size} "
          f"{cfg.cell.upper()}, {params:,} parameters, {epochs} epochs", flush=True)
    report = EpochReport()
    trainer_kwargs = {"max_epochs": epochs, "limit_train_batches": args.limit_train_batches,
                      "limit_val_batches": args.limit_eval_batches, "limit_test_batches": args.limit_eval_batches,
                      "accelerator": args.accelerator, "callbacks": [report]}
    if args.max_minutes is not None:
        trainer_kwargs["max_time"] = datetime.timedelta(minutes=args.max_minutes)
    result = fit_and_test(model, data, max_steps=-1, seed=args.seed, clip_val=recipe.clip_val,
                          stop_at_target=False, trainer_kwargs=trainer_kwargs)
    test_ppl = result.test["perplexity"]
    device = result.device
    print(f"test perplexity {test_ppl:.2f} (published anchor {anchor.value}; unigram baseline "
          f"{data.task_spec.baselines['perplexity']:.1f}); {len(report.rows)} epochs, {result.steps} steps, "
          f"{result.seconds / 60:.1f} min training on {device}")
    if args.json:
        write_json_atomic(args.json, dict(recipe=args.recipe, model=recipe.name, corpus=bench.data_args["corpus"], seed=args.seed, params=params,
                                          epochs=report.rows, steps=result.steps, seconds=result.seconds,
                                          test_perplexity=test_ppl, anchor=anchor.value,
                                          anchor_source=anchor.source, device=device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
