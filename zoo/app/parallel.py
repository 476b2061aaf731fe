"""Several (model, seed) pairs of one suite at once, and one machine's share of a suite.

    zoo bench run adding_t100 --tier cpu --jobs 2          # two pairs at a time, a thread each on 2 cores
    zoo bench run adding_t100 --tier cpu --shard 0/4       # this machine's quarter of the pairs

What a pair does (skip it when its record exists, claim it with a lock, resume from its
checkpoint, write its record atomically) stays in ``zoo.app.runner.run_pair``: this module
only decides which pairs a process takes and runs them side by side, so a suite run with
``--jobs``, on several machines or as cluster jobs ends with the records a one-process
suite writes, and is killed and resumed the same way.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from zoo.errors import ZooError, check_int

Pair = tuple[str, int]
SHARD_FORM = "i/N with 0 <= i < N, counted from 0 (--shard 0/4, 1/4, 2/4 and 3/4 split a suite over 4 machines)"


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` as ``(i, N)``; anything else is one error naming the valid form."""
    match = re.fullmatch(r"(\d+)/(\d+)", str(text).strip())
    if match is None or not int(match[1]) < int(match[2]):
        raise ZooError(f"--shard must be {SHARD_FORM}, got {text!r}")
    return int(match[1]), int(match[2])


def check_shard(shard: Any) -> tuple[int, int]:
    """A library caller's ``shard=(i, N)``, checked as the command line's ``--shard i/N`` is."""
    ok = isinstance(shard, (tuple, list)) and len(shard) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in shard) and 0 <= shard[0] < shard[1]
    if not ok:
        raise ZooError(f"shard must be (i, N) with 0 <= i < N, counted from 0, got {shard!r}")
    return int(shard[0]), int(shard[1])


def shard_pairs(pairs: Iterable[Pair], shard: tuple[int, int]) -> list[Pair]:
    """Shard ``i`` of ``N``: the pairs sorted by (model, seed), every N-th from the i-th.

    Sorted, so the share depends only on the suite and not on the order its models or
    seeds were given: N machines given the same suite and shards 0/N … N-1/N run every
    pair once. The pairs interleave, so each shard gets a mix of models and seeds.
    """
    index, count = check_shard(shard)
    ordered = sorted(dict.fromkeys(pairs))
    return [pair for k, pair in enumerate(ordered) if k % count == index]


def threads_per_job(total: int, jobs: int) -> int:
    """Torch threads for each of ``jobs`` processes sharing ``total``: at least one, never more than their share."""
    return max(1, total // jobs)


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables while the block runs (what spawned workers inherit), then put them back."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _exit_with_parent(parent: int) -> None:
    """End this worker once the suite that started it is gone (killed, even by SIGKILL).

    An orphaned worker would hold its pair's lock until its run ended, so a suite started
    again at once would skip that pair as "running elsewhere"; exiting releases the lock.
    The pair's record is written atomically and its run checkpointed, so nothing is torn.
    """
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


_SLOT = 0  # this worker's line on the terminal for its runs' progress bars (the suite's bar is line 0)


def _start_worker(threads: int, parent: int, setup: Callable[[], None] | None, slots: Any = None) -> None:
    """Every worker, before its first pair: its share of the threads, the parent's logging, a watch on the parent."""
    import torch

    global _SLOT
    if slots is not None:  # a shared counter: each worker takes the next line
        with slots.get_lock():
            slots.value += 1
            _SLOT = slots.value

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    if setup is not None:
        setup()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="exit-with-parent").start()


def _in_slot(run_one: Callable[..., tuple[dict[str, Any], dict[str, Any] | None]], model: str,
             seed: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``run_one`` with its progress bar on this worker's own terminal line."""
    return run_one(model, seed, position=_SLOT)


def run_pairs(pairs: list[Pair], run_one: Callable[[str, int], tuple[dict[str, Any], dict[str, Any] | None]], *,
              jobs: int, line: Callable[[dict[str, Any]], str], desc: str, progress: bool = True,
              setup: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """``run_one(model, seed)`` for every pair, ``jobs`` at a time in fresh ('spawn') processes; entries in pair order.

    ``run_one`` must pickle (``zoo.app.runner.run_pair`` with its settings bound). Each
    worker gets ``threads_per_job`` of this process's torch threads (set before its first
    pair, and as OMP_NUM_THREADS before torch starts), so N pairs at once do not
    oversubscribe the cores; each record notes the threads its run had. One line
    (``line(record)``) is printed for each record as it is written, under a progress bar.
    """
    import torch
    from tqdm.auto import tqdm

    check_int("jobs", jobs, low=1)
    if not pairs:
        return []
    workers = min(jobs, len(pairs))
    threads = threads_per_job(torch.get_num_threads(), workers)
    entries: dict[int, dict[str, Any]] = {}
    bar = tqdm(total=len(pairs), desc=f"{desc} ({workers} jobs, {threads} thread{'s' * (threads > 1)} each)",
               unit="run", disable=not progress)
    context = multiprocessing.get_context("spawn")
    with environment(OMP_NUM_THREADS=str(threads)), ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker,
            initargs=(threads, os.getpid(), setup, context.Value("i", 0))) as pool:
        futures = {pool.submit(_in_slot, run_one, model, seed): k for k, (model, seed) in enumerate(pairs)}
        try:
            for future in as_completed(futures):
                entry, record = future.result()
                entries[futures[future]] = entry
                if record is not None:
                    bar.write(line(record))
                bar.update()
        except BrokenProcessPool:
            raise ZooError("a worker process of the suite died (killed, or out of memory); the records written so "
                           "far stay, and the same command resumes the rest") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
    return [entries[k] for k in range(len(pairs))]
