"""The copy-memory task of Arjovsky, Shah & Bengio (2016), "Unitary Evolution Recurrent Neural Networks".

A network reads 10 symbols, waits T steps, and must then write the 10 symbols back
in order. The delay T is the only knob, so the task isolates what the adding problem
mixes with arithmetic: carrying information across T steps.

Layout, the paper's convention (section 4.1), with its categories relabelled so that
blank is 0: the paper's a_0..a_7 are our data symbols 1..8, its blank a_8 is our 0,
its delimiter a_9 is our 9. For a delay T, with 0-based step indices:

=====================  ==========================  ==========================
steps                  input                       target
=====================  ==========================  ==========================
0 .. 9                 10 symbols, each U{1..8}    blank (0)
10 .. T+8  (T-1 steps) blank (0)                   blank (0)
T+9                    delimiter (9)               blank (0)
T+10 .. T+19           blank (0)                   the 10 symbols, in order
=====================  ==========================  ==========================

So a sequence is T+20 steps long, the delimiter is the (T+10)-th step, the target is
T+10 blanks then the symbols, and the first symbol is due on the step *after* the
delimiter. (Some later code instead puts T blanks before the delimiter and asks for
the first symbol on the delimiter step itself; those numbers are not comparable with
these at the same T.)

The model predicts at every step and is scored by cross-entropy averaged over all
T+20 steps, as in the paper. Targets take 9 values (blank and the 8 symbols; the
delimiter is never a target), so the output has 9 classes while the input vocabulary
has 10, as is usual in code for this task (n_input 10, n_output 9): a 10th logit
could only learn to be suppressed. The memoryless baseline predicts blank with certainty for
T+10 steps and then uniform over the 8 symbols: cross-entropy 10·ln 8 / (T+20).

Beside the all-step accuracy (the target metric), the task reports "exact_copy": the
share of test sequences whose 10 recalled symbols are all right (blank steps not
scored); the memoryless strategy copies (1/8)^10 ≈ 1e-9 of them.

Training batches are drawn fresh per batch index (see ``tasks.streams``); the
validation and test sets are fixed by ``data_seed`` and are the same everywhere.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from tasks.base import TEST_STREAM, VAL_STREAM, SyntheticTask
from tasks.streams import seeded_generator
from zoo.errors import check_choice
from zoo.task_spec import TaskSpec

BLANK, DELIMITER = 0, 9
NUM_SYMBOLS = 8  # data symbols are 1..NUM_SYMBOLS
COPY_LENGTH = 10  # symbols to remember
VOCAB_SIZE = 10  # input ids: blank, 8 symbols, delimiter
NUM_CLASSES = 9  # target ids: blank and the 8 symbols
MAX_SEQ_LEN = 100_000  # largest delay T
RECALL_TARGET = 0.99  # share of recalled symbols the target accuracy stands for


def memoryless_loss(seq_len: int) -> float:
    """Cross-entropy per step of the memoryless strategy: 0 on T+10 blanks, ln 8 on each of 10 symbols."""
    return COPY_LENGTH * math.log(NUM_SYMBOLS) / (seq_len + 2 * COPY_LENGTH)


def memoryless_accuracy(seq_len: int) -> float:
    """Expected all-step accuracy of the memoryless strategy: every blank right, 1 in 8 symbols right.

    High (0.93 at T=100, 0.99 at T=1000) because most targets are blanks: read
    accuracy beside this number, never alone.
    """
    return (seq_len + COPY_LENGTH + COPY_LENGTH / NUM_SYMBOLS) / (seq_len + 2 * COPY_LENGTH)


def memoryless_exact_copy() -> float:
    """Share of sequences the memoryless strategy copies exactly: all 10 symbols guessed right, (1/8)^10 ≈ 9.3e-10."""
    return (1.0 / NUM_SYMBOLS) ** COPY_LENGTH


def target_accuracy(seq_len: int) -> float:
    """All-step accuracy meaning at most 0.1 wrong steps per sequence: >= 99% of recalled symbols right.

    A fixed all-step target would be met by the memoryless baseline at long delays
    (0.99 is, from T = 855 on), so the target is scaled by the sequence length.
    """
    return 1.0 - COPY_LENGTH * (1.0 - RECALL_TARGET) / (seq_len + 2 * COPY_LENGTH)


def draw_symbols(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 10) int64 symbols, each uniform over 1..8."""
    return torch.randint(1, NUM_SYMBOLS + 1, (n, COPY_LENGTH), generator=generator)


def lay_out(symbols: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets, both (n, T+20) int64, for symbols (n, 10); the layout is in the module docstring."""
    n = symbols.shape[0]
    length = seq_len + 2 * COPY_LENGTH
    x = torch.full((n, length), BLANK, dtype=torch.int64)
    x[:, :COPY_LENGTH] = symbols
    x[:, seq_len + COPY_LENGTH - 1] = DELIMITER
    y = torch.full((n, length), BLANK, dtype=torch.int64)
    y[:, seq_len + COPY_LENGTH :] = symbols
    return x, y


def make_copy_memory(n: int, seq_len: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences at delay T: inputs (n, T+20) and targets (n, T+20), int64."""
    return lay_out(draw_symbols(n, generator), seq_len)


class CopyBatches(Dataset):
    """A fixed set served as laid-out batches: item k is batch k of ``batch_size`` sequences.

    Only the (n, 10) symbols are stored. The laid-out set is (T+20)/10 times larger:
    10,000 test sequences at T=10,000 would hold 1.6 GB of int64 ids.
    """

    def __init__(self, symbols: torch.Tensor, seq_len: int, batch_size: int) -> None:
        self.symbols, self.seq_len, self.batch_size = symbols, seq_len, batch_size

    def __len__(self) -> int:
        return -(-self.symbols.shape[0] // self.batch_size)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= k < len(self):
            raise IndexError(k)
        return lay_out(self.symbols[k * self.batch_size : (k + 1) * self.batch_size], self.seq_len)


class CopyMemory(SyntheticTask):
    """The copy-memory task at delay ``seq_len`` (T); sequences are T+20 steps long.

    Settings: ``tasks.base.SyntheticTask``; ``supports_length`` is about the delay T.
    """

    MIN_SEQ_LEN, MAX_SEQ_LEN = 1, MAX_SEQ_LEN
    make = staticmethod(make_copy_memory)
    licence = "synthetic (generated by tasks/copy_memory.py); no third-party data"
    eval_batches_made = True  # fixed_set is already batches of eval_batch_size

    @property
    def task_spec(self) -> TaskSpec:
        return TaskSpec(
            name=f"copy_T{self.seq_len}",
            input_size=VOCAB_SIZE,
            output_size=NUM_CLASSES,
            head="every",
            input_kind="tokens",
            loss="cross_entropy",
            metrics=("accuracy", "exact_copy"),  # exact_copy: zoo.metrics.ExactCopy (blank 0, 10 symbols)
            target_metric="accuracy",
            target=target_accuracy(self.seq_len),
            target_mode="max",
            baselines={"loss": memoryless_loss(self.seq_len), "accuracy": memoryless_accuracy(self.seq_len),
                       "exact_copy": memoryless_exact_copy()},
            baseline_note="blanks, then uniform over the 8 symbols",
        )

    def fixed_symbols(self, stage: str) -> torch.Tensor:
        """The symbols of the validation or test set: the same (size, 10) tensor for given (data_seed, T, size)."""
        check_choice("fixed set", stage, ("val", "test"))
        if stage not in self._fixed:
            size, stream = (self.val_size, VAL_STREAM) if stage == "val" else (self.test_size, TEST_STREAM)
            self._fixed[stage] = draw_symbols(size, seeded_generator(self.data_seed, stream, self.seq_len))
        return self._fixed[stage]

    def fixed_set(self, stage: str) -> CopyBatches:
        """The validation or test set as batches of ``eval_batch_size`` laid-out sequences."""
        return CopyBatches(self.fixed_symbols(stage), self.seq_len, self.eval_batch_size)
