"""The ``zoo`` command: Lightning's CLI for fit / validate / test / predict.

    zoo fit --data AddingProblem --data.seq_len 200 --model.backbone.cell gru --trainer.max_steps 2000
    zoo fit --config run.yaml --print_config
    zoo plot runs/lightning_logs/version_0 --out figures/
    zoo bench run adding_t100 --tier cpu; zoo leaderboard build; zoo reproduce RECORD   (see zoo.commands)

The model is ``SequenceModel``; its ``task`` is not an option but is taken from the
DataModule's ``task_spec`` once the data is built, so the head and loss always match
the data. ``--data`` picks the DataModule class (e.g. ``AddingProblem``, ``CopyMemory``,
``SequentialMNIST``, ``LanguageModelling``); it is required.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.cli import LightningCLI

from zoo.diagnostics import DEFAULT_EVERY_N_STEPS, default_diagnostics
from zoo.errors import ZooError
from zoo.module import SequenceModel
from zoo.runtime import flush_denormal_default, set_flush_denormal

import tasks  # noqa: F401  (registers the DataModules for --data)

class ZooCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--flush_denormal",
            type=bool,
            default=flush_denormal_default(),
            help="Flush denormal floats to zero on the CPU (default true, or ZOO_FLUSH_DENORMAL); "
            "keeping them can make a long-sequence step 10x slower.",
        )
        parser.add_argument(
            "--diagnostics",
            type=bool,
            default=True,
            help="Stability, convergence, gradient-over-time and spectral monitors (zoo.diagnostics); "
            "they log through the trainer's loggers.",
        )
        parser.add_argument(
            "--diagnostics_every_n_steps",
            type=int,
            default=DEFAULT_EVERY_N_STEPS,
            help="How often the gradient-over-time probe and the spectra are measured.",
        )
        parser.link_arguments("data.task_spec", "model.task", apply_on="instantiate")
        # No default DataModule: jsonargparse keeps a default class's init_args that the
        # class chosen later also accepts (batch_size, eval_batch_size...), so a default
        # AddingProblem would silently set the batch size of every other task.

    def _parse_ckpt_path(self) -> None:
        """Apply a checkpoint's model hyperparameters to the config, as Lightning does, but for the task.

        The task is not an option (it is linked from the data), so Lightning's own version
        fails on it; it is rebuilt from the DataModule like in any other run.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if not (ckpt_path and Path(ckpt_path).is_file()):
            return
        ckpt = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        hparams = {k: v for k, v in ckpt.get("hyper_parameters", {}).items() if k not in ("_instantiator", "task")}
        if hparams:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        # No torch op has run yet in this process (parsing builds no tensors), so the
        # setting still reaches the intra-op threads when they start.
        set_flush_denormal(bool(config.flush_denormal))

    def before_fit(self) -> None:
        config = self.config[self.subcommand]
        if config.diagnostics:
            self.trainer.callbacks.extend(
                default_diagnostics(self.model.task, every_n_steps=config.diagnostics_every_n_steps)
            )


def run_cli(args: list[str] | None = None) -> ZooCLI:
    return ZooCLI(
        SequenceModel,
        L.LightningDataModule,
        subclass_mode_data=True,
        trainer_defaults={
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs"}},
        },
        args=args,
        auto_configure_optimizers=False,
    )


def _zoo_error(err: BaseException) -> ZooError | None:
    """The ZooError behind ``err``, if any: jsonargparse wraps errors raised while it builds the data."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ZooError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["plot"]:
            from zoo.plots import main as plot_main  # matplotlib only when plotting

            return plot_main(args[1:])
        if args[:1] in (["bench"], ["leaderboard"], ["reproduce"], ["pretrained"]):
            from zoo import commands

            return getattr(commands, f"{args[0]}_main")(args[1:])
        run_cli(argv)
    except Exception as err:
        cause = _zoo_error(err)
        if cause is None:
            raise
        print(f"zoo: error: {cause}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
