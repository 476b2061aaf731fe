"""TESTING.md from a run's trial results: one row a trial, with the cases that ran and how they ended.

The results are what ``tests/hostile/conftest.py`` counted (``results_json``). Nothing in the
table is typed by hand: names and promises come from the ``Trial`` declarations, counts and
outcomes from the run, so the committed file says what the last full run of the trials did.
"""

from __future__ import annotations

from typing import Any

from hostile_trials import FAMILIES

INTRO = """# Hostile trials

What the zoo survives: files, paths and configs made to break it, real processes killed at random
while they write one records folder, a disk that fills in the middle of a write, bad data and runs
that explode. Each trial is a set of test cases in `tests/hostile/`, each case a real fault (a
malformed file on disk, a symlink, a `SIGKILL`, a kernel file-size limit), never a mock of one.
They run in CI with the rest of the suite (`python -m pytest`).

**This file is generated.** `python scripts/testing_table.py` runs `tests/hostile/` and writes it
from what the run counted: the trials' names and promises come from their declarations in the
test files (`Trial(...)`, beside the cases), the number of cases and the result from the run.
Every full run of the suite renders the table again from its own results and
`tests/hostile/test_table.py` fails when that differs from this file, so a new trial, a changed
promise, a case added or a case failing cannot leave it stale.

Where the bad-input catalogue already covers a fault (`tests/test_bad_inputs.py`: truncated and
corrupt data files in a data folder or the cache, truncated and corrupt weights, records and
checkpoints, unknown names), the trials here do not repeat it; they add what a hostile source does
on top. How the processes are made: a trial that needs many real processes forks them from one
process that has imported the zoo once (`tests/hostile/forker.py`), so that twenty killed suites
cost seconds; each child runs the real code (`zoo.app.cli.main` for `zoo bench run`) under its own
limits and its own `SIGKILL`. The concurrency trial starts `python -m zoo bench run` itself.

What the trials found when they were written, each fixed in the same change (each case fails
without its fix): weights of another dtype or with NaN/inf were loaded silently, and a weights
file was hashed then opened again by path (so a file swapped in between was loaded unchecked);
a refused release stayed in the Hub cache; a manifest name like `../x` or an absolute path was
joined to the package folder and read; a Hub cache link leading out of the cache was read, and a
bad one had its target deleted; data-cache and records-folder links were followed; a record's
model name could send a release's files out of its folder; a named pipe in a records folder hung
`zoo leaderboard build`, JSON nested deep crashed it, and records with a duplicate id, a mistyped
field or a missing field crashed it or (duplicates) were counted twice; billion-laughs YAML hung
`zoo bench run --model_config` and `zoo fit --config`; a full disk while writing a record,
weights or a checkpoint was a traceback, a release could be left with new weights beside an old
manifest, and Lightning staged checkpoints in the system's temporary folder; a suite killed
between writing a record and tidying up left the pair's lock and checkpoint, and one killed
mid-write left its temporary file, for good.
"""

HEADER = ["family", "trial", "what it does", "what we promise", "cases", "result"]


def result_text(row: dict[str, Any]) -> str:
    """``passed``, or how many failed or were skipped, out of the cases run."""
    if row["failed"]:
        return f"**{row['failed']} of {row['cases']} FAILED**"
    if row["skipped"]:
        return f"{row['skipped']} of {row['cases']} skipped" + ("" if row["skipped"] == row["cases"] else
                                                                 f", {row['passed']} passed")
    return "passed"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render(results: dict[str, Any]) -> str:
    """The whole of TESTING.md for ``results`` (``{"trials": [row, ...]}``), rows in family order."""
    rows = sorted(results["trials"], key=lambda r: (FAMILIES.index(r["family"]), r["order"]))
    lines = [INTRO, "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(v) for v in (row["family"], row["name"], row["does"], row["promise"],
                                                          row["cases"], result_text(row))) + " |")
    total = sum(r["cases"] for r in rows)
    lines += ["", f"{len(rows)} trials, {total} cases.", ""]
    return "\n".join(lines)
