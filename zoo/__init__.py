"""rnn-zoo: recurrent networks, their initializations and training recipes, under Lightning."""

import os
import sys

from zoo.errors import ZooError


def _running_zoo_command() -> bool:
    """Whether this process is the ``zoo`` command (console script or ``python -m zoo``): its users expect
    a one-line error, where a library import raises."""
    argv = getattr(sys, "orig_argv", sys.argv)
    return (bool(sys.argv) and os.path.basename(sys.argv[0]) == "zoo") or any(
        a == "-m" and b == "zoo" for a, b in zip(argv, argv[1:]))


# First, before any other torch op: flush denormal floats on the CPU (see zoo/runtime.py).
try:
    from zoo import runtime as _runtime  # noqa: F401  (import for its side effect)
except ZooError as err:  # a ZOO_FLUSH_DENORMAL that is not a boolean
    if _running_zoo_command():
        print(f"zoo: error: {err}", file=sys.stderr)
        sys.exit(2)  # as zoo.app.cli.main's other errors
    raise
from zoo.init import INIT_SCHEMES
from zoo.models.rnn import RNNBackbone, RNNConfig
from zoo.cells import list_cells  # noqa: E402 (after zoo.models, which imports the cells; isort: skip)
from zoo.module import SequenceModel
from zoo.optim import OptimConfig
from zoo.registry import create_model, list_models, register_model
from zoo.task_spec import TaskSpec

__all__ = [
    "INIT_SCHEMES",
    "OptimConfig",
    "RNNBackbone",
    "RNNConfig",
    "SequenceModel",
    "TaskSpec",
    "ZooError",
    "create_model",
    "list_cells",
    "list_models",
    "register_model",
]
__version__ = "0.1.0"
