"""The committed records: each says what decided its numerics, and the current code still gives them."""

from pathlib import Path

import pytest

from zoo.app.runner import replay_selection, reproduce
from zoo.records import find_records, read_record

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "leaderboards" / "records"
CURVE_POINTS = 10  # the least a committed record's learning curve may have
REPLAY_SECONDS = 60  # the suite re-runs the committed records that trained in at most this long
# Records still to re-run on the current schema (issue 20): named here so that the list can only
# shrink by a re-run landing, and any other old record fails the test.
PENDING_RERUN: set[str] = set()  # ids of old-schema records whose re-run is still to come (none now)


def committed() -> list[dict]:
    return [read_record(path) for path in find_records(RECORDS)]


def test_every_committed_record_has_a_learning_curve_a_step_budget_and_its_numerics_settings():
    records = committed()
    assert records
    old = {record["id"] for record in records if "upgraded_from" in record}
    assert old == PENDING_RERUN, f"old-schema records {sorted(old)}; pending re-runs named: {sorted(PENDING_RERUN)}"
    for record in records:
        if record["id"] in PENDING_RERUN:
            continue
        trainer = record["config"]["trainer"]
        assert not trainer.get("max_minutes") and (trainer["max_steps"] > 0 or trainer["max_epochs"] > 0), record["id"]
        curves = record["curves"]
        assert len(curves["train_loss"]) >= CURVE_POINTS or len(curves["val"]["points"]) >= CURVE_POINTS, record["id"]
        env = record["environment"]
        assert env["cpu_threads"] >= 1 and "own_kernels" in env and env["packages"]["torch"], record["id"]
        assert not env["git"]["dirty"] and len(env["git"]["commit"]) == 40, record["id"]


def test_the_current_code_gives_the_committed_records_numerics():
    """Re-run the cheapest committed records (one of each cell a board has) and name every one that changed."""
    files = replay_selection(RECORDS, max_seconds=REPLAY_SECONDS, per_board=3)
    if not files:
        pytest.skip(f"no committed record trained in under {REPLAY_SECONDS} s")
    changed = []
    for file in files:
        result = reproduce(file)
        expected = ("identical",) if result["same_environment"] else ("identical", "within tolerance")
        if result["verdict"] not in expected:
            changed.append(f"{result['record']}: {result['verdict']} (recorded {result['recorded']!r}, "
                           f"re-run {result['rerun']!r})")
    assert not changed, "the current code no longer gives these records' numbers:\n" + "\n".join(changed)
