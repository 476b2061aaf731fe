"""A hostile trial: what it does and what the zoo promises, declared on the tests that are its cases.

    SWAPPED = Trial("weights", "swapped after its check", does="...", promise="...")

    @SWAPPED
    @pytest.mark.parametrize(...)
    def test_...(...): ...

Each test item marked with a trial is one case of it. ``tests/hostile/conftest.py`` counts
the cases and their outcomes as they run; ``hostile_table.py`` turns the counts into TESTING.md.
The words of the table live here, beside the code that keeps the promise, so that the
two are changed together.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

# The families, in the order the table lists them (issue 25's order).
FAMILIES = ("weights", "paths", "configs", "concurrency", "full disk", "data", "numerics")


@dataclass(frozen=True)
class Trial:
    """One row of the table: a family, a name, what the cases do to the zoo, and what the zoo promises."""

    family: str
    name: str
    does: str
    promise: str

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown trial family {self.family!r}; valid: {', '.join(FAMILIES)}")

    def __call__(self, test):
        """Mark ``test`` (every item it makes) as a case of this trial."""
        return pytest.mark.trial.with_args(self)(test)
