"""A suite's shards as cluster jobs, through submitit: SLURM, or local processes that stand in for it.

    zoo bench run adding_t100 --tier cpu --launcher slurm --shards 8 --slurm_partition cpu --slurm_time 120
    zoo bench run adding_t100 --tier smoke --launcher local --shards 2      # the same jobs on this machine

Each job runs ``run_benchmark(..., shard=(i, N))``, so the jobs split the suite as N
machines given ``--shard i/N`` would, with the same skip, lock, checkpoint and atomic
record steps; a job cut off (its time limit, a preemption) is requeued by submitit and
resumes from its runs' checkpoints. submitit is an optional extra (``.[cluster]``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, check_choice, check_int

LAUNCHERS = ("none", "local", "slurm", "submitit")  # "submitit": SLURM through submitit, as "slurm"
CLUSTERS = {"local": "local", "slurm": "slurm", "submitit": "slurm"}  # launcher -> submitit's executor
DEFAULT_FOLDER = "runs/submitit"


@dataclass(frozen=True)
class ClusterOptions:
    """What each shard job asks of the cluster."""

    shards: int | None = None  # None: one job a pair
    partition: str | None = None  # SLURM only; None: the cluster's default partition
    time_min: int = 60  # each job's time limit
    cpus_per_task: int = 4  # also the torch threads the job's runs use
    gpus_per_node: int = 0
    folder: str = DEFAULT_FOLDER  # submitit's pickles and the jobs' logs; on a shared disk for SLURM

    def __post_init__(self) -> None:
        if self.shards is not None:
            check_int("--shards", self.shards, low=1)
        check_int("--slurm_time (minutes)", self.time_min, low=1)
        check_int("--slurm_cpus_per_task", self.cpus_per_task, low=1)
        check_int("--slurm_gpus_per_node", self.gpus_per_node, low=0)


class ShardJob:
    """One shard of a suite as a submitit job.

    A class with ``checkpoint``, which submitit calls when SLURM is about to stop the job
    (its time limit, a preemption): it asks for the same shard again, and the requeued
    job skips the shard's finished pairs and resumes the interrupted one from its checkpoint.
    """

    def __call__(self, name: str, tier: str, shard: tuple[int, int], threads: int,
                 run_kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        import torch

        from zoo.app.runner import quiet_lightning, run_benchmark

        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)  # the job's CPUs, not the node's
        quiet_lightning()
        return run_benchmark(name, tier, shard=shard, progress=False, **run_kwargs)

    def checkpoint(self, *args: Any, **kwargs: Any):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def _executor(launcher: str, options: ClusterOptions, job_name: str):
    try:
        import submitit
    except ImportError:
        raise ZooError(f"--launcher {launcher} needs submitit: pip install 'rnn-zoo[cluster]' "
                       "(from a checkout: pip install -e '.[cluster]')") from None
    cluster = CLUSTERS[launcher]
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ZooError(f"--launcher {launcher} submits with SLURM's sbatch, which is not on PATH here; run it on the "
                       "cluster's login node, or use --launcher local to run the shards as jobs on this machine")
    executor = submitit.AutoExecutor(folder=Path(options.folder).resolve(), cluster=cluster)
    executor.update_parameters(name=job_name, timeout_min=options.time_min, cpus_per_task=options.cpus_per_task,
                               gpus_per_node=options.gpus_per_node, tasks_per_node=1, nodes=1)
    if cluster == "slurm" and options.partition:
        executor.update_parameters(slurm_partition=options.partition)
    return executor


def _absolute(run_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Folders as absolute paths: a job may start in another working directory, or on another node."""
    folders = ("records_dir", "weights_dir", "checkpoints_dir", "data_dir")
    return {key: (str(Path(value).resolve()) if key in folders and value is not None else value)
            for key, value in run_kwargs.items()}


def submit_shards(name: str, tier: str, *, launcher: str, options: ClusterOptions,
                  run_kwargs: dict[str, Any]) -> list[tuple[tuple[int, int], Any]]:
    """Submit the suite as ``options.shards`` jobs (at most one a pair); return each shard and its submitit job.

    ``run_kwargs`` are ``run_benchmark``'s settings (models, seeds, own_models, folders,
    jobs, ...). The suite is checked here first, so a bad name fails before anything is
    submitted.
    """
    from zoo.app.runner import suite

    check_choice("launcher", launcher, [name for name in LAUNCHERS if name != "none"])
    _, pairs = suite(name, tier, models=run_kwargs.get("models"), seeds=run_kwargs.get("seeds"),
                     own_models=run_kwargs.get("own_models"))
    count = min(options.shards or len(pairs), len(pairs))
    executor = _executor(launcher, options, f"zoo-{name}-{tier}")
    kwargs = _absolute(run_kwargs)
    job = ShardJob()
    with executor.batch():  # a SLURM job array
        submitted = [executor.submit(job, name, tier, (i, count), options.cpus_per_task, kwargs)
                     for i in range(count)]
    return [((i, count), j) for i, j in enumerate(submitted)]


def wait_for(jobs: list[tuple[tuple[int, int], Any]]) -> list[dict[str, Any]]:
    """Every job's entries, once all have ended; a failed job is one error naming its shard and its log."""
    done: list[dict[str, Any]] = []
    failed = []
    for (index, count), job in jobs:
        try:
            done.extend(job.result())
        except Exception as err:  # submitit's FailedJobError carries the job's traceback
            last = [line for line in str(err).strip().splitlines() if line.strip()]
            failed.append(f"shard {index}/{count} (job {job.job_id}): {last[-1] if last else err!r}; "
                          f"log {job.paths.stderr}")
    if failed:
        raise ZooError("shard job(s) failed: " + "; ".join(failed) + " (run the same command again to resume)")
    return done
