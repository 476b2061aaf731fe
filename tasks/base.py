"""The DataModule base every task is built on, and the facts about its data the app needs.

A task owns what is true of its data, so nothing in ``zoo/`` or ``zoo/app/`` branches on
a task's name:

* ``task_spec`` (abstract): what the model is built from (``zoo.task_spec.TaskSpec``).
* ``checksums()`` (abstract): what the data was, for the run record: the sha256 of every
  file read, or the generator's seed for a synthetic task.
* ``licence``: the training data's terms, for a release's card.
* ``release_facts()``: what a release must carry for the model to be fed correctly
  (a language model's vocabulary, MNIST's normalization, pixel order and image size);
  nothing for a synthetic task.
* ``supports_length(T)``: whether the task can be read at sequence length T (the
  length-generalisation tests).

``SyntheticTask`` is the base of generated tasks (the adding problem, copy memory):
fresh training batches per batch index and fixed validation / test sets from ``data_seed``.

A user's own task plugs in as any importable subclass of ``TaskDataModule``, named by
its dotted class path (``--data mypkg.tasks.MyTask``; ``tasks.resolve_datamodule``).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from tasks.loaders import fresh_loader, on_accelerator
from tasks.streams import FreshBatches, MakeBatch
from zoo.errors import check_int
from zoo.task_spec import TaskSpec

VAL_STREAM, TEST_STREAM = 1, 2  # sub-streams of data_seed for the fixed sets of synthetic tasks


class TaskDataModule(L.LightningDataModule, abc.ABC):
    """A task: a LightningDataModule that also states the facts about its data (see the module docstring)."""

    # The training data's terms, in words (a subclass whose terms depend on its settings makes it a property).
    licence: ClassVar[str | None] = None

    @property
    @abc.abstractmethod
    def task_spec(self) -> TaskSpec:
        """The contract with the model; needs no data read, so a model can be built first."""

    @abc.abstractmethod
    def checksums(self) -> dict[str, Any]:
        """What the data was, for the run record: sha256 of each file read, or the generator's seed."""

    def release_facts(self) -> dict[str, Any]:
        """Plain JSON a release must carry for the model to be used correctly; none by default.

        The key ``vocab`` (a list of tokens) is shipped as a file of its own; everything
        else goes into the card's ``preprocessing``.
        """
        return {}

    def supports_length(self, seq_len: int) -> bool:
        """Whether this task can be read at sequence length ``seq_len``; by default only at its own."""
        return seq_len == getattr(self, "seq_len", None)


class SyntheticTask(TaskDataModule):
    """A generated task at sequence length ``seq_len``: fresh training batches, fixed evaluation sets.

    A subclass sets ``make`` (a module-level ``make(n, seq_len, generator) -> (inputs,
    targets)``, so the batches pickle into loader workers), ``fixed_set(stage)`` and
    the bounds of ``seq_len``.

    ``batches_per_epoch`` only sets how often validation runs (once an epoch); the
    training data never repeats. ``seed`` picks the training stream; unset, it is
    taken from the run's seed (``seed_everything``) when the loaders are built.
    ``num_workers`` > 0 makes the training batches in worker processes (the same batches).
    On a GPU they are made in a thread meanwhile anyway (``tasks.loaders``), which measured faster.
    """

    MIN_SEQ_LEN: ClassVar[int] = 1
    MAX_SEQ_LEN: ClassVar[int] = 100_000
    make: ClassVar[MakeBatch]
    # DataLoader batch_size of the fixed sets: None when ``fixed_set`` already yields whole batches.
    eval_batches_made: ClassVar[bool] = False

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
        self.seq_len = check_int("seq_len (T)", seq_len, low=self.MIN_SEQ_LEN, high=self.MAX_SEQ_LEN)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.batches_per_epoch = check_int("batches_per_epoch", batches_per_epoch, low=1)
        self.val_size = check_int("val_size", val_size, low=1)
        self.test_size = check_int("test_size", test_size, low=1)
        self.eval_batch_size = check_int("eval_batch_size", eval_batch_size, low=1)
        self.seed = None if seed is None else check_int("seed", seed, low=0)
        self.data_seed = check_int("data_seed", data_seed, low=0)
        self.num_workers = check_int("num_workers", num_workers, low=0)
        self.save_hyperparameters()
        self._fixed: dict[str, Any] = {}  # what ``fixed_set`` made, by stage

    def checksums(self) -> dict[str, Any]:
        """A generated task's data is its generator and seed: the fixed sets are made from ``data_seed``."""
        return {"synthetic": type(self).__name__, "data_seed": self.data_seed}

    def supports_length(self, seq_len: int) -> bool:
        """Any length the generator takes."""
        return isinstance(seq_len, int) and self.MIN_SEQ_LEN <= seq_len <= self.MAX_SEQ_LEN

    @abc.abstractmethod
    def fixed_set(self, stage: str) -> Dataset:
        """The validation or test set: the same for a given (data_seed, T, size) everywhere."""

    def train_dataloader(self) -> DataLoader:
        seed = self.seed if self.seed is not None else torch.initial_seed()
        batches = FreshBatches(type(self).make, self.seq_len, self.batch_size, seed)
        return fresh_loader(batches, self.batches_per_epoch, self.num_workers, background=on_accelerator(self))

    def _eval_loader(self, stage: str) -> DataLoader:
        batch_size = None if self.eval_batches_made else self.eval_batch_size
        return DataLoader(self.fixed_set(stage), batch_size=batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
