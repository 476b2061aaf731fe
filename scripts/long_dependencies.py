"""Long-dependency ability: the longest T each reference model solves, and how a model trained at T fares at other lengths.

    python scripts/long_dependencies.py                                   # adding, T = 50 .. 800, CPU
    python scripts/long_dependencies.py --task copy --lengths 50 100 200 --accelerator auto

For each model of ``tasks/reference.py``: train at each length in ``--lengths``, in
increasing order, for the whole step budget ``--max_steps`` (no early stop: a model
stopped the moment validation touches the target sits on the line, and the test set
then decides by noise); a length is solved when the test metric meets the task's
target at that length (adding: MSE <= 0.01). A diverged run solves nothing. The search stops at the first length a
model does not solve. The model trained at the first length is also tested at T/2, T,
2T and 4T. Prints a table, writes the rows as JSON and draws the test metric against T.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

from tasks.adding import AddingProblem
from tasks.copy_memory import CopyMemory
from zoo.app.recipes import ADDING_REFERENCE, reference_recipe
from zoo.diagnostics import at_length, evaluate_at_lengths, length_factors
from zoo.errors import ZooError
from zoo.files import write_json_atomic
from zoo.module import SequenceModel
from zoo.app.plots import plot_lengths
from zoo.train import fit_and_test, seed_run

TASKS = {"adding": AddingProblem, "copy": CopyMemory}


def meets(value: float | None, target: float, mode: str) -> bool:
    if value is None or value != value:
        return False
    return value <= target if mode == "min" else value >= target


def replot(path: Path) -> int:
    saved = json.loads(path.read_text())
    curves = {row["model"]: {int(t): m[saved["metric"]] for t, m in row["at_lengths"].items()} for row in saved["rows"]}
    print(plot_lengths(curves, saved["metric"], path.with_suffix(".png"), trained_at=saved["lengths"][0],
                       target=saved.get("target"), baseline=saved.get("baseline")))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, default="adding")
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200, 400, 800])
    parser.add_argument("--models", nargs="+", default=list(ADDING_REFERENCE))
    parser.add_argument("--max_steps", type=int, default=3000)
    parser.add_argument("--test_size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--out", default="long_dependencies.json", help="JSON rows; the figure goes beside it (.png)")
    parser.add_argument("--replot", action="store_true", help="only draw the figure again from the JSON at --out")
    args = parser.parse_args(argv)
    if args.replot:
        return replot(Path(args.out))
    try:
        recipes = [reference_recipe(name) for name in args.models]
        base = TASKS[args.task](seq_len=sorted(args.lengths)[0], test_size=args.test_size)
    except ZooError as err:
        parser.error(str(err))
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")

    rows, curves, at_lengths = [], {}, {}
    metric = base.task_spec.target_metric
    plotted = metric  # the solved criterion; adding's accuracy (|error| < 0.04) is ~0 off the trained length
    print(f"{args.task}: solved when test {metric} meets the target at that length; {args.max_steps} steps at most")
    for recipe in recipes:
        longest, tried = None, []
        for seq_len in sorted(args.lengths):
            data = at_length(base, seq_len)
            spec = data.task_spec
            seed_run(args.seed)
            model = SequenceModel(spec, recipe.backbone, recipe.optim)
            result = fit_and_test(model, data, max_steps=args.max_steps, seed=args.seed, clip_val=recipe.clip_val,
                                  clip_algorithm=recipe.clip_algorithm, stop_at_target=False,
                                  trainer_kwargs={"accelerator": args.accelerator})
            value = result.test.get(metric)
            solved = meets(value, spec.target, spec.target_mode)
            tried.append(dict(seq_len=seq_len, test=result.test, steps=result.steps, diverged=result.diverged,
                              solved=solved, device=result.device))
            print(f"  {recipe.name:<16} T={seq_len:<5} test {metric} {value if value is not None else float('nan'):.4f}"
                  f"  {'solved' if solved else 'not solved'} in {result.steps} steps", flush=True)
            if seq_len == sorted(args.lengths)[0]:
                lengths = length_factors(seq_len)
                at_lengths[recipe.name] = evaluate_at_lengths(model, data, lengths, accelerator=args.accelerator)
                curves[recipe.name] = {t: at_lengths[recipe.name][t][plotted] for t in lengths}
            if not solved:
                break
            longest = seq_len
        rows.append(dict(model=recipe.name, longest_solved=longest, runs=tried,
                         trained_at=sorted(args.lengths)[0], at_lengths=at_lengths[recipe.name]))
    print(f"\n{'model':<16} {'longest T solved':>16}   {plotted} of the model trained at T={sorted(args.lengths)[0]} "
          f"at T = {', '.join(str(t) for t in length_factors(sorted(args.lengths)[0]))}")
    for row in rows:
        values = "  ".join(f"{v[plotted]:.4f}" for v in row["at_lengths"].values())
        print(f"{row['model']:<16} {str(row['longest_solved'] or 'none'):>16}   {values}")
    out = Path(args.out)
    spec = base.task_spec
    target = spec.target if plotted == spec.target_metric else None
    baseline = spec.baselines.get(plotted)
    write_json_atomic(out, dict(task=args.task, metric=metric, lengths=sorted(args.lengths), max_steps=args.max_steps,
                                seed=args.seed, rows=rows, target=target, baseline=baseline))
    plot_lengths(curves, plotted, out.with_suffix(".png"), trained_at=sorted(args.lengths)[0], target=target,
                 baseline=baseline)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
