"""DataModules, one per task family, and the benchmark definitions."""

from tasks.adding import AddingProblem
from tasks.copy_memory import CopyMemory
from tasks.language import LanguageModelling
from tasks.mnist import SequentialMNIST

# The DataModules a benchmark or a run record may name, by class name.
DATAMODULES = {cls.__name__: cls for cls in (AddingProblem, CopyMemory, LanguageModelling, SequentialMNIST)}

__all__ = ["AddingProblem", "CopyMemory", "DATAMODULES", "LanguageModelling", "SequentialMNIST"]
