"""DataModules, one per task family, and the benchmark definitions."""

from tasks.adding import AddingProblem
from tasks.copy_memory import CopyMemory
from tasks.language import LanguageModelling
from tasks.mnist import SequentialMNIST

__all__ = ["AddingProblem", "CopyMemory", "LanguageModelling", "SequentialMNIST"]
