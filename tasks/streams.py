"""Fresh, repeatable training streams for synthetic tasks (the adding problem, copy memory).

A synthetic task is a function ``make(n, seq_len, generator) -> (inputs, targets)``
that builds ``n`` sequences at once with torch ops. Training batch number k is made
from its own generator, seeded by (the run's seed, k): a run never sees the same
batch twice, any batch can be re-made on demand (resuming mid-epoch needs no saved
data), and the numbers are the same on every machine because CPU generators are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Dataset, Sampler

MakeBatch = Callable[[int, int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def seeded_generator(*seeds: int) -> torch.Generator:
    """A CPU generator for a tuple of seeds; CPU generators give the same numbers on every machine."""
    seed = 0
    for part in seeds:
        seed = (seed * 1_000_003 + int(part)) % (1 << 63)
    return torch.Generator().manual_seed(seed)


class FreshBatches(Dataset):
    """Batch number k is ``make(batch_size, seq_len, generator(seed, k))``: any batch can be re-made on demand.

    ``make`` must be a module-level function so the dataset pickles into loader workers.
    """

    def __init__(self, make: MakeBatch, seq_len: int, batch_size: int, seed: int) -> None:
        self.make, self.seq_len, self.batch_size, self.seed = make, seq_len, batch_size, seed

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.make(self.batch_size, self.seq_len, seeded_generator(self.seed, k))


class EpochBatchIds(Sampler[int]):
    """Yields the batch numbers of one epoch: epoch e gets [e*n, (e+1)*n).

    Lightning calls ``set_epoch`` on a sampler at the start of each epoch, so every
    epoch draws new batches without the sampler keeping any other state.
    """

    def __init__(self, batches_per_epoch: int) -> None:
        self.batches_per_epoch = batches_per_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[int]:
        start = self.epoch * self.batches_per_epoch
        return iter(range(start, start + self.batches_per_epoch))
