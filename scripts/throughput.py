"""Training-step throughput against plain PyTorch, in one process, with ratios; one CSV a setup.

    python scripts/throughput.py                     # every shape and path (~17 minutes on 2 cores)
    python scripts/throughput.py --shapes smnist --reps 3
    python scripts/throughput.py --quick             # tiny shapes, seconds: checks the script runs
    python scripts/throughput.py --accelerator cuda  # on a GPU: cuDNN against the same plain loop
    python scripts/throughput.py --frontier --shapes smnist --min_seconds 20 --threads 1  # issue 21's cells only

A step is forward + backward + gradient-norm clip (1.0) + Adam, on batches served by a
DataLoader. Each figure is the median over ``--rounds`` x ``--reps`` timed steps, each
round after ``--warmup`` steps. The plain loop and Lightning run in pairs, step by step on
the same batch (see ``Paired``), for at least ``--min_seconds`` a cell, and Lightning's
speed is the median of the pairs' ratios. Each paired ratio comes with a 95 % bootstrap
interval (``speed_ci95_low``/``_high``, printed in brackets): a step on this shared 2-core
machine varies by +-25 % from one to the next, and a ratio is only as sure as its interval.
Printed per shape and cell, each as a ratio to a baseline measured in this run:

- ``torch``: a plain PyTorch loop over the zoo's model (the baseline);
- ``lightning``: the same model under Lightning's Trainer with the default diagnostics
  (stability and convergence every step; the gradient and spectral probes run at step
  0 and then every 500 steps, outside the timed window; scripts/diagnostics_cost.py
  prices them); goal: >= 0.95x the baseline's speed;
- ``data``: the wait for a batch of the task's own train loader as the zoo runs it on that
  device, as a share of the baseline step (see ``time_data``); goal <= 2 %;
- vanilla RNNs with ELU or leaky ReLU (a Python loop over time; no fused kernel exists)
  against fused ``nn.RNN(tanh)``; goal: step time <= 1.0x the fused one;
- denormals kept against flushed (each in a child process that sets the flag before any
  torch op, since threads keep the setting they started with);
- GFLOP/s of each path and its share of the attainable matmul rate at the same
  per-time-step GEMM shapes (and of a large GEMM);
- the zoo's own LSTM/GRU kernels against PyTorch's fused ones in the plain loop (goal:
  >= 1.2x at sMNIST shapes), with their largest relative difference in outputs and
  gradients (goal: <= 1e-4) and what ``implementation='auto'`` picks;
- the milliseconds Lightning adds to every step whatever the model, taken apart at a
  tiny shape: with the diagnostics, without them, and without them and ``self.log``;
- which recurrent kernel each path ran (``kernel``: ``cudnn``, ``onednn``, ``zoo`` or
  ``aten``), read off its autograd graph, so a GPU CSV shows the cuDNN path in use rather
  than assuming it.
- the frontier cells (issue 21; ``--frontier`` runs this section alone, the full run ends
  with it): each of IndRNN, coRNN, LEM, ExpRNN, the LRU (its default, the paper's block,
  and the bare layer), minGRU and minLSTM at one layer of the sMNIST shape, its plain-loop
  step alternated in pairs with the fused ``nn.LSTM``'s step of the same shape, as the
  median ratio of their times (``time_ratio``, the cell's over the LSTM's;
  ``ratio_ci95_low``/``_high``) against issue 21's ``goal`` (<= 0.3 for minGRU, minLSTM and
  the LRU, <= 1.5 for IndRNN, coRNN and LEM, none for ExpRNN: "—") and whether the median
  ``met`` it (``met_by_interval``: whether the whole interval did). The cells with two scans
  (minGRU/minLSTM: ``sequential`` and ``log_space``; the LRU block: ``sequential`` and
  ``parallel``) are timed on each, every row says which scan ran (``path``, read off the
  autograd graph) and which ``auto`` picks on this device (``auto_picks``).

On a GPU (``--accelerator cuda``) every timed step ends in ``torch.cuda.synchronize()``,
batches are moved to the GPU inside the timed step (as Lightning moves them), and the
denormal rows are left out: denormals are a CPU cost.

The CSV goes to ``leaderboards/throughput/<device>-torch<version>.csv`` (``--frontier`` alone:
``<device>-frontier-torch<version>.csv``); columns that only some rows have (``goal``, ``met``, ...)
are empty in the others.

On this shared 2-core machine, pass ``--threads 1`` when another job is running: with 2
threads and a busy core, oneDNN's fused LSTM waits for the slow thread at each of its
784 steps, and a step took 20-30 s instead of ~1 s.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import csv
import functools
import itertools
import logging
import random
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, IterableDataset

from zoo.diagnostics import default_diagnostics
from zoo.errors import ZooError, check_float, check_int
from zoo.files import replaced_atomically
from zoo.models.rnn import RNNConfig
from zoo.module import SequenceModel
from zoo.optim import OptimConfig
from zoo.runtime import flush_denormal_active
from zoo.task_spec import TaskSpec

ROOT = Path(__file__).resolve().parents[1]
DEVICE = torch.device("cpu")  # where every model and timed step runs; main sets it from --accelerator
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELLS = {  # name -> backbone settings
    "rnn_tanh": dict(cell="rnn", nonlinearity="tanh"),
    "rnn_leaky_relu": dict(cell="rnn", nonlinearity="leaky_relu"),
    "rnn_elu": dict(cell="rnn", nonlinearity="elu"),
    "lstm": dict(cell="lstm"),
    "gru": dict(cell="gru"),
}


@dataclass(frozen=True)
class Shape:
    name: str
    batch: int
    seq_len: int
    hidden: int
    cells: tuple[str, ...]
    layers: int = 1
    vocab: int = 0  # > 0: a word-level LM (tokens in, every-step softmax out, carried state)

    def task(self) -> TaskSpec:
        if self.vocab:
            return TaskSpec("lm", self.vocab, self.vocab, head="every", input_kind="tokens", stateful=True,
                            loss="cross_entropy", metrics=("perplexity",), target_metric="perplexity")
        if self.name.startswith("smnist"):
            return TaskSpec("smnist", 1, 10, loss="cross_entropy", metrics=("accuracy",), target_metric="accuracy",
                            target_mode="max")
        return TaskSpec("adding", 2, 1)

    def batches(self, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(0)
        task, out = self.task(), []
        for _ in range(n):
            if self.vocab:
                x = torch.randint(0, self.vocab, (self.batch, self.seq_len), generator=g)  # (B, T)
                y = torch.randint(0, self.vocab, (self.batch, self.seq_len), generator=g)
            elif task.loss == "cross_entropy":
                x = torch.rand(self.batch, self.seq_len, 1, generator=g)  # (B, T, 1)
                y = torch.randint(0, 10, (self.batch,), generator=g)
            else:
                x = torch.rand(self.batch, self.seq_len, 2, generator=g)  # (B, T, 2)
                y = torch.rand(self.batch, generator=g)
            out.append((x, y))
        return out

    def flops(self, cell: str) -> float:
        """Matmul FLOPs of one training step: forward GEMMs x 3 (the backward does two more of each)."""
        gates = GATES[CELLS[cell]["cell"]] * self.hidden
        inputs = self.hidden if self.vocab else self.task().input_size
        per_step = 0.0
        for layer in range(self.layers):
            per_step += 2 * self.batch * ((inputs if layer == 0 else self.hidden) + self.hidden) * gates
        head = 2 * self.batch * self.hidden * self.task().output_size * (self.seq_len if self.vocab else 1)
        return 3 * (self.seq_len * per_step + head)


SHAPES = {
    "smnist": Shape("smnist", 128, 784, 128, ("rnn_tanh", "rnn_leaky_relu", "rnn_elu", "lstm", "gru")),
    "adding_t200": Shape("adding_t200", 128, 200, 128, ("rnn_tanh", "lstm", "gru")),
    "adding_t1000": Shape("adding_t1000", 128, 1000, 128, ("rnn_tanh", "lstm", "gru")),
    "word_lm": Shape("word_lm", 20, 35, 200, ("lstm",), layers=2, vocab=10_000),
}
QUICK = {
    "smnist": Shape("smnist", 8, 24, 16, ("rnn_tanh", "rnn_elu", "lstm")),
    "word_lm": Shape("word_lm", 4, 6, 16, ("lstm",), layers=2, vocab=50),
}


def sync() -> None:
    """Waits for the GPU's queued work, so that the clock reads work done, not work queued."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def build(shape: Shape, cell: str, implementation: str = "auto", backbone: RNNConfig | None = None) -> SequenceModel:
    """The zoo's model of ``cell`` (a name in ``CELLS``) at this shape, or of ``backbone`` as given (a frontier cell)."""
    torch.manual_seed(0)  # the same weights for every path
    if backbone is None:
        backbone = RNNConfig(hidden_size=shape.hidden, num_layers=shape.layers, implementation=implementation,
                             **CELLS[cell])
    return SequenceModel(shape.task(), backbone, OptimConfig(name="adam", lr=1e-3))


def loader(batches: list | IterableDataset) -> DataLoader:
    return DataLoader(batches, batch_size=None)


class Cycled(IterableDataset):
    """The same batches over and over, for as many steps as a timing asks (``Paired`` says when to stop)."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __iter__(self):
        return itertools.cycle(self.batches)


class TorchSteps:
    """The baseline: a plain PyTorch loop over its own copy of the zoo's model (same seed, same batches)."""

    def __init__(self, shape: Shape, cell: str, implementation: str = "auto",
                 backbone: RNNConfig | None = None) -> None:
        self.model = build(shape, cell, implementation, backbone).to(DEVICE).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Seconds of one step: the batch to the device, forward, backward, clip, Adam."""
        sync()
        start = time.perf_counter()
        x, y = x.to(DEVICE), y.to(DEVICE)
        loss = self.model.task_loss(self.model._step_output(x), y)  # _step_output carries an LM's state
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        # A plain loop frees a step's autograd graph when it next assigns `loss`, inside its loop, as Lightning
        # does inside its step; left to the return, the freeing fell outside the timing: 2-5 ms an sMNIST step
        # here (5.3 ms for the ELU loop's 784 steps of nodes), which read as Lightning's.
        del loss
        sync()
        return time.perf_counter() - start


class Paired(Callback):
    """Interleaves the baseline with Lightning, step by step, so that both see the same machine.

    Lightning's step is the time from one batch end to the next (data fetch and every hook
    included); at each batch end the plain loop takes its step on the same batch, timed apart
    and left out of Lightning's. A drift in the machine's speed (this box drifts by +-10 %
    over minutes) then hits a pair alike, where timing one path after the other would not.
    """

    def __init__(self, baseline: TorchSteps, warmup: int, reps: int, min_seconds: float = 0.0) -> None:
        self.baseline = baseline
        self.warmup, self.reps, self.min_seconds = warmup, reps, min_seconds
        self.torch_times: list[float] = []
        self.lightning_times: list[float] = []
        self._last: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sync()
        now = time.perf_counter()
        if self._last is not None:  # the first step has no start to measure from
            self.lightning_times.append(now - self._last)
            self.torch_times.append(self.baseline.step(*batch))
            timed = len(self.torch_times) - self.warmup
            seconds = sum(self.torch_times[self.warmup:]) + sum(self.lightning_times[self.warmup:])
            if timed >= self.reps and seconds >= self.min_seconds:
                trainer.should_stop = True
        self._last = time.perf_counter()


def time_paired(shape: Shape, cell: str, warmup: int, reps: int, *, min_seconds: float = 0.0,
                diagnostics: bool = True, log: bool = True) -> tuple[list[float], list[float]]:
    """Seconds per step of the plain loop and of Lightning with the default diagnostics, in pairs.

    At least ``reps`` pairs after the warm-up, and more until the pairs took ``min_seconds``:
    a step here varies by +-25 % from one to the next (a shared virtual machine), so a short
    step needs many pairs for its median ratio to settle. ``diagnostics=False`` leaves the
    monitors out and ``log=False`` makes ``self.log`` a no-op: what ``fixed_overhead_ms``
    takes apart.
    """
    model = build(shape, cell)
    if not log:
        model.log = lambda *args, **kwargs: None
    paired = Paired(TorchSteps(shape, cell), warmup, reps, min_seconds)
    trainer = L.Trainer(max_epochs=1, accelerator=DEVICE.type, devices=1, gradient_clip_val=1.0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0,
                        callbacks=[*(default_diagnostics(model.task) if diagnostics else []), paired])
    trainer.fit(model, train_dataloaders=loader(Cycled(shape.batches(min(warmup + reps + 1, 16)))))
    return paired.torch_times[warmup:], paired.lightning_times[warmup:]


def speed_interval(ratios: list[float], resamples: int = 2000) -> tuple[float, float]:
    """A 95 % bootstrap interval of the median of per-pair ratios: how far the noise of this machine
    leaves the printed ratio uncertain (seeded, so the same pairs give the same interval)."""
    draw = random.Random(0)
    medians = sorted(statistics.median(draw.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


TINY = Shape("tiny", 8, 10, 8, ("rnn_tanh",))  # a step of a few ms: what Lightning adds shows plainly


def fixed_overhead_ms(reps: int) -> dict[str, float]:
    """Milliseconds Lightning's step adds to the plain loop's, whatever the model: the median per-pair
    difference at a tiny shape, with everything, without the diagnostics, and without them and ``self.log``."""
    out = {}
    for name, kwargs in (("with_diagnostics", {}), ("without_diagnostics", {"diagnostics": False}),
                         ("without_diagnostics_or_log", {"diagnostics": False, "log": False})):
        torch_times, lightning_times = time_paired(TINY, "rnn_tanh", 20, reps, **kwargs)
        out[name] = 1e3 * statistics.median(b - a for a, b in zip(torch_times, lightning_times))
    return out


def time_alternated(shape: Shape, first: tuple[str, str], second: tuple[str, str], warmup: int,
                    reps: int) -> tuple[list[float], list[float]]:
    """Seconds per plain-loop step of two (cell, implementation) setups, alternated step by step on the same
    batches, so that a drift in the machine's speed hits both alike."""
    a, b = TorchSteps(shape, *first), TorchSteps(shape, *second)
    a_times, b_times = [], []
    for x, y in loader(shape.batches(warmup + reps)):
        a_times.append(a.step(x, y))
        b_times.append(b.step(x, y))
    return a_times[warmup:], b_times[warmup:]


def paired_medians(shape: Shape, first: tuple[str, str], second: tuple[str, str],
                   args: argparse.Namespace) -> tuple[float, float, list[float]]:
    """(first ms, second ms, first time / second time of every pair), over ``--rounds`` fresh models."""
    a_times, b_times = [], []
    for _ in range(args.rounds):
        more_a, more_b = time_alternated(shape, first, second, args.warmup, args.reps)
        a_times += more_a
        b_times += more_b
    return 1e3 * statistics.median(a_times), 1e3 * statistics.median(b_times), [x / y for x, y in zip(a_times, b_times)]


def kernel_agreement(shape: Shape, cell: str) -> float:
    """Largest relative difference (max |ours - fused| / max |fused|) over the backbone's outputs and final
    states and the loss's gradients of every parameter, on one batch from the same weights."""
    x, y = (t.to(DEVICE) for t in shape.batches(1)[0])
    results = []
    for implementation in ("fused", "loop"):
        model = build(shape, cell, implementation).to(DEVICE).train()
        inputs = model.embed(x)  # (B, T, I): tokens embedded, values as they are
        out, state = model.backbone(inputs)
        states = state if isinstance(state, tuple) else (state,)
        loss = model.task_loss(model(x), y)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append([out.detach(), *(t.detach() for t in states), *grads])
    return max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(results[1], results[0]))


def time_data(shape: Shape, batches: int, step_s: float, background: bool) -> float | None:
    """Seconds the training loop waits for a batch of the task's own train loader; None without its data.

    ``background``: the loader makes the next batch in a thread, as the zoo's loaders do on
    a GPU (tasks/loaders.py). On a GPU the loop waits out a step (``step_s``, slept) between
    batches, as it waits while the GPU runs one; what is measured is what it still waits for.
    """
    from tasks.adding import AddingProblem
    from tasks.datafiles import data_dir_from, shared_data_dir
    from tasks.language import LanguageModelling
    from tasks.mnist import SequentialMNIST

    data_dir = data_dir_from(None) or shared_data_dir()  # ZOO_DATA_DIR, checked, else ../shared/data
    if shape.vocab:
        if data_dir is None:
            return None
        data = LanguageModelling("ptb", batch_size=shape.batch, bptt=shape.seq_len, data_dir=str(data_dir),
                                 offline=True)
    elif shape.name.startswith("smnist"):
        if data_dir is None:
            return None
        data = SequentialMNIST(batch_size=shape.batch, data_dir=str(data_dir), offline=True)
    else:
        data = AddingProblem(seq_len=shape.seq_len, batch_size=shape.batch, batches_per_epoch=batches + 1)
    data.setup("fit")
    loader = data.train_dataloader()
    loader.background = background
    it = iter(loader)
    next(it)  # the first batch builds what is built once
    waited = 0.0
    for _ in range(batches):
        if DEVICE.type == "cuda":
            time.sleep(step_s)
        start = time.perf_counter()
        next(it)
        waited += time.perf_counter() - start
    return waited / batches


@functools.cache
def attainable_gflops(shape: Shape, cell: str, reps: int = 200, tries: int = 5) -> float:
    """GFLOP/s of torch.mm at the per-time-step recurrent GEMM shape, (B, H) @ (H, gates * H): the best of
    ``tries`` timings, as a rate attainable is (one slow moment of a busy machine once read 8x low).

    The CPU's attainable rate for a recurrence. On a GPU the same loop of small GEMMs
    measures launch latency instead (cuDNN's persistent kernels beat it many times over),
    so there ``main`` takes the large GEMM's rate as the attainable one.
    """
    gates = GATES[CELLS[cell]["cell"]] * shape.hidden
    a, b = torch.rand(shape.batch, shape.hidden, device=DEVICE), torch.rand(shape.hidden, gates, device=DEVICE)
    for _ in range(10):
        a @ b
    best = float("inf")
    for _ in range(tries):
        sync()
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * shape.batch * shape.hidden * gates * reps / best / 1e9


def large_gemm_gflops(reps: int = 5) -> float:
    """GFLOP/s of one large float32 GEMM (1024^3 on the CPU, 8192^3 on a GPU): the rate a matmul can reach."""
    n = 8192 if DEVICE.type == "cuda" else 1024
    a, b = torch.rand(n, n, device=DEVICE), torch.rand(n, n, device=DEVICE)
    a @ b
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def graph_names(model: SequenceModel, shape: Shape) -> set[str]:
    """The names of every node in the autograd graph of one training loss of ``model`` on a batch of ``shape``."""
    model = model.to(DEVICE).train()
    x, y = (t.to(DEVICE) for t in shape.batches(1)[0])
    seen, todo, names = set(), [model.task_loss(model(x), y).grad_fn], set()
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            names.add(node.name())
            todo += [parent for parent, _ in node.next_functions]
    return names


@functools.cache
def kernel_used(shape: Shape, cell: str, implementation: str = "auto") -> str:
    """The recurrent kernel one training step of this path runs, read off its autograd graph:
    'cudnn' (cuDNN's RNN), 'onednn' (oneDNN's, PyTorch's fused LSTM/GRU on a CPU), 'zoo'
    (zoo.models.sequence_kernels) or 'aten' (PyTorch's step-by-step loop, as nn.RNN's on a CPU)."""
    names = graph_names(build(shape, cell, implementation), shape)
    for kernel, mark in (("cudnn", "CudnnRnn"), ("onednn", "MkldnnRnn"), ("zoo", "SequenceBackward")):
        if any(mark in name for name in names):
            return kernel
    return "aten"


def denormal_ms(cell: str, shape: Shape, reps: int) -> dict[str, float]:
    """Median ms per step with denormals flushed and kept, each in a fresh child process (scripts/denormal_speed.py)."""
    from denormal_speed import flushed_and_kept

    flushed, kept = flushed_and_kept(["--cell", cell, "--batch", str(shape.batch), "--seq_len", str(shape.seq_len),
                                      "--hidden", str(shape.hidden), "--reps", str(reps)])
    return {"flushed": flushed["median_ms"], "kept": kept["median_ms"]}


# ----------------------------------------------------------------------------- the frontier cells (issue 21)
# Issue 21's speed goal, as a training step's time over the fused nn.LSTM's at the same shape, alternated in pairs:
# the parallel-friendly cells <= 0.3x, the sequential ones <= 1.5x; ExpRNN has none (None: reported as "—").
FRONTIER_GOALS = {"indrnn": 1.5, "cornn": 1.5, "lem": 1.5, "exprnn": None, "lru": 0.3, "mingru": 0.3, "minlstm": 0.3}
FRONTIER_SHAPES = ("smnist",)  # where the goal is stated (batch 128, T 784, hidden 128); --quick: its tiny stand-in
NO_GOAL = "—"


@dataclass(frozen=True)
class Frontier:
    """One frontier setup: a cell at one layer, the form it takes, its options, and the scans to time.

    ``paths``: the values of cell_options.scan to time one by one (``("sequential", "log_space")`` for
    minGRU/minLSTM, ``("sequential", "parallel")`` for the LRU); empty for a cell with one path, a
    sequential loop (IndRNN, coRNN, LEM, ExpRNN), and for a form timed on what ``auto`` picks only.
    """

    cell: str
    form: str = "layer"  # layer: one bare layer; block: the paper's block around it (the LRU's default)
    options: tuple[tuple[str, Any], ...] = ()
    paths: tuple[str, ...] = ()
    parallel: str = ""  # the name of the cell's parallel scan ('log_space', 'parallel'); '' for a one-path cell

    def config(self, shape: Shape, scan: str | None = None) -> RNNConfig:
        options = dict(self.options, **({"scan": scan} if scan is not None else {}))
        return RNNConfig(cell=self.cell, hidden_size=shape.hidden, num_layers=1, cell_options=options)


FRONTIER = (
    Frontier("indrnn"),
    Frontier("cornn"),
    Frontier("lem"),
    Frontier("exprnn"),
    Frontier("lru", "block", paths=("sequential", "parallel"), parallel="parallel"),  # its default: the paper's block
    Frontier("lru", "bare", (("block", False),), parallel="parallel"),  # the LRU layer alone, on what auto picks
    Frontier("mingru", paths=("sequential", "log_space"), parallel="log_space"),
    Frontier("minlstm", paths=("sequential", "log_space"), parallel="log_space"),
)
SEQUENTIAL_MARKS = ("MinRNNSequence", "LRUSequence")  # the hand-written backward of each cell's loop


def scan_used(shape: Shape, frontier: Frontier, scan: str | None = None) -> str:
    """The scan a training step of this setup runs on this device, read off its autograd graph: 'sequential'
    (the loop with its own backward), or the cell's parallel scan; 'sequential' for a one-path cell."""
    if not frontier.parallel:
        return "sequential"
    names = graph_names(build(shape, frontier.cell, backbone=frontier.config(shape, scan)), shape)
    return "sequential" if any(mark in name for name in names for mark in SEQUENTIAL_MARKS) else frontier.parallel


def time_against_lstm(shape: Shape, backbone: RNNConfig, warmup: int, reps: int,
                      min_seconds: float = 0.0) -> tuple[list[float], list[float]]:
    """Seconds per plain-loop step of ``backbone`` and of the fused nn.LSTM at the same shape, alternated step by
    step on the same batches (who goes first alternating too), for at least ``reps`` pairs after the warm-up and
    more until the pairs took ``min_seconds``."""
    cell, lstm = TorchSteps(shape, "", backbone=backbone), TorchSteps(shape, "lstm", "fused")
    cell_times, lstm_times = [], []
    for i, (x, y) in enumerate(loader(Cycled(shape.batches(min(warmup + reps, 8))))):
        if i % 2:
            lstm_times.append(lstm.step(x, y))
            cell_times.append(cell.step(x, y))
        else:
            cell_times.append(cell.step(x, y))
            lstm_times.append(lstm.step(x, y))
        timed = len(cell_times) - warmup
        if timed >= reps and sum(cell_times[warmup:]) + sum(lstm_times[warmup:]) >= min_seconds:
            return cell_times[warmup:], lstm_times[warmup:]
    raise AssertionError("unreachable: the batches cycle")


def sig(x: float, digits: int = 4) -> float:
    """x to ``digits`` significant digits: a ratio of 0.04 keeps as many as one of 4."""
    return float(f"{x:.{digits}g}")


def judge(ratio: float, low: float, high: float, goal: float | None) -> tuple[str, str]:
    """(met, met_by_interval): 'yes'/'no' for the median ratio against the goal, and 'yes' where the whole
    95 % interval is within it, 'no' where the whole of it is beyond, 'unclear' where it straddles; '—' without one."""
    if goal is None:
        return NO_GOAL, NO_GOAL
    return ("yes" if ratio <= goal else "no"), ("yes" if high <= goal else "no" if low > goal else "unclear")


def frontier_rows(shape: Shape, args: argparse.Namespace, setup: dict[str, Any]) -> list[dict[str, Any]]:
    """Each frontier setup's training step against the fused LSTM's, in pairs: one CSV row per setup and scan."""
    print(f"\nfrontier cells at {shape.name}: batch {shape.batch}, T {shape.seq_len}, 1 x {shape.hidden}, input "
          f"{shape.task().input_size}; plain-loop step time / fused nn.LSTM's, median of alternated pairs")
    print(f"  {'cell':<8} {'form':<6} {'path':<11} {'cell ms':>9} {'lstm ms':>9} {'ratio':>7}   {'95 % interval':<16} "
          f"{'pairs':>5}  {'goal':>6}  {'met':<4} {'by interval':<11} auto picks")
    rows = []
    for frontier in FRONTIER:
        goal = FRONTIER_GOALS[frontier.cell]
        auto = scan_used(shape, frontier)
        for scan in frontier.paths or (None,):
            path = scan_used(shape, frontier, scan) if scan is not None else auto
            if scan is not None and path != scan:  # the scan asked for is the scan that ran, or the row says nothing
                raise RuntimeError(f"{frontier.cell} with scan {scan!r} ran the {path!r} scan")
            cell_times, lstm_times = [], []
            for _ in range(args.rounds):  # fresh models each round
                more_cell, more_lstm = time_against_lstm(shape, frontier.config(shape, scan), args.warmup, args.reps,
                                                         args.min_seconds / args.rounds)
                cell_times += more_cell
                lstm_times += more_lstm
            ratios = [a / b for a, b in zip(cell_times, lstm_times)]
            ratio, (low, high) = statistics.median(ratios), speed_interval(ratios)
            cell_ms, lstm_ms = 1e3 * statistics.median(cell_times), 1e3 * statistics.median(lstm_times)
            met, surely = judge(sig(ratio), sig(low), sig(high), goal)  # on the figures the CSV shows
            goal_text = NO_GOAL if goal is None else f"{goal:g}"
            rows.append({**setup, "shape": shape.name, "batch": shape.batch, "seq_len": shape.seq_len,
                         "hidden": shape.hidden, "layers": 1, "cell": frontier.cell, "path": path,
                         "ms_per_step": round(cell_ms, 2), "samples_per_s": round(shape.batch / (cell_ms / 1e3), 1),
                         "tokens_per_s": round(shape.batch * shape.seq_len / (cell_ms / 1e3), 1),
                         "baseline": "lstm_fused", "speed_vs_baseline": sig(1 / ratio), "pairs": len(ratios),
                         "speed_ci95_low": sig(1 / high), "speed_ci95_high": sig(1 / low),
                         "form": frontier.form, "baseline_ms": round(lstm_ms, 2), "time_ratio": sig(ratio),
                         "ratio_ci95_low": sig(low), "ratio_ci95_high": sig(high), "goal": goal_text,
                         "met": met, "met_by_interval": surely, "auto_picks": auto})
            print(f"  {frontier.cell:<8} {frontier.form:<6} {path:<11} {cell_ms:9.1f} {lstm_ms:9.1f} {ratio:6.3f}x   "
                  f"[{low:.3f}, {high:.3f}]{'':<2} {len(ratios):5d}  "
                  f"{('<= ' + goal_text) if goal is not None else NO_GOAL:>6}  {met:<4} {surely:<11} {auto}")
    return rows


def default_csv(name: str, quick: bool) -> Path:
    """leaderboards/throughput/<name>-torch<version>[-quick].csv: the file name carries the setup, timm style."""
    version = torch.__version__.split("+")[0]
    return ROOT / "leaderboards" / "throughput" / (f"{name}-torch{version}" + ("-quick" if quick else "") + ".csv")


def write_csv(out: Path, rows: list[dict[str, Any]]) -> None:
    """Rows (the union of their keys as columns) to ``out``, written whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with replaced_atomically(out) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def device_name() -> str:
    """cpu-<threads>t-<processor> or cuda-<GPU name>: the setup part of the CSV's name."""
    if DEVICE.type == "cuda":
        gpu = "".join(c if c.isalnum() else "_" for c in torch.cuda.get_device_name(DEVICE)).strip("_")
        return f"cuda-{gpu}"
    from zoo.records import cpu_name

    cpu = "".join(c if c.isalnum() else "_" for c in cpu_name()).strip("_")[:40]
    return f"cpu-{torch.get_num_threads()}t-{cpu}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2,
                        help="fresh model and Trainer this many times, each --reps paired steps")
    parser.add_argument("--min_seconds", type=float, default=40.0,
                        help="time Lightning and the plain loop in pairs for at least this long a cell (over all "
                        "rounds): short steps need many pairs on a noisy machine")
    parser.add_argument("--data_batches", type=int, default=50)
    parser.add_argument("--no_denormals", action="store_true", help="skip the (slow) denormals-kept measurement")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few steps: that the script works")
    parser.add_argument("--accelerator", choices=("cpu", "cuda"), default="cpu",
                        help="where the models run (cuda: the first GPU, cuDNN's kernels under 'auto')")
    parser.add_argument("--frontier", action="store_true",
                        help="the frontier cells' section only (issue 21: each cell's step against the fused LSTM's, "
                        "at the sMNIST shape); the full run, without it, includes that section")
    parser.add_argument("--threads", type=int,
                        help="torch's intra-op threads (default: torch's own); on a shared machine 1 keeps the fused "
                        "kernels from waiting on a busy core at every step")
    parser.add_argument("--out", help="CSV path (default leaderboards/throughput/<device>-torch<version>.csv)")
    args = parser.parse_args(argv)
    try:  # no pairs would leave nothing to take a median of, and pairs until nan seconds would never stop
        check_int("--warmup", args.warmup, low=0), check_int("--reps", args.reps, low=1)
        check_int("--rounds", args.rounds, low=1), check_float("--min_seconds", args.min_seconds, low=0)
        if args.threads is not None:
            check_int("--threads", args.threads, low=1)
    except ZooError as err:
        parser.error(str(err))
    if args.frontier and not args.quick and not set(args.shapes) & set(FRONTIER_SHAPES):
        parser.error(f"--frontier runs at the {', '.join(FRONTIER_SHAPES)} shape only; add it to --shapes")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    global DEVICE
    if args.accelerator == "cuda" and not torch.cuda.is_available():
        parser.error("--accelerator cuda: torch sees no CUDA device here (torch.cuda.is_available() is False)")
    DEVICE = torch.device(args.accelerator)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    shapes = [QUICK[s] for s in QUICK] if args.quick else [SHAPES[s] for s in args.shapes]
    frontier_shapes = [shape for shape in shapes if shape.name in FRONTIER_SHAPES]
    if args.quick:
        args.warmup, args.reps, args.rounds, args.data_batches, args.no_denormals = 1, 2, 1, 3, True
        args.min_seconds = 0.0
    setup = {"device": device_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
             "flush_denormal": flush_denormal_active()}
    if DEVICE.type == "cuda":  # cuDNN's RNN may use TF32 tensor cores where allowed: it bears on agreement
        setup.update(cudnn=torch.backends.cudnn.version(), cudnn_tf32=torch.backends.cudnn.allow_tf32)
    print(f"setup: {setup['device']}, torch {setup['torch']}, {setup['threads']} threads, denormals "
          f"{'flushed' if setup['flush_denormal'] else 'kept'}; median of {args.rounds} x {args.reps} steps "
          f"(Lightning's pairs: at least {args.min_seconds:g} s a cell)")
    rows: list[dict[str, Any]] = []
    if args.frontier:  # that section alone
        for shape in frontier_shapes:
            rows += frontier_rows(shape, args, setup)
        out = Path(args.out) if args.out else default_csv(setup["device"] + "-frontier", args.quick)
        write_csv(out, rows)
        print(f"\nwrote {out}")
        return 0
    peak = large_gemm_gflops()
    print(f"large GEMM: {peak:.1f} GFLOP/s")
    overhead = fixed_overhead_ms(20 if args.quick else 300)
    print("what Lightning adds to every step (median over pairs, tiny model): " + ", ".join(
        f"{name.replace('_', ' ')} {ms:.2f} ms" for name, ms in overhead.items()))
    for name, ms in overhead.items():
        rows.append({**setup, "shape": TINY.name, "batch": TINY.batch, "seq_len": TINY.seq_len, "hidden": TINY.hidden,
                     "layers": 1, "cell": "rnn_tanh", "path": f"lightning_{name}", "baseline": "torch",
                     "added_ms": round(ms, 3)})

    def attainable_rate(shape: Shape, cell: str) -> float:
        """The CPU's rate at the recurrence's GEMM shape; on a GPU the large GEMM's (see attainable_gflops)."""
        return attainable_gflops(shape, cell) if DEVICE.type == "cpu" else peak

    def row(shape: Shape, cell: str, path: str, ms: float, baseline: str, base_ms: float, speed: float | None = None,
            **extra: Any) -> None:
        """One CSV row; ``speed`` against the baseline defaults to the ratio of the two step times."""
        gflops = shape.flops(cell) / (ms / 1e3) / 1e9
        rows.append({**setup, "shape": shape.name, "batch": shape.batch, "seq_len": shape.seq_len,
                     "hidden": shape.hidden, "layers": shape.layers, "cell": cell, "path": path,
                     "ms_per_step": round(ms, 2), "samples_per_s": round(shape.batch / (ms / 1e3), 1),
                     "tokens_per_s": round(shape.batch * shape.seq_len / (ms / 1e3), 1),
                     "baseline": baseline, "speed_vs_baseline": round(base_ms / ms if speed is None else speed, 3),
                     "gflops": round(gflops, 2), "share_of_large_gemm": round(gflops / peak, 3), **extra})

    for shape in shapes:
        print(f"\n{shape.name}: batch {shape.batch}, T {shape.seq_len}, {shape.layers} x {shape.hidden}"
              + (f", vocab {shape.vocab}" if shape.vocab else ""))
        print(f"  {'cell':<15} {'torch ms':>9} {'lightning ms':>13} {'L/torch speed':>14} {'GFLOP/s':>8} "
              f"{'of attainable':>14}   95 % interval of the speed, pairs")
        torch_ms = {}
        for cell in shape.cells:
            torch_times, lightning_times = [], []
            for _ in range(args.rounds):  # a fresh model and Trainer each round
                more_torch, more_lightning = time_paired(shape, cell, args.warmup, args.reps,
                                                         min_seconds=args.min_seconds / args.rounds)
                torch_times += more_torch
                lightning_times += more_lightning
            t, lit = 1e3 * statistics.median(torch_times), 1e3 * statistics.median(lightning_times)
            # Lightning's speed against the plain loop: the median of the per-pair ratios
            ratios = [a / b for a, b in zip(torch_times, lightning_times)]
            paired_speed, (low, high) = statistics.median(ratios), speed_interval(ratios)
            torch_ms[cell] = t
            attainable = attainable_rate(shape, cell)
            kernel = kernel_used(shape, cell)
            row(shape, cell, "torch", t, "torch", t, attainable_gflops=round(attainable, 2),
                share_of_attainable=round(shape.flops(cell) / (t / 1e3) / 1e9 / attainable, 3), kernel=kernel)
            row(shape, cell, "lightning", lit, "torch", t, speed=paired_speed, kernel=kernel, pairs=len(ratios),
                speed_ci95_low=round(low, 3), speed_ci95_high=round(high, 3))
            print(f"  {cell:<15} {t:9.1f} {lit:13.1f} {paired_speed:13.3f}x {shape.flops(cell) / (t / 1e3) / 1e9:8.2f} "
                  f"{shape.flops(cell) / (t / 1e3) / 1e9 / attainable:13.1%}   [{low:.3f}, {high:.3f}], {len(ratios)} pairs")
        for cell in (c for c in shape.cells if CELLS[c]["cell"] in ("lstm", "gru")):
            f_ms, o_ms, ratios = paired_medians(shape, (cell, "fused"), (cell, "loop"), args)
            speed, (low, high) = statistics.median(ratios), speed_interval(ratios)
            agreement = kernel_agreement(shape, cell)
            attainable = attainable_rate(shape, cell)
            auto = kernel_used(shape, cell) == "zoo"  # what 'auto' ran (cached from the rows above)
            for path, ms, extra in (("fused", f_ms, {"kernel": kernel_used(shape, cell, "fused")}),
                                    ("zoo_kernel", o_ms, {"max_rel_diff": f"{agreement:.2e}",
                                                          "kernel": kernel_used(shape, cell, "loop"),
                                                          "pairs": len(ratios), "speed_ci95_low": round(low, 3),
                                                          "speed_ci95_high": round(high, 3)})):
                row(shape, cell, path, ms, "fused", f_ms, speed=speed if path == "zoo_kernel" else 1.0,
                    attainable_gflops=round(attainable, 2),
                    share_of_attainable=round(shape.flops(cell) / (ms / 1e3) / 1e9 / attainable, 3),
                    auto_picks="zoo_kernel" if auto else "fused", **extra)
            print(f"  {cell} kernels: fused {f_ms:.1f} ms "
                  f"({shape.flops(cell) / (f_ms / 1e3) / 1e9 / attainable:.1%} of attainable), zoo {o_ms:.1f} ms "
                  f"({shape.flops(cell) / (o_ms / 1e3) / 1e9 / attainable:.1%}): "
                  f"zoo {speed:.2f}x as fast [{low:.2f}, {high:.2f}] (goal >= 1.2 at sMNIST shapes); "
                  f"max relative difference {agreement:.1e} "
                  f"(goal <= 1e-4); 'auto' picks {'zoo' if auto else 'fused'}")
        if "rnn_tanh" in torch_ms:
            for cell in ("rnn_leaky_relu", "rnn_elu"):
                if cell in torch_ms:  # the two alternated step by step, as the kernels above
                    loop_ms, fused_ms, ratios = paired_medians(shape, (cell, "auto"), ("rnn_tanh", "auto"), args)
                    time_ratio, (low, high) = statistics.median(ratios), speed_interval(ratios)
                    row(shape, cell, "loop_vs_fused_tanh", loop_ms, "rnn_tanh_fused", fused_ms,
                        speed=1 / time_ratio, pairs=len(ratios), speed_ci95_low=round(1 / high, 3),
                        speed_ci95_high=round(1 / low, 3))
                    print(f"  {cell} (loop) step time / fused rnn_tanh: {time_ratio:.2f}x [{low:.2f}, {high:.2f}], "
                          f"median of pairs ({loop_ms:.1f} / {fused_ms:.1f} ms; goal <= 1.0)")
        cell = shape.cells[-1] if not shape.vocab else "lstm"
        # what the zoo does on this device (a thread makes the next batch on a GPU), and on a GPU the loop alone
        for background in (True, False) if DEVICE.type == "cuda" else (False,):
            data_s = time_data(shape, args.data_batches, torch_ms[cell] / 1e3, background)
            if data_s is None:
                print("  data: no data folder (ZOO_DATA_DIR or ../shared/data): not measured")
                break
            share = data_s * 1e3 / torch_ms[cell]
            row(shape, cell, "data" if background == (DEVICE.type == "cuda") else "data_made_in_loop",
                data_s * 1e3, "torch", torch_ms[cell], data_share=round(share, 4), made_ahead=background)
            print(f"  data{', made ahead in a thread' if background else ''}: {data_s * 1e3:.2f} ms a batch = "
                  f"{share:.2%} of the {cell} step (goal <= 2 %)")
        if not args.no_denormals and shape.name == "smnist" and DEVICE.type == "cpu":
            for cell in ("lstm", "gru"):
                d = denormal_ms(cell, shape, max(2, args.reps // 2))
                row(shape, cell, "denormals_kept", d["kept"], "denormals_flushed", d["flushed"])
                print(f"  denormals, {cell}: flushed {d['flushed']:.0f} ms, kept {d['kept']:.0f} ms: "
                      f"flushing is {d['kept'] / d['flushed']:.1f}x faster")

    for shape in frontier_shapes:
        rows += frontier_rows(shape, args, setup)
    out = Path(args.out) if args.out else default_csv(setup["device"], args.quick)
    write_csv(out, rows)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
