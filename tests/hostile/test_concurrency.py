"""Concurrent writers and crashes: real ``zoo bench run`` processes on one records folder, and suites killed by SIGKILL.

Whatever happened, a suite started again must end with the records an uninterrupted suite
writes (``uninterrupted``, conftest.py): the same set, each complete JSON, each pair run once,
each resumed run equal to the uninterrupted one (metrics, curves, steps and the weights'
sha256, on the CPU), and no lock, temporary file or checkpoint left anywhere.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hostile_suite import BENCH, CHECKPOINT_EVERY, MODEL, TIER, assert_same_runs, read_records, suite_argv
from hostile_trials import Trial

SUMMARY = re.compile(r"(\d+) ran, (\d+) diverged, (\d+) already recorded, (\d+) running in another suite")


def _summary(out: str) -> dict[str, int]:
    match = SUMMARY.search(out)
    assert match, out
    return dict(zip(("ran", "diverged", "exists", "elsewhere"), map(int, match.groups())))


def _record_lines(out: str) -> list[str]:
    return [line.split(":")[0] for line in out.splitlines() if line.startswith(f"{BENCH}.{TIER}.")]


def _ids(*seeds: int) -> set[str]:
    return {f"{BENCH}.{TIER}.{MODEL}.s{s}" for s in seeds}


def _no_leftovers(folder: Path) -> None:
    """Only records and weights remain: no lock, no temporary file, no checkpoint, nothing in the runs' TMPDIR."""
    assert sorted(p.name for p in (folder / "r").rglob("*") if p.is_file() and p.suffix != ".json") == []
    assert list((folder / "r").rglob(".*")) == []
    assert sorted(p.name for p in (folder / "w").iterdir() if p.suffix != ".safetensors" or p.name.startswith(".")) == []
    assert list((folder / "c").rglob("*")) == [] if (folder / "c").exists() else True
    assert list((folder / "tmp").rglob("*")) == []


def _whole_json(folder: Path) -> None:
    """Every record file in place is complete JSON (a torn one would not parse)."""
    for path in (folder / "r").rglob("*.json"):
        json.loads(path.read_text())


CONCURRENT = Trial(
    "concurrency", "three real suites on one records folder",
    does="Three `python -m zoo bench run` processes started together on one records, weights and checkpoints "
         "folder, with overlapping pairs and shards: seeds 0 1 2; seeds 0-3 `--shard 1/2`; seeds 3 2 `--shard 0/2` "
         "(the smoke tier of adding_t100, `rnn_tanh_1x128`).",
    promise="Every pair of the union (seeds 0-3) is run by exactly one of them (the `ran` counts add up to 4, each "
            "record is printed once), every record is complete JSON equal to the uninterrupted suite's, and no lock "
            "or temporary file is left.")


@CONCURRENT
def test_three_suites_on_one_records_folder_run_every_pair_once(tmp_path, uninterrupted):
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    commands = [suite_argv(0, 1, 2), suite_argv(0, 1, 2, 3, extra=("--shard", "1/2")),
                suite_argv(3, 2, extra=("--shard", "0/2"))]
    procs = [subprocess.Popen([sys.executable, "-m", "zoo", *argv], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for argv in commands]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        outs.append(out)
    counts = [_summary(out) for out in outs]
    assert sum(c["ran"] for c in counts) == 4, outs  # each pair by exactly one suite
    assert sorted(line for out in outs for line in _record_lines(out)) == sorted(_ids(0, 1, 2, 3))
    # what each suite did not run it found done, or held by another suite
    assert [sum(c.values()) for c in counts] == [3, 2, 1], counts
    _whole_json(tmp_path)
    assert_same_runs(read_records(tmp_path), uninterrupted.records)
    _no_leftovers(tmp_path)


def _kill_and_resume(forker, folder: Path, uninterrupted, **kill) -> dict:
    """Run the two-pair suite in a child killed as ``kill`` says, then again to its end; check the end state."""
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    env = {"TMPDIR": str(folder / "tmp")}
    victim = forker.zoo(*suite_argv(0, 1), cwd=folder, env=env, checkpoint_every=CHECKPOINT_EVERY, **kill)
    if not victim.killed:
        assert victim.code == 0, victim.err[-3000:]
    _whole_json(folder)  # killed at any point, no record is torn
    before = {p.stem for p in (folder / "r").rglob("*.json")}
    resumed = forker.zoo(*suite_argv(0, 1), cwd=folder, env=env, checkpoint_every=CHECKPOINT_EVERY)
    assert resumed.code == 0, resumed.err[-3000:]
    counts = _summary(resumed.out)
    assert counts == {"ran": 2 - len(before), "diverged": 0, "exists": len(before), "elsewhere": 0}, resumed.out
    expected = {rid: r for rid, r in uninterrupted.records.items() if rid in _ids(0, 1)}
    assert_same_runs(read_records(folder), expected)  # resumed, rerun or untouched: as if never killed
    _no_leftovers(folder)
    return {"killed": victim.killed, "records_before": len(before)}


SEEDS = list(range(20))

KILLED = Trial(
    "concurrency", "suites killed by SIGKILL at seeded random points",
    does="A two-pair suite (`zoo bench run`, seeds 0 and 1, checkpoints every 3 of its 10 steps) in a fresh process "
         "killed with SIGKILL after a delay drawn by `random.Random(seed)` from the length of an uninterrupted run, "
         "20 seeds; then the same command again.",
    promise="After the kill every record file in place is complete JSON; the second run runs only the pairs without "
            "a record and ends with records equal to the uninterrupted suite's (metrics, curves, steps, weights' "
            "sha256), with no lock, temporary file or checkpoint left.")


@KILLED
@pytest.mark.parametrize("seed", SEEDS)
def test_a_suite_killed_at_a_seeded_random_point_resumes_to_the_uninterrupted_records(tmp_path, forker, uninterrupted,
                                                                                      seed):
    delay = random.Random(seed).uniform(0.0, 1.0) * uninterrupted.seconds
    _kill_and_resume(forker, tmp_path, uninterrupted, kill_after=delay)


KILL_POINTS = {  # a file whose appearance is the moment of the kill
    "first-checkpoint": f"c/{BENCH}/{TIER}/{MODEL}.s0/last.ckpt",
    "first-weights-before-its-record": f"w/{BENCH}.{TIER}.{MODEL}.s0.safetensors",
    "first-record": f"r/{BENCH}/{TIER}/{MODEL}.s0.json",
    "second-pair-checkpoint": f"c/{BENCH}/{TIER}/{MODEL}.s1/last.ckpt",
}

KILLED_AT = Trial(
    "concurrency", "suites killed by SIGKILL at chosen moments",
    does="The same suite killed the moment a file appears: the first checkpoint, the first pair's weights (before "
         "its record), the first record (before its checkpoint is tidied), the second pair's checkpoint; and a "
         "record writer killed half-way through writing a 40 MB record under its temporary name.",
    promise="The same as for random kills; a run cut after a checkpoint resumes from it to the same weights, and the "
            "temporary file a killed writer left is removed when the pair is next run.")


@KILLED_AT
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_suite_killed_at_a_chosen_moment_resumes_to_the_uninterrupted_records(tmp_path, forker, uninterrupted, point):
    outcome = _kill_and_resume(forker, tmp_path, uninterrupted, kill_when=tmp_path / KILL_POINTS[point])
    assert outcome["killed"]


@KILLED_AT
def test_a_record_writer_killed_mid_write_leaves_a_temporary_file_the_next_run_removes(tmp_path, forker, uninterrupted):
    from zoo.files import temp_names
    from zoo.records import record_path

    path = record_path(tmp_path / "r", BENCH, TIER, MODEL, 0)
    path.parent.mkdir(parents=True)
    (tmp_path / "big.json").write_text(json.dumps({"padding": "x" * 40_000_000}))
    # A child writing a 40 MB record with write_record, killed once its temporary file is there (mid-write).
    child = forker.run("hostile_writers:write_record_from", str(tmp_path / "big.json"), str(path), cwd=tmp_path,
                       kill_when=path.parent / f".{path.name}.*.tmp")
    assert child.killed
    stale = temp_names(path)
    assert len(stale) == 1 and not path.exists()  # half a record, under its temporary name only
    _kill_and_resume(forker, tmp_path, uninterrupted, kill_after=0.0)
