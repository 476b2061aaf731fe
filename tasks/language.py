"""Language modelling at word and character level: PTB, WikiText-2, PTB characters, tiny-shakespeare.

Batches follow pytorch/examples' ``word_language_model`` (and Zaremba et al. 2014):
each split's token ids are laid end to end, cut into B contiguous streams, and read
in windows of ``bptt`` steps; window k+1 of a stream continues window k, so the
model carries its recurrent state across windows (detached: truncated BPTT) and
resets it at each epoch and before evaluation (``TaskSpec.stateful``).

The vocabulary is built from the training split alone, in order of first
appearance, and kept with the run: it is in the DataModule's ``state_dict`` (so in
every checkpoint) and in ``vocab``. A validation or test token outside it maps to
``<unk>`` where the corpus has one and is an error where it does not.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import cached_property
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from tasks.base import TaskDataModule
from tasks.datafiles import fetch, read_checked, sha256_of
from tasks.loaders import ResumableLoader, on_accelerator
from zoo.errors import ZooError, check_choice, check_int
from zoo.task_spec import TaskSpec

SPLITS = ("train", "valid", "test")
EOS, UNK = "<eos>", "<unk>"


def word_tokens(text: str) -> list[str]:
    """Whitespace-separated words with ``<eos>`` at each line end (Mikolov's PTB, WikiText)."""
    tokens: list[str] = []
    for line in text.splitlines():
        tokens += line.split()
        tokens.append(EOS)
    return tokens


def spaced_char_tokens(text: str) -> list[str]:
    """PTB's character files: characters separated by spaces, ``_`` between words, ``<eos>`` at line ends."""
    return word_tokens(text)


def raw_char_tokens(text: str) -> list[str]:
    """Every character is a token, newlines included (char-rnn's tiny-shakespeare)."""
    return list(text)


@dataclass(frozen=True)
class Corpus:
    """A language-modelling corpus: its files per split, how text becomes tokens, and its metric."""

    name: str
    level: str  # "word" (metric: perplexity) or "char" (metric: bits per character)
    files: dict[str, str]  # split -> data file name; one file for all splits when ``split_fractions`` is set
    tokenize: Callable[[str], list[str]]
    licence: str  # the text's terms (see ../shared/data/README.md for provenance)
    split_fractions: tuple[float, float] | None = None  # (train, valid) shares of one file, by characters
    anchor: str = ""


PTB_LICENCE = "Penn Treebank text (LDC99T42, LDC user agreement), Mikolov's split: research use only"
CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus("ptb", "word", {s: f"ptb/ptb.{s}.txt" for s in SPLITS}, word_tokens, PTB_LICENCE,
               anchor="Zaremba et al. 2014 small (2x200 LSTM): 115.9 test perplexity (TensorFlow's reproduction)"),
        Corpus("wikitext2", "word", {s: f"wikitext-2/wiki.{s}.tokens" for s in SPLITS}, word_tokens,
               "WikiText-2 (Merity et al. 2016): CC BY-SA 3.0"),
        Corpus("ptb_char", "char", {s: f"ptb/ptb.char.{s}.txt" for s in SPLITS}, spaced_char_tokens, PTB_LICENCE),
        Corpus("tinyshakespeare", "char", {s: "tinyshakespeare/input.txt" for s in SPLITS}, raw_char_tokens,
               "public domain text, compiled by Karpathy for char-rnn (MIT)", split_fractions=(0.9, 0.05)),
    )
}


def split_text(text: str, fractions: tuple[float, float]) -> dict[str, str]:
    """One text cut by characters into train / valid / test, in that order."""
    a = int(len(text) * fractions[0])
    b = int(len(text) * (fractions[0] + fractions[1]))
    return {"train": text[:a], "valid": text[a:b], "test": text[b:]}


class Windows(Dataset):
    """Window k of the (B, N) stream matrix: inputs (B, bptt) and the next tokens as targets."""

    def __init__(self, ids: torch.Tensor, batch_size: int, bptt: int) -> None:
        streams = ids.numel() // batch_size
        if streams < 2:
            raise ZooError(f"a split of {ids.numel()} tokens is too short for {batch_size} streams of >= 2 tokens")
        self.data = ids[: streams * batch_size].view(batch_size, streams)  # (B, N): row b is stream b
        self.bptt = bptt
        self.starts = list(range(0, streams - 1, bptt))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = self.starts[k]
        n = min(self.bptt, self.data.shape[1] - 1 - i)
        return self.data[:, i : i + n], self.data[:, i + 1 : i + 1 + n]  # (B, n), (B, n)


class LanguageModelling(TaskDataModule):
    """Word- or character-level language modelling on one of ``CORPORA``.

    The vocabulary is read at construction, because the model's embedding and decoder
    sizes come from it (``task_spec``) before any data is loaded for training.
    """

    def __init__(
        self,
        corpus: str = "ptb",
        batch_size: int = 20,
        bptt: int = 35,
        eval_batch_size: int = 10,
        data_dir: str | None = None,
        offline: bool | None = None,
    ) -> None:
        super().__init__()
        self.corpus = CORPORA[check_choice("corpus", corpus, CORPORA)]
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.bptt = check_int("bptt", bptt, low=1)
        self.eval_batch_size = check_int("eval_batch_size", eval_batch_size, low=1)
        self.data_dir, self.offline = data_dir, offline
        self.save_hyperparameters()
        self._texts: dict[str, str] = {}
        self._ids: dict[str, torch.Tensor] = {}
        self.vocab: list[str] = self._build_vocab()
        self.index = {token: i for i, token in enumerate(self.vocab)}

    # ----------------------------------------------------------------- text and ids
    def file_paths(self) -> dict[str, Path]:
        """Each split's checked file (see tasks.datafiles for where it comes from)."""
        return {s: fetch(name, data_dir=self.data_dir, offline=self.offline) for s, name in self.corpus.files.items()}

    def checksums(self) -> dict[str, str]:
        """sha256 of every file the splits are read from, for the run record."""
        return {path.name: sha256_of(path) for path in self.file_paths().values()}

    def text(self, split: str) -> str:
        if split not in self._texts:
            paths = self.file_paths()
            if self.corpus.split_fractions:
                self._texts.update(split_text(read_checked(paths["train"]).decode("utf-8"), self.corpus.split_fractions))
            else:
                for s, path in paths.items():
                    self._texts[s] = read_checked(path).decode("utf-8")  # the very bytes whose sha256 is checked
        return self._texts[split]

    def _build_vocab(self) -> list[str]:
        seen: dict[str, None] = {}
        for token in self.corpus.tokenize(self.text("train")):
            seen.setdefault(token)
        return list(seen)

    def ids(self, split: str) -> torch.Tensor:
        """A split's token ids, built once: (N,) int64."""
        check_choice("split", split, SPLITS)
        if split not in self._ids:
            unk = self.index.get(UNK)
            ids = []
            for token in self.corpus.tokenize(self.text(split)):
                i = self.index.get(token, unk)
                if i is None:
                    raise ZooError(f"{split} token {token!r} of corpus {self.corpus.name!r} is not in the vocabulary "
                                   "built from the training split, and the corpus has no <unk>")
                ids.append(i)
            self._ids[split] = torch.tensor(ids, dtype=torch.long)
        return self._ids[split]

    # ----------------------------------------------------------------- the task
    @property
    def licence(self) -> str:  # type: ignore[override]
        """The corpus's terms."""
        return self.corpus.licence

    def release_facts(self) -> dict[str, Any]:
        """The vocabulary: token i of the list is id i of the model's embedding and decoder."""
        return {"vocab": list(self.vocab)}

    def supports_length(self, seq_len: int) -> bool:
        """Any window length (bptt): the streams are cut into windows of whatever length."""
        return isinstance(seq_len, int) and not isinstance(seq_len, bool) and seq_len >= 1

    @property
    def metric(self) -> str:
        return "perplexity" if self.corpus.level == "word" else "bpc"

    @cached_property
    def unigram_baseline(self) -> float:
        """The test score of predicting every token by its training frequency: what 'learnt no context' scores."""
        counts = Counter(self.ids("train").tolist())
        total = sum(counts.values())
        test = self.ids("test").tolist()
        nats = -sum(math.log(counts.get(i, 0.5) / total) for i in test) / len(test)
        return math.exp(nats) if self.metric == "perplexity" else nats / math.log(2)

    @property
    def task_spec(self) -> TaskSpec:
        size = len(self.vocab)
        return TaskSpec(
            name=self.corpus.name,
            input_size=size,
            output_size=size,
            head="every",
            input_kind="tokens",
            stateful=True,
            loss="cross_entropy",
            metrics=(self.metric,),
            target_metric=self.metric,
            target_mode="min",
            baselines={self.metric: self.unigram_baseline},
            baseline_note="unigram: every token predicted by its training-set frequency",
        )

    # ----------------------------------------------------------------- loaders
    def processes(self) -> tuple[int, int]:
        """(this process's rank, the number of processes) of the trainer's run; (0, 1) without a trainer."""
        return (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)

    def _in_order(self, windows: Windows, loader: type[DataLoader] = DataLoader, **kwargs: Any) -> DataLoader:
        """A loader of ``windows`` in order, which Lightning leaves alone under DDP.

        Lightning would deal a loader's items out to the processes (shuffled, for training),
        but window k+1 of a stream must follow window k in the same process, since the model
        carries its state across. A loader that has a DistributedSampler is not touched: one
        of a single replica reads every window, in order.
        """
        distributed = self.processes()[1] > 1
        sampler = DistributedSampler(windows, num_replicas=1, rank=0, shuffle=False) if distributed else None
        return loader(windows, batch_size=None, sampler=sampler, **kwargs)

    def train_dataloader(self) -> DataLoader:
        """B streams; under DDP with W processes, W*B streams of which process r reads streams rB .. rB+B-1."""
        ids, (rank, world) = self.ids("train"), self.processes()
        if world > 1:  # the same streams as one process with batch W*B, each process its own B of them
            length = ids.numel() // (world * self.batch_size) * self.batch_size
            ids = ids[: world * length].view(world, length)[rank]
        return self._in_order(Windows(ids, self.batch_size, self.bptt), ResumableLoader,
                              background=on_accelerator(self))

    def val_dataloader(self) -> DataLoader:
        # Under DDP every process reads the whole split: the metrics add up the processes' (equal) shares,
        # so the numbers are those of one process, whatever the number of devices.
        return self._in_order(Windows(self.ids("valid"), self.eval_batch_size, self.bptt))

    def test_dataloader(self) -> DataLoader:
        return self._in_order(Windows(self.ids("test"), self.eval_batch_size, self.bptt))

    # ----------------------------------------------------------------- kept with the run
    def state_dict(self) -> dict[str, Any]:
        return {"corpus": self.corpus.name, "vocab": self.vocab}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("vocab") != self.vocab:
            raise ZooError(f"the checkpoint's vocabulary ({len(state.get('vocab') or [])} tokens, corpus "
                           f"{state.get('corpus')!r}) does not match this data's ({len(self.vocab)} tokens, corpus "
                           f"{self.corpus.name!r})")
