"""Train the reference models on the adding problem on this CPU and print a results table.

    python scripts/adding_reference.py                       # T=100, every reference model
    python scripts/adding_reference.py --seq_len 100 200 --models lstm_1x128 gru_1x128 --max_steps 6000

Each run stops when validation MSE first reaches 0.01 (the target) or at --max_steps.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import logging
import sys
import warnings

from tasks.adding import TRIVIAL_MSE, AddingProblem
from zoo.app.recipes import ADDING_REFERENCE, reference_recipe
from zoo.errors import ZooError
from zoo.files import write_json_atomic
from zoo.module import SequenceModel
from zoo.train import fit_and_test, seed_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq_len", type=int, nargs="+", default=[100], help="sequence lengths T")
    parser.add_argument("--models", nargs="+", default=list(ADDING_REFERENCE), help="reference model names")
    parser.add_argument("--max_steps", type=int, default=3000, help="optimizer-step budget per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test_size", type=int, default=10_000)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    try:
        recipes = [reference_recipe(name) for name in args.models]
        datasets = {seq_len: AddingProblem(seq_len=seq_len, test_size=args.test_size) for seq_len in args.seq_len}
    except ZooError as err:
        parser.error(str(err))
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # one table, not a banner per run
    warnings.filterwarnings("ignore", module="lightning")

    rows = []
    header = f"{'model':<16} {'T':>5} {'test MSE':>9} {'accuracy':>9} {'to 0.01':>8} {'steps':>6} {'seconds':>8}"
    print(header, flush=True)
    for seq_len in args.seq_len:
        for recipe in recipes:
            data = datasets[seq_len]
            seed_run(args.seed)  # a row's initial weights depend on its seed alone, not on the rows before it
            model = SequenceModel(data.task_spec, recipe.backbone, recipe.optim)
            result = fit_and_test(
                model,
                data,
                max_steps=args.max_steps,
                seed=args.seed,
                clip_val=recipe.clip_val,
                clip_algorithm=recipe.clip_algorithm,
            )
            row = dict(
                model=recipe.name,
                seq_len=seq_len,
                test_mse=result.test["mse"],
                test_accuracy=result.test["accuracy"],
                steps_to_target=result.steps_to_target,
                seconds_to_target=result.seconds_to_target,
                steps=result.steps,
                seconds=result.seconds,
                max_steps=args.max_steps,
                seed=args.seed,
            )
            rows.append(row)
            reached = str(result.steps_to_target) if result.reached_target else "never"
            print(
                f"{recipe.name:<16} {seq_len:>5} {row['test_mse']:>9.4f} {row['test_accuracy']:>9.3f} "
                f"{reached:>8} {result.steps:>6} {result.seconds:>8.1f}",
                flush=True,
            )
    print(f"trivial baseline: test MSE {TRIVIAL_MSE:.4f} (always predicting 1.0); target MSE 0.01")
    if args.json:
        write_json_atomic(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
