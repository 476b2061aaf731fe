"""rnn-zoo: recurrent networks, their initializations and training recipes, under Lightning."""

# First, before any other torch op: flush denormal floats on the CPU (see zoo/runtime.py).
from zoo import runtime as _runtime  # noqa: F401  (import for its side effect)

from zoo.errors import ZooError
from zoo.init import INIT_SCHEMES
from zoo.models.rnn import RNNBackbone, RNNConfig
from zoo.module import SequenceModel
from zoo.optim import OptimConfig
from zoo.registry import list_models, register_model
from zoo.task_spec import TaskSpec

__all__ = [
    "INIT_SCHEMES",
    "OptimConfig",
    "RNNBackbone",
    "RNNConfig",
    "SequenceModel",
    "TaskSpec",
    "ZooError",
    "list_models",
    "register_model",
]
__version__ = "0.1.0"
