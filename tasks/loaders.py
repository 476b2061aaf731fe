"""Training loaders that a run killed mid-epoch resumes at the very batch it would have trained next.

Lightning keeps a train loader's ``state_dict`` in every checkpoint when the loader
has one, and hands it back before iterating again on resume. ``ResumableLoader``
counts the batches it has served this epoch and, after a restore, passes over that
many before serving the next. That only gives the batches of the interrupted run if
the epoch's order can be made again: the order must be a function of (seed, epoch),
never of the global random state at the epoch's start, which no checkpoint holds.
``EpochShuffle`` is such an order; ``tasks.streams.EpochBatchIds`` (fresh synthetic
batches) and an unshuffled stream already are.

On a GPU a ``ResumableLoader`` makes each batch in a thread while the model trains on
the one before (``background``): the main process would otherwise make it while the
GPU waits. On an H100 that wait was 4 to 12 % of a cuDNN step (the adding problem's
fresh batch at T=1000: 0.95 ms of an 8 ms step), where a worker process was slower
still (1.0 ms: the batch crosses shared memory). On the CPU both cores train, so the
loop makes its batches itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tasks.streams import EpochBatchIds, seeded_generator


class EpochShuffle(Sampler[list[int]]):
    """Batches of indices in a random order made from (seed, epoch): the same order whenever it is made again.

    ``seed`` defaults to ``torch.initial_seed()`` when the sampler is built, i.e. the
    run's seed once ``seed_run`` (Lightning's ``seed_everything``) has been called.
    Lightning calls ``set_epoch`` at the start of each epoch. The last batch may be short.
    """

    def __init__(self, size: int, batch_size: int, seed: int | None = None) -> None:
        self.size, self.batch_size = size, batch_size
        self.seed = torch.initial_seed() if seed is None else seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.size, generator=seeded_generator(self.seed, self.epoch))  # (N,)
        return (chunk.tolist() for chunk in order.split(self.batch_size))


class ResumableLoader(DataLoader):
    """A DataLoader that remembers how many batches of the current epoch it has served.

    Passing over the served batches on resume fetches them and drops them; every task's
    batches are slices of tensors built once or made by a seeded generator, so a whole
    epoch of them costs well under a second. The count is exact because Lightning does
    not prefetch from a loader whose length it knows.
    """

    def __init__(self, *args: Any, background: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.background = background  # make the next batch in a thread (in-process loaders only)
        self.served = 0
        self._to_pass = 0

    def __iter__(self) -> Iterator[Any]:
        return self._serve()

    def _serve(self) -> Iterator[Any]:
        # Lazy: on resume Lightning makes this iterator before it calls the sampler's
        # set_epoch, so the order is only drawn at the first batch.
        to_pass, self._to_pass = self._to_pass, 0
        batches = super().__iter__()
        if self.background and self.num_workers == 0:
            batches = made_ahead(batches)
        self.served = 0
        for _ in range(to_pass):
            if next(batches, None) is None:
                return
            self.served += 1
        for batch in batches:
            self.served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"served": self.served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        served = int(state.get("served", 0))
        # A checkpoint taken after an epoch's last batch resumes with the next epoch, from its start.
        self._to_pass = served if served < len(self) else 0


T = TypeVar("T")
_END = object()


def made_ahead(items: Iterator[T]) -> Iterator[T]:
    """What ``items`` yields, in order, each next item made in a thread while the caller uses this one.

    Only that thread advances ``items``. A batch is made by torch ops, which let go of the
    GIL, so the making overlaps the main thread's work. Closing this iterator early waits
    for the item in the making and drops it; an error in the making is raised here.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zoo-next-batch") as pool:
        pending = pool.submit(next, items, _END)
        while (item := pending.result()) is not _END:
            pending = pool.submit(next, items, _END)
            yield item


def on_accelerator(datamodule: Any) -> bool:
    """Whether the Trainer a DataModule is attached to runs on an accelerator (not the CPU)."""
    device = getattr(getattr(getattr(datamodule, "trainer", None), "strategy", None), "root_device", None)
    return device is not None and device.type != "cpu"  # no Trainer (or one that names no device): the CPU


def fresh_loader(batches: Dataset, batches_per_epoch: int, num_workers: int,
                 background: bool = False) -> ResumableLoader:
    """A synthetic task's training loader: batch k of ``batches`` (a ``FreshBatches``) at step k.

    With ``num_workers`` > 0 the batches are made in that many worker processes, kept for
    the whole run; with ``background``, in a thread of this one. Each batch comes from
    its own seeded generator, so the data are the same either way.
    """
    return ResumableLoader(batches, batch_size=None, sampler=EpochBatchIds(batches_per_epoch),
                           num_workers=num_workers, persistent_workers=num_workers > 0, background=background)


__all__ = ["EpochShuffle", "ResumableLoader", "fresh_loader", "made_ahead", "on_accelerator"]
