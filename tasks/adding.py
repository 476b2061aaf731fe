"""The adding problem, in the variant of Le, Jaitly & Hinton (2015).

Each sequence has two channels: values drawn from U(0, 1), and markers that are 0
except at one step in the first half and one step in the second half. The target is
the sum of the two marked values. Predicting 1.0 always scores MSE = Var(U+U) = 1/6,
which is where a network that cannot carry information across T steps stays.

Training batches are drawn fresh, each from its own seed (the run's seed and the
batch's index), so a run sees new data every step and yet is exactly repeatable.
The validation and test sets are fixed by ``data_seed``, which does not change with
the run's seed: every run on every machine is scored on the same sequences.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from tasks.loaders import fresh_loader, on_accelerator
from tasks.streams import FreshBatches, seeded_generator
from zoo.errors import check_int
from zoo.task_spec import TaskSpec

MAX_SEQ_LEN = 100_000
TRIVIAL_MSE = 1.0 / 6.0  # MSE of always predicting 1.0 = Var(U(0,1) + U(0,1))
VAL_STREAM, TEST_STREAM = 1, 2  # sub-streams of data_seed


def make_adding(n: int, seq_len: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences: inputs (n, T, 2) float32 and targets (n,) float32."""
    values = torch.rand(n, seq_len, generator=generator)  # (n, T)
    half = seq_len // 2
    first = torch.randint(0, half, (n,), generator=generator)  # one marker in [0, T/2)
    second = torch.randint(half, seq_len, (n,), generator=generator)  # one in [T/2, T)
    rows = torch.arange(n)
    markers = torch.zeros(n, seq_len)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]  # (n,)
    return torch.stack([values, markers], dim=-1), target  # (n, T, 2), (n,)


class AddingProblem(L.LightningDataModule):
    """The adding problem at sequence length ``seq_len``.

    ``batches_per_epoch`` only sets how often validation runs (once an epoch); the
    training data never repeats. ``seed`` picks the training stream; unset, it is
    taken from the run's seed (``seed_everything``) when the loaders are built.
    ``num_workers`` > 0 makes the training batches in worker processes (the same batches).
    On a GPU they are made in a thread meanwhile anyway (``tasks.loaders``), which measured faster.
    """

    def __init__(
        self,
        seq_len: int = 100,
        batch_size: int = 128,
        batches_per_epoch: int = 100,
        val_size: int = 1000,
        test_size: int = 10_000,
        eval_batch_size: int = 500,
        seed: int | None = None,
        data_seed: int = 1234,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.seq_len = check_int("seq_len (T)", seq_len, low=2, high=MAX_SEQ_LEN)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.batches_per_epoch = check_int("batches_per_epoch", batches_per_epoch, low=1)
        self.val_size = check_int("val_size", val_size, low=1)
        self.test_size = check_int("test_size", test_size, low=1)
        self.eval_batch_size = check_int("eval_batch_size", eval_batch_size, low=1)
        self.seed = None if seed is None else check_int("seed", seed, low=0)
        self.data_seed = check_int("data_seed", data_seed, low=0)
        self.num_workers = check_int("num_workers", num_workers, low=0)
        self.save_hyperparameters()
        self._sets: dict[str, TensorDataset] = {}

    @property
    def task_spec(self) -> TaskSpec:
        return TaskSpec(
            name=f"adding_T{self.seq_len}",
            input_size=2,
            output_size=1,
            head="last",
            loss="mse",
            metrics=("mse", "accuracy"),
            target_metric="mse",
            target=0.01,
            target_mode="min",
            tolerance=0.04,
            baselines={"mse": TRIVIAL_MSE},
            baseline_note="always predicting 1.0",
        )

    def fixed_set(self, stage: str) -> TensorDataset:
        """The validation or test set: the same tensors for a given (data_seed, T, size) everywhere."""
        if stage not in self._sets:
            size, stream = (self.val_size, VAL_STREAM) if stage == "val" else (self.test_size, TEST_STREAM)
            x, y = make_adding(size, self.seq_len, seeded_generator(self.data_seed, stream, self.seq_len))
            self._sets[stage] = TensorDataset(x, y)
        return self._sets[stage]

    def train_dataloader(self) -> DataLoader:
        seed = self.seed if self.seed is not None else torch.initial_seed()
        batches = FreshBatches(make_adding, self.seq_len, self.batch_size, seed)
        return fresh_loader(batches, self.batches_per_epoch, self.num_workers, background=on_accelerator(self))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.fixed_set("val"), batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.fixed_set("test"), batch_size=self.eval_batch_size)
