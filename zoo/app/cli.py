"""The ``zoo`` command: Lightning's CLI for fit / validate / test / predict.

    zoo fit --data AddingProblem --data.seq_len 200 --model.backbone.cell gru --trainer.max_steps 2000
    zoo fit --config run.yaml --print_config
    zoo plot runs/lightning_logs/version_0 --out figures/
    zoo bench run adding_t100 --tier cpu; zoo leaderboard build; zoo reproduce RECORD   (see zoo.app.commands)

The model is ``SequenceModel``; its ``task`` is not an option but is taken from the
DataModule's ``task_spec`` once the data is built, so the head and loss always match
the data. ``--data`` picks the DataModule class (e.g. ``AddingProblem``, ``CopyMemory``,
``SequentialMNIST``, ``LanguageModelling``); it is required.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import sys
from pathlib import Path
from typing import Any, get_args

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI

from zoo.app.config_files import check_inline_value, load_yaml, read_yaml
from zoo.diagnostics import DIAGNOSTICS_EVERY_N_STEPS, default_diagnostics
from zoo.errors import ZooError, check_choice, check_float, check_int
from zoo.init import INIT_SCHEMES
from zoo.models import rnn
from zoo.module import SequenceModel
from zoo.optim import CLIP_ALGORITHMS, OPTIMIZERS, SCHEDULES, ClipAlgorithm
from zoo.resume import SafeCheckpointIO, read_checkpoint
from zoo.runtime import flush_denormal_default, set_flush_denormal

import tasks  # noqa: F401  (registers the DataModules for --data)
from tasks.base import TaskDataModule


class ZooTrainer(Trainer):
    """Lightning's Trainer with one type narrowed, so that ``zoo fit --help`` lists the clip algorithms.

    Lightning types ``gradient_clip_algorithm`` as any string and refuses a bad one only
    once the run starts; here the parser lists and checks the choices (``zoo.optim.ClipAlgorithm``).
    """

    def __init__(self, *, gradient_clip_algorithm: ClipAlgorithm | None = None, **kwargs: Any) -> None:
        """
        Args:
            gradient_clip_algorithm: How ``gradient_clip_val`` clips: ``norm`` (the global gradient norm, the
                default when a value is set) or ``value`` (each gradient entry).
        """
        super().__init__(gradient_clip_algorithm=gradient_clip_algorithm, **kwargs)


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
            default=DIAGNOSTICS_EVERY_N_STEPS,
            help="How often the gradient-over-time probe and the spectra are measured.",
        )
        parser.link_arguments("data.task_spec", "model.task", apply_on="instantiate")
        # No default DataModule: jsonargparse keeps a default class's init_args that the
        # class chosen later also accepts (batch_size, eval_batch_size...), so a default
        # AddingProblem would silently set the batch size of every other task.

    def _parse_ckpt_path(self) -> None:
        """Apply a checkpoint's model hyperparameters to the config, as Lightning does, but for the task.

        The task is not an option (it is linked from the data), so Lightning's own version
        fails on it; it is rebuilt from the DataModule like in any other run. A missing,
        truncated or corrupt checkpoint file is one error naming it.
        """
        self._checkpoint, self._checkpoint_path = None, None
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if not ckpt_path or str(ckpt_path) in SPECIAL_CKPT_PATHS or "://" in str(ckpt_path):
            return  # Lightning's own names ("last", "best"...) and remote files are Lightning's to resolve
        ckpt = read_checkpoint(ckpt_path)
        self._checkpoint, self._checkpoint_path = ckpt, Path(ckpt_path)
        hparams = {k: v for k, v in ckpt.get("hyper_parameters", {}).items() if k not in ("_instantiator", "task")}
        if hparams:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        clip = (config.get("trainer") or {}).get("gradient_clip_val")
        if clip is not None:
            check_float("trainer.gradient_clip_val", clip, low=0.0)
        check_int("diagnostics_every_n_steps", config.diagnostics_every_n_steps, low=1)
        # No torch op has run yet in this process (parsing builds no tensors), so the
        # setting still reaches the intra-op threads when they start.
        set_flush_denormal(bool(config.flush_denormal))

    def instantiate_trainer(self, **kwargs):
        """Lightning's Trainer from the config; a setting it rejects is one error naming it."""
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        if not (self.config_init[self.subcommand] if self.subcommand else self.config_init).get("trainer", {}).get("plugins"):
            kwargs.setdefault("plugins", [SafeCheckpointIO()])  # --ckpt_path read with weights_only, a bad file named
        try:
            return super().instantiate_trainer(**kwargs)
        except ZooError:
            raise
        except (MisconfigurationException, ValueError, TypeError) as err:
            raise ZooError(f"trainer settings: {err}") from None

    def check_checkpoint(self) -> None:
        """The checkpoint given with --ckpt_path must be of this data and this model, checked before Lightning loads it.

        A language model's vocabulary must be the data's, token for token; the task's
        shapes and every weight's shape must match. Otherwise Lightning would fail deep
        inside ``load_state_dict`` (or, for a vocabulary of the same size, not at all).
        """
        from zoo.pretrained import architecture_mismatch

        ckpt, path = getattr(self, "_checkpoint", None), getattr(self, "_checkpoint_path", None)
        if ckpt is None:
            return
        data_state = ckpt.get(type(self.datamodule).__qualname__) if self.datamodule is not None else None
        vocab = getattr(self.datamodule, "vocab", None)
        if isinstance(data_state, dict) and vocab is not None and "vocab" in data_state and data_state["vocab"] != vocab:
            theirs = data_state["vocab"] or []
            raise ZooError(f"the vocabulary of checkpoint {path} ({len(theirs)} tokens, corpus "
                           f"{data_state.get('corpus')!r}) does not match the data's ({len(vocab)} tokens"
                           f"{', corpus ' + repr(self.datamodule.corpus.name) if hasattr(self.datamodule, 'corpus') else ''}); "
                           "use the corpus files the checkpoint was trained on")
        trained, task = (ckpt.get("hyper_parameters") or {}).get("task"), self.model.task
        keys = ("input_size", "output_size", "head", "input_kind")
        if isinstance(trained, dict) and any(trained.get(k) != getattr(task, k) for k in keys):
            raise ZooError(f"checkpoint {path} was trained on task {trained.get('name')!r} (input "
                           f"{trained.get('input_size')}, output {trained.get('output_size')}, head {trained.get('head')}), "
                           f"but --data gives task {task.name!r} (input {task.input_size}, output {task.output_size}, "
                           f"head {task.head}); use the data it was trained on")
        shapes = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items() if isinstance(v, torch.Tensor)}
        mismatch = architecture_mismatch(self.model, shapes)
        if mismatch:
            raise ZooError(f"checkpoint {path} does not fit the model: {mismatch}")

    def before_validate(self) -> None:
        self.check_checkpoint()

    def before_test(self) -> None:
        self.check_checkpoint()

    def before_predict(self) -> None:
        self.check_checkpoint()

    def before_fit(self) -> None:
        self.check_checkpoint()
        config = self.config[self.subcommand]
        if config.diagnostics:
            self.trainer.callbacks.extend(
                default_diagnostics(self.model.task, every_n_steps=config.diagnostics_every_n_steps)
            )


SPECIAL_CKPT_PATHS = ("best", "last", "hpc", "registry")  # names Lightning resolves itself
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def _datamodule_names() -> set[str]:
    """Class names --data resolves: every TaskDataModule subclass imported (tasks' own and a user's)."""
    names, todo = set(), [TaskDataModule]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__name__ not in names:
                names.add(sub.__name__)
                todo.append(sub)
    return names


def _option_values(args: list[str], *keys: str) -> list[str]:
    """The values given to ``keys`` on a command line, as ``--key value`` or ``--key=value``."""
    values = []
    for i, arg in enumerate(args):
        for key in keys:
            if arg == key and i + 1 < len(args):
                values.append(args[i + 1])
            elif arg.startswith(f"{key}="):
                values.append(arg.split("=", 1)[1])
    return values


def choice_options() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each option whose value is one of a list: its key, what an error calls it, and the valid values.

    The values are read from the types the parser lists in ``--help`` (and so from the
    registries those types are read from), so the check and the help cannot disagree.
    """
    return {
        "model.backbone.cell": ("cell", get_args(rnn.refresh_cell_choices())),
        "model.backbone.nonlinearity": ("nonlinearity", get_args(rnn.Nonlinearity)),
        "model.backbone.input_init": ("input_init", INIT_SCHEMES),
        "model.backbone.recurrent_init": ("recurrent_init", INIT_SCHEMES),
        "model.optim.name": ("optimizer", OPTIMIZERS),
        "model.optim.schedule": ("schedule", SCHEDULES),
        "trainer.gradient_clip_algorithm": ("gradient_clip_algorithm", CLIP_ALGORITHMS),
    }


def _check_choices(values: dict[str, Any]) -> None:
    """Each option of ``choice_options`` found in ``values`` (dotted key -> value), in our one-line form.

    jsonargparse would refuse the value too, but after its usage text and with the type's
    repr; this says ``unknown cell 'lst'; valid choices: rnn, lstm, ...`` as the library does.
    """
    for key, (setting, choices) in choice_options().items():
        if key in values and values[key] not in (None, "null"):
            check_choice(setting, values[key], choices)


def _nested(config: dict[str, Any], key: str) -> Any:
    """``config["model"]["backbone"]["cell"]`` for ``model.backbone.cell``; None where a level is missing."""
    for part in key.split("."):
        if not isinstance(config, dict) or part not in config:
            return None
        config = config[part]
    return config


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False for a string no file could be named (an inline config: too long, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def check_arguments(args: list[str]) -> None:
    """What jsonargparse reports unclearly, checked first: an unknown --data class, an unreadable --config file,
    a value outside an option's choices (on the command line or in a config file)."""
    from tasks import DATAMODULES

    for index, arg in enumerate(args):
        # Every value is YAML to jsonargparse; bounded here first, as config files are (zoo.app.config_files).
        option, equals, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if equals or not arg.startswith("-"):
            name = option or (args[index - 1] if index and args[index - 1].startswith("-") else "an argument")
            check_inline_value(value, f"the value given to {name} ({value[:40]!r}{'...' if len(value) > 40 else ''})")
    for value in _option_values(args, "--data"):
        if value.isidentifier() and value not in _datamodule_names():
            raise ZooError(f"unknown DataModule {value!r} (--data); valid choices: {', '.join(DATAMODULES)}, "
                           "or the class path of a tasks.base.TaskDataModule such as tasks.adding.AddingProblem")
    given = {}
    for key in choice_options():
        values = _option_values(args, f"--{key}")
        if values:
            given[key] = values[-1]  # the last one given wins, as in the parser
    for value in _option_values(args, "--config", "-c"):
        # Every config, a file of any name or one given inline, is read here first, as plain bounded data
        # (zoo.app.config_files): jsonargparse would follow a billion laughs' aliases for ever.
        path = Path(value)
        if value.endswith(CONFIG_SUFFIXES) or _is_file(path):
            what = f"config file {path}"
            config = read_yaml(path, what)
        else:
            what = f"the config given inline to --config ({value[:40]!r}{'...' if len(value) > 40 else ''})"
            config = load_yaml(value, what)
        if config is not None and not isinstance(config, dict):
            raise ZooError(f"{what} must be a mapping of options (model:, data:, trainer:, ...), "
                           f"got a {type(config).__name__}")
        _check_choices({key: _nested(config or {}, key) for key in choice_options()})
    _check_choices(given)


def run_cli(args: list[str] | None = None) -> ZooCLI:
    rnn.refresh_cell_choices()  # a cell registered since zoo.models.rnn was imported is a choice too
    return ZooCLI(
        SequenceModel,
        TaskDataModule,  # the model is built from the DataModule's task_spec, so --data must have one
        trainer_class=ZooTrainer,
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
            from zoo.app.plots import main as plot_main  # matplotlib only when plotting

            return plot_main(args[1:])
        if args[:1] in (["bench"], ["leaderboard"], ["reproduce"], ["pretrained"]):
            from zoo.app import commands

            return getattr(commands, f"{args[0]}_main")(args[1:])
        check_arguments(args)
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
