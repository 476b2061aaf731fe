"""TESTING.md is exactly what this session's run of the trials gives (``hostile_table.render`` of its counts).

Moved to the end of the session by ``conftest.py``, so every trial case has run before it.
Skipped, saying why, when the session did not run every trial (``-k``, one file, ``-x``).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from hostile_table import render

TESTING_MD = Path(__file__).resolve().parents[2] / "TESTING.md"


def test_every_hostile_test_is_a_case_of_a_trial(tally):
    assert not tally.unmarked, f"tests in tests/hostile with no Trial, so TESTING.md cannot count them: {tally.unmarked}"


def test_testing_md_is_what_this_run_of_the_trials_gives(tally):
    why = tally.complete()
    if why:
        pytest.skip(f"TESTING.md is compared only in a session that runs every trial: {why}")
    expected = render(tally.results())
    committed = TESTING_MD.read_text(encoding="utf-8") if TESTING_MD.is_file() else ""
    diff = "".join(difflib.unified_diff(committed.splitlines(True), expected.splitlines(True), "TESTING.md (committed)",
                                        "TESTING.md (this run)", n=0))
    assert committed == expected, ("TESTING.md is not what this run of the trials gives (a trial added or changed, a "
                                   "case added, or a case failed); regenerate it with `python scripts/testing_table.py`"
                                   f":\n{diff[:4000]}")
