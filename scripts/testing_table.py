"""Regenerate TESTING.md: run the hostile trials (tests/hostile), count each trial's cases and outcomes, write the table.

    python scripts/testing_table.py                        # runs the trials (a few minutes on 2 cores), writes TESTING.md
    python scripts/testing_table.py --results trials.json  # only renders counts a run wrote (ZOO_TRIALS_JSON=trials.json)

The rows come from the ``Trial`` declarations in tests/hostile and the counts from the run
(tests/hostile/conftest.py), so the table cannot say more than the run did. A run in which a case
fails still writes the table (it says so) and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "hostile"))

from hostile_table import render  # noqa: E402


def run_trials(results: Path) -> int:
    """pytest on tests/hostile, its counts written to ``results``; the check of TESTING.md itself is left out."""
    env = {**os.environ, "ZOO_TRIALS_JSON": str(results)}
    return subprocess.run([sys.executable, "-m", "pytest", "tests/hostile", "-p", "no:cacheprovider", "-q",
                           "--deselect", "tests/hostile/test_table.py::test_testing_md_is_what_this_run_of_the_trials_gives"],
                          cwd=ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="counts a run already wrote (ZOO_TRIALS_JSON); default: run now")
    parser.add_argument("--out", type=Path, default=ROOT / "TESTING.md")
    args = parser.parse_args(argv)
    status = 0
    if args.results is None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "trials.json"
            status = run_trials(path)
            if not path.is_file():
                print("the trials wrote no results (pytest could not run them?)", file=sys.stderr)
                return 2
            results = json.loads(path.read_text())
    else:
        results = json.loads(args.results.read_text())
    if results.get("complete"):
        print(f"not every trial ran ({results['complete']}); TESTING.md left as it is", file=sys.stderr)
        return 2
    args.out.write_text(render(results), encoding="utf-8")
    failed = sum(row["failed"] for row in results["trials"])
    print(f"wrote {args.out}: {len(results['trials'])} trials, {sum(r['cases'] for r in results['trials'])} cases"
          + (f", {failed} FAILED" if failed else ""))
    return 1 if failed or status else 0


if __name__ == "__main__":
    sys.exit(main())
