"""DataModules, one per task family, on one base (``tasks.base.TaskDataModule``), and how a name finds one."""

from __future__ import annotations

import importlib
import inspect

from tasks import hf_datasets  # noqa: F401  (registers the Hub route of tasks.datafiles.fetch)
from tasks.adding import AddingProblem
from tasks.base import SyntheticTask, TaskDataModule
from tasks.copy_memory import CopyMemory
from tasks.language import LanguageModelling
from tasks.mnist import SequentialMNIST
from zoo.errors import ZooError

# Short names of the DataModules shipped here: what benchmarks and old run records name
# (``config["data"]["class"] = "AddingProblem"``). Any other task is named by its class path.
DATAMODULES: dict[str, type[TaskDataModule]] = {
    cls.__name__: cls for cls in (AddingProblem, CopyMemory, LanguageModelling, SequentialMNIST)
}
BASE_PATH = f"{TaskDataModule.__module__}.{TaskDataModule.__qualname__}"


def _choices() -> str:
    return (f"valid choices: {', '.join(DATAMODULES)}, or the dotted class path of a subclass of {BASE_PATH} "
            "(e.g. tasks.adding.AddingProblem, mypackage.tasks.MyTask)")


def resolve_datamodule(name: str) -> type[TaskDataModule]:
    """The DataModule class ``name`` stands for: a short name of ``DATAMODULES`` or a dotted class path.

    A class path may name any importable, concrete subclass of ``TaskDataModule``: that is
    how a task of one's own plugs into runs, records and releases. Anything else is one
    ZooError naming it and the valid choices.
    """
    if not isinstance(name, str) or not name.strip():
        raise ZooError(f"unknown DataModule {name!r}; {_choices()}")
    if name in DATAMODULES:
        return DATAMODULES[name]
    module_name, _, attr = name.rpartition(".")
    if not module_name or not attr:
        raise ZooError(f"unknown DataModule {name!r}; {_choices()}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ZooError(f"unknown DataModule {name!r}: module {module_name!r} cannot be imported ({err}); "
                       f"{_choices()}") from None
    cls = module
    for part in attr.split("."):
        cls = getattr(cls, part, None)
    if cls is None:
        raise ZooError(f"unknown DataModule {name!r}: module {module_name!r} has no {attr!r}; {_choices()}")
    if not (inspect.isclass(cls) and issubclass(cls, TaskDataModule)):
        what = f"class {cls.__module__}.{cls.__qualname__}" if inspect.isclass(cls) else type(cls).__name__
        raise ZooError(f"DataModule {name!r} is a {what}, not a subclass of {BASE_PATH}: a task must state its "
                       "task_spec, checksums and licence (see tasks/base.py); " + _choices())
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise ZooError(f"DataModule {name!r} is abstract (it does not define {missing}), so it cannot be used "
                       f"as a task; {_choices()}")
    return cls


def datamodule_name(cls: type) -> str:
    """The name a config stores for ``cls``: its short name when it is one of ours, else its class path."""
    if DATAMODULES.get(cls.__name__) is cls:
        return cls.__name__
    return f"{cls.__module__}.{cls.__qualname__}"


__all__ = ["AddingProblem", "CopyMemory", "DATAMODULES", "LanguageModelling", "SequentialMNIST", "SyntheticTask",
           "TaskDataModule", "datamodule_name", "resolve_datamodule"]
