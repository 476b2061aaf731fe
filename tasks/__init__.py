"""DataModules, one per task family, and the benchmark definitions."""

from tasks.adding import AddingProblem

__all__ = ["AddingProblem"]
