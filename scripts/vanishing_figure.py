"""The vanishing-gradient picture: ‖∂L/∂h_t‖ against t for the reference models, at initialization and trained.

    python scripts/vanishing_figure.py                       # adding problem, T=200, 3,000 steps each
    python scripts/vanishing_figure.py --accelerator auto --out docs/figures/vanishing_T200.png

Trains each reference model of ``tasks/reference.py`` (tanh RNN, IRNN, LSTM, GRU) on
the adding problem at length T with the gradient-over-time probe on (at initialization
and at the end), then draws both moments in one figure and writes the curves beside it
as JSON (same name, ``.json``), from which ``zoo.app.plots`` can draw it again.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import logging
import sys
import warnings
from pathlib import Path

from tasks.adding import AddingProblem
from zoo.app.recipes import ADDING_REFERENCE, reference_recipe
from zoo.diagnostics import GradientOverTime
from zoo.errors import ZooError
from zoo.files import write_json_atomic
from zoo.module import SequenceModel
from zoo.app.plots import Run, plot_gradients_over_time
from zoo.train import fit_and_test, seed_run

ORDER = ("rnn_tanh_1x128", "irnn_1x128", "lstm_1x128", "gru_1x128")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq_len", type=int, default=200)
    parser.add_argument("--models", nargs="+", default=list(ORDER), help=f"of: {', '.join(ADDING_REFERENCE)}")
    parser.add_argument("--max_steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test_size", type=int, default=10_000)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--out", default="docs/figures/vanishing_T200.png")
    args = parser.parse_args(argv)
    try:
        recipes = [reference_recipe(name) for name in args.models]
        data = AddingProblem(seq_len=args.seq_len, test_size=args.test_size)
    except ZooError as err:
        parser.error(str(err))
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")

    runs, rows = [], []
    for recipe in recipes:
        seed_run(args.seed)
        model = SequenceModel(data.task_spec, recipe.backbone, recipe.optim)
        probe = GradientOverTime(every_n_steps=0)  # at initialization and at the end only
        result = fit_and_test(model, data, max_steps=args.max_steps, seed=args.seed, clip_val=recipe.clip_val,
                              clip_algorithm=recipe.clip_algorithm,
                              trainer_kwargs={"accelerator": args.accelerator, "callbacks": [probe]})
        runs.append(Run(recipe.name, gradients=probe.history))
        summary = probe.summary()
        rows.append(dict(model=recipe.name, steps=result.steps, test_mse=result.test.get("mse"),
                         steps_to_target=result.steps_to_target, device=result.device, **summary,
                         history=probe.history))
        print(f"{recipe.name:<16} steps {result.steps:>5}  test MSE {result.test.get('mse', float('nan')):.4f}  "
              f"decay_log10 at init {summary['decay_log10_at_init']:7.2f}  trained {summary['decay_log10_final']:7.2f}  "
              f"on {result.device}", flush=True)
    out = Path(args.out)
    plot_gradients_over_time(runs, out, title=f"adding problem, T={args.seq_len}: ‖∂L/∂h_t‖ of the final-step loss")
    write_json_atomic(out.with_suffix(".json"), dict(seq_len=args.seq_len, max_steps=args.max_steps, seed=args.seed,
                                                     command=" ".join(["python", "scripts/vanishing_figure.py", *(argv or sys.argv[1:])]),
                                                     runs=rows))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
