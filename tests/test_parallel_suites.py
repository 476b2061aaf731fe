"""Suites run in parallel: --jobs (worker processes), --shard (machines), --launcher (submitit jobs).

Each must end with exactly the records a one-process suite writes, each pair run once,
and survive a kill as the one-process suite does (tests/test_bench.py).
"""

import itertools
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from zoo.app.cli import main
from zoo.app.launch import ShardJob
from zoo.app.parallel import check_shard, parse_shard, shard_pairs, threads_per_job
from zoo.app.runner import run_benchmark
from zoo.errors import ZooError
from zoo.files import sha256_file
from zoo.records import read_record

BENCH, TIER = "adding_t100", "smoke"
MODELS, SEEDS = ["rnn_tanh_1x128", "gru_1x128"], [0, 1]
IDS = {f"{BENCH}.{TIER}.{m}.s{s}" for m in MODELS for s in SEEDS}
SUITE = ["bench", "run", BENCH, "--tier", TIER, "--models", *MODELS, "--seeds", *map(str, SEEDS), "--no_progress"]


@pytest.fixture
def one_thread():
    """The test process at one torch thread, as the suites it is compared with; put back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict[str, dict]:
    """The one-process suite, at one thread, that every parallel way of running it must agree with."""
    folder = tmp_path_factory.mktemp("whole")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_benchmark(BENCH, TIER, models=MODELS, seeds=SEEDS, records_dir=folder / "r", weights_dir=folder / "w",
                      checkpoints_dir=folder / "c", progress=False)
    finally:
        torch.set_num_threads(before)
    return _records(folder)


def _records(folder: Path) -> dict[str, dict]:
    """Every record under ``folder/r``, checked: each reads and its weights file is the one it names."""
    found = {}
    for path in sorted((folder / "r").rglob("*.json")):
        record = read_record(path)
        assert sha256_file(folder / "w" / record["weights"]["file"]) == record["weights"]["sha256"]
        found[record["id"]] = record
    return found


def _same_runs(got: dict[str, dict], expected: dict[str, dict]) -> None:
    assert set(got) == set(expected) == IDS
    for rid, record in expected.items():
        assert got[rid]["metrics"] == record["metrics"] and got[rid]["weights"] == record["weights"], rid


def _no_leftovers(folder: Path) -> None:
    """No lock, no temporary file, no checkpoint (nor its folders) once a suite has ended."""
    assert not [p.name for p in (folder / "r").rglob("*") if p.is_file() and p.suffix != ".json"]
    assert not list((folder / "r").rglob(".*")) and not list((folder / "c").rglob("*"))


def _summary(out: str) -> dict[str, int]:
    match = re.search(r"(\d+) ran, (\d+) diverged, (\d+) already recorded, (\d+) running in another suite", out)
    assert match, out
    return dict(zip(("ran", "diverged", "exists", "elsewhere"), map(int, match.groups())))


# --- shards --------------------------------------------------------------------------------------------------------

def test_shards_are_disjoint_cover_every_pair_and_do_not_depend_on_the_order_given():
    pairs = [(m, s) for m in ("lstm_1x128", "gru_1x128", "rnn_tanh_1x128", "irnn_1x128") for s in (0, 1, 2)]
    shuffled = random.Random(0).sample(pairs, len(pairs))
    for count in range(1, len(pairs) + 2):
        shards = [shard_pairs(pairs, (i, count)) for i in range(count)]
        assert sorted(itertools.chain(*shards)) == sorted(pairs)  # every pair, none twice
        assert max(map(len, shards)) - min(map(len, shards)) <= 1  # an even split
        assert shards == [shard_pairs(shuffled, (i, count)) for i in range(count)]
    # each shard gets a mix, not one model's seeds
    assert shard_pairs(pairs, (0, 3)) == [("gru_1x128", 0), ("irnn_1x128", 0), ("lstm_1x128", 0), ("rnn_tanh_1x128", 0)]


@pytest.mark.parametrize("text", ["3/2", "2/2", "a/b", "0/0", "-1/2", "1", "1/2/3", "", "1 of 2", "0.5/2"])
def test_a_bad_shard_is_one_error_naming_the_valid_form(text):
    with pytest.raises(ZooError, match=re.escape("--shard must be i/N with 0 <= i < N, counted from 0")):
        parse_shard(text)


def test_shards_parse_and_check():
    assert parse_shard("0/4") == (0, 4) and parse_shard(" 3/4 ") == (3, 4)
    for bad in ((2, 2), (0, 0), (-1, 2), "0/2", (0, 2, 1), (True, 2)):
        with pytest.raises(ZooError, match=r"shard must be \(i, N\) with 0 <= i < N"):
            check_shard(bad)
    with pytest.raises(ZooError, match="shard must be"):
        run_benchmark(BENCH, TIER, models=MODELS, shard=(2, 2), progress=False)


def test_sharded_suites_together_write_every_record_once(tmp_path, expected, one_thread):
    folder = tmp_path / "sharded"
    kwargs = dict(models=MODELS, seeds=SEEDS, records_dir=folder / "r", weights_dir=folder / "w",
                  checkpoints_dir=folder / "c", progress=False)
    done = [run_benchmark(BENCH, TIER, shard=(i, 3), **kwargs) for i in range(3)]
    assert sorted(d["id"] for shard in done for d in shard) == sorted(IDS)  # each pair in one shard only
    assert all(d["status"] == "ran" for shard in done for d in shard)
    _same_runs(_records(folder), expected)
    _no_leftovers(folder)


# --- --jobs --------------------------------------------------------------------------------------------------------

def test_threads_are_split_between_jobs():
    assert [threads_per_job(8, n) for n in (1, 2, 3, 4, 8, 16)] == [8, 4, 2, 2, 1, 1]


def test_jobs_write_the_records_of_one_process_with_the_threads_split(tmp_path, monkeypatch, capsys, expected,
                                                                      one_thread):
    folder = tmp_path / "jobs"
    # Two threads here, split over two workers: one each. Without the split a worker would start
    # from the OMP_NUM_THREADS it inherits (3) and record that.
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    kwargs = dict(models=MODELS, seeds=SEEDS, records_dir=folder / "r", weights_dir=folder / "w",
                  checkpoints_dir=folder / "c", progress=False, jobs=2)
    done = run_benchmark(BENCH, TIER, **kwargs)
    assert [d["id"] for d in done] == [f"{BENCH}.{TIER}.{m}.s{s}" for m in MODELS for s in SEEDS]  # in pair order
    assert [d["status"] for d in done] == ["ran"] * 4
    got = _records(folder)
    assert {r["environment"]["cpu_threads"] for r in got.values()} == {1}
    _same_runs(got, expected)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"{BENCH}.{TIER}.")]
    assert sorted(line.split(":")[0] for line in lines) == sorted(IDS)  # one line a record, as it is written
    assert os.environ["OMP_NUM_THREADS"] == "3"  # the parent's own setting is put back
    _no_leftovers(folder)
    mtimes = {p: p.stat().st_mtime_ns for p in (folder / "r").rglob("*.json")}
    assert [d["status"] for d in run_benchmark(BENCH, TIER, **kwargs)] == ["exists"] * 4
    assert mtimes == {p: p.stat().st_mtime_ns for p in (folder / "r").rglob("*.json")}


def test_a_bad_record_found_by_a_worker_is_the_same_error_as_in_one_process(tmp_path, one_thread):
    kwargs = dict(models=MODELS[:1], seeds=SEEDS, records_dir=tmp_path / "r", weights_dir=None, checkpoints_dir=None,
                  progress=False)
    done = run_benchmark(BENCH, TIER, **kwargs)
    Path(done[0]["path"]).write_text("{")
    with pytest.raises(ZooError, match="not valid JSON"):
        run_benchmark(BENCH, TIER, jobs=2, **kwargs)


def _group_alive(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group, read from /proc."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            alive.append(int(stat.parent.name))
    return alive


def _cli_suite(folder: Path, *extra: str) -> subprocess.Popen:
    """``zoo bench run`` in a child process of its own process group, one thread, records under ``folder/r``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "zoo", *SUITE, "--records", "r", "--weights", "w",
                             "--checkpoints", "c", *extra], cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finished(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_jobs_suite_killed_mid_way_by_sigkill_and_started_again_ends_with_every_record_once(tmp_path, expected):
    folder = tmp_path / "killed"
    folder.mkdir()
    victim = _cli_suite(folder, "--jobs", "2")
    deadline = time.monotonic() + 600
    while not list((folder / "r").rglob("*.json")):  # mid-way: a record written, the other worker mid-run
        assert victim.poll() is None, "the suite ended before it could be killed: " + victim.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no record after 600 s"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)  # the suite alone: its workers must notice and go
    victim.wait()
    victim.stdout.close(), victim.stderr.close()
    while _group_alive(victim.pid):  # the group's id is the suite's pid (a session of its own)
        if time.monotonic() > deadline:
            os.killpg(victim.pid, signal.SIGKILL)
            pytest.fail("the workers outlived their killed suite")
        time.sleep(0.1)
    before = set(_records(folder))
    assert before and before < IDS, before
    counts = _summary(_finished(_cli_suite(folder, "--jobs", "2")))
    assert counts == {"ran": len(IDS - before), "diverged": 0, "exists": len(before), "elsewhere": 0}
    _same_runs(_records(folder), expected)  # resumed or rerun, every run ends where it would have
    _no_leftovers(folder)


# --- the command line and submitit ---------------------------------------------------------------------------------

def test_help_shows_the_parallel_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0
    for text in ("--jobs N", "--shard i/N", "--launcher NAME", "one of: none, local, slurm, submitit", "--shards N",
                 "--slurm_partition", "--slurm_time MINUTES", "--slurm_cpus_per_task", "--slurm_gpus_per_node",
                 "0 <= i < N, counted from 0"):
        assert text in out, text


@pytest.mark.parametrize("args, message", [
    (["--jobs", "0"], "--jobs must be an integer >= 1, got 0"),
    (["--jobs", "-1"], "--jobs must be an integer >= 1, got -1"),
    (["--launcher", "pbs"], "unknown --launcher 'pbs'; valid choices: none, local, slurm, submitit"),
    (["--shard", "3/2"], "--shard must be i/N with 0 <= i < N, counted from 0 (--shard 0/4, 1/4"),
    (["--shard", "a/b"], "--shard must be i/N with 0 <= i < N"),
    (["--shard", "0/0"], "--shard must be i/N with 0 <= i < N"),
    (["--shards", "2", "--wait"], "--shards and --wait go with --launcher local, slurm or submitit"),
    (["--launcher", "local", "--shard", "0/2"], "--shard and --launcher local do not go together"),
    (["--launcher", "local", "--shards", "0"], "--shards must be an integer >= 1, got 0"),
    (["--launcher", "local", "--slurm_time", "0"], "--slurm_time (minutes) must be an integer >= 1, got 0"),
    (["--launcher", "local", "--slurm_partition", "cpu"], "--slurm_partition goes with --launcher slurm"),
    (["--launcher", "slurm"], "--launcher slurm submits with SLURM's sbatch, which is not on PATH here"),
])
def test_bad_parallel_options_are_one_error_naming_the_valid_choices(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch here, whatever the machine has
    assert main([*SUITE, "--records", str(tmp_path / "r"), "--submitit_folder", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists()  # nothing run, nothing submitted


def test_a_job_cut_off_by_the_cluster_asks_for_its_own_shard_again():
    job = ShardJob()
    again = job.checkpoint(BENCH, TIER, (1, 2), 4, {"records_dir": "/r"})
    assert again.function is job and again.args == (BENCH, TIER, (1, 2), 4, {"records_dir": "/r"})


def test_two_shards_as_submitit_local_jobs_write_what_one_suite_writes(tmp_path, capsys, monkeypatch, expected):
    pytest.importorskip("submitit", reason="submitit is the cluster extra (in the test extra too)")
    folder = tmp_path / "local"
    folder.mkdir()
    monkeypatch.chdir(folder)  # relative folders, as a user types them: the jobs get them absolute
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # what a job starts from, unless it takes its CPUs' count
    assert main([*SUITE, "--records", "r", "--weights", "w", "--checkpoints", "c", "--launcher", "local",
                 "--shards", "2", "--slurm_cpus_per_task", "1", "--submitit_folder", "jobs"]) == 0
    out = capsys.readouterr().out
    assert "2 shard job(s) submitted (local)" in out
    # 4 entries over the two jobs for 4 pairs, all run: each pair was in one shard and ran once
    assert _summary(out) == {"ran": 4, "diverged": 0, "exists": 0, "elsewhere": 0}, out
    got = _records(folder)
    assert {r["environment"]["cpu_threads"] for r in got.values()} == {1}  # the job's --slurm_cpus_per_task
    _same_runs(got, expected)
    _no_leftovers(folder)
    logs = sorted((folder / "jobs").rglob("*_log.out"))
    assert len(logs) == 2
    printed = [line.split(":")[0] for log in logs for line in log.read_text().splitlines()
               if line.startswith(f"{BENCH}.{TIER}.")]
    assert sorted(printed) == sorted(IDS)  # each job's one line a record, each record by one job
