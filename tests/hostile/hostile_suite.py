"""The trials' shared suite: one cheap real benchmark run, and how its records are read and compared."""

from __future__ import annotations

import json
from pathlib import Path

BENCH, TIER, MODEL = "adding_t100", "smoke", "rnn_tanh_1x128"
CHECKPOINT_EVERY = 3  # a smoke run has 10 steps: checkpoints at steps 3, 6 and 9, so a kill can resume from one


def suite_argv(*seeds: int, extra: tuple[str, ...] = ()) -> list[str]:
    """``zoo bench run`` of the trials' suite: the smoke tier of adding_t100, the tanh RNN, these seeds."""
    return ["bench", "run", BENCH, "--tier", TIER, "--models", MODEL, "--seeds", *map(str, seeds), "--records", "r",
            "--weights", "w", "--checkpoints", "c", "--no_progress", *extra]


def read_records(folder: Path) -> dict[str, dict]:
    """Every record under ``folder/r``, each complete JSON that reads as a record, its weights file the one it names."""
    from zoo.files import sha256_file
    from zoo.records import read_record

    found = {}
    for path in sorted((folder / "r").rglob("*.json")):
        json.loads(path.read_text())  # whole: a torn record is not JSON
        record = read_record(path)
        assert sha256_file(folder / "w" / record["weights"]["file"]) == record["weights"]["sha256"], path
        assert record["id"] not in found
        found[record["id"]] = record
    return found


SAME = ("metrics", "weights", "steps", "epochs", "state", "curves", "lengths", "longest_solved")  # what a rerun must equal


def assert_same_runs(got: dict[str, dict], expected: dict[str, dict]) -> None:
    assert set(got) == set(expected)
    for rid, record in expected.items():
        for key in SAME:
            assert got[rid][key] == record[key], (rid, key)
