"""Training-step throughput against plain PyTorch, in one process, with ratios; one CSV a setup.

    python scripts/throughput.py                     # every shape and path (~10 minutes on 2 cores)
    python scripts/throughput.py --shapes smnist --reps 3
    python scripts/throughput.py --quick             # tiny shapes, seconds: checks the script runs

A step is forward + backward + gradient-norm clip (1.0) + Adam, on batches served by a
DataLoader. Each figure is the median over ``--rounds`` x ``--reps`` timed steps, each
round after ``--warmup`` steps, the paths measured in turn. Printed per shape and cell, each as a ratio to a baseline measured in this run:

- ``torch``: a plain PyTorch loop over the zoo's model (the baseline);
- ``lightning``: the same model under Lightning's Trainer with the default diagnostics
  (stability and convergence every step; the gradient and spectral probes run at step
  0 and then every 500 steps, outside the timed window; scripts/diagnostics_cost.py
  prices them); goal: >= 0.95x the baseline's speed;
- ``data``: the task's own train loader alone, as a share of the baseline step; goal <= 2 %;
- vanilla RNNs with ELU or leaky ReLU (a Python loop over time; no fused kernel exists)
  against fused ``nn.RNN(tanh)``; goal: step time <= 1.0x the fused one;
- denormals kept against flushed (each in a child process that sets the flag before any
  torch op, since threads keep the setting they started with);
- GFLOP/s of each path and its share of the attainable matmul rate at the same
  per-time-step GEMM shapes (and of a large GEMM).

The CSV goes to ``leaderboards/throughput/<device>-torch<version>.csv``.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import csv
import logging
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
from torch.utils.data import DataLoader

from zoo.diagnostics import default_diagnostics
from zoo.files import replaced_atomically
from zoo.models.rnn import RNNConfig
from zoo.module import SequenceModel
from zoo.optim import OptimConfig
from zoo.runtime import flush_denormal_active
from zoo.task_spec import TaskSpec

ROOT = Path(__file__).resolve().parents[1]
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


def build(shape: Shape, cell: str) -> SequenceModel:
    torch.manual_seed(0)
    backbone = RNNConfig(hidden_size=shape.hidden, num_layers=shape.layers, **CELLS[cell])
    return SequenceModel(shape.task(), backbone, OptimConfig(name="adam", lr=1e-3))


def loader(batches: list) -> DataLoader:
    return DataLoader(batches, batch_size=None)


def time_torch(shape: Shape, cell: str, warmup: int, reps: int) -> list[float]:
    """A plain PyTorch loop over the zoo's model: the baseline."""
    model = build(shape, cell).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times, last = [], time.perf_counter()
    for x, y in loader(shape.batches(warmup + reps)):
        loss = model.task_loss(model._step_output(x), y)  # _step_output carries an LM's state between batches
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        now = time.perf_counter()
        times.append(now - last)
        last = now
    return times[warmup:]


class StepClock(Callback):
    """Time between consecutive batch ends: the whole step, data fetch and every hook included."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


def time_lightning(shape: Shape, cell: str, warmup: int, reps: int) -> list[float]:
    model = build(shape, cell)
    clock = StepClock()
    trainer = L.Trainer(max_steps=warmup + reps + 1, accelerator="cpu", gradient_clip_val=1.0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0,
                        callbacks=[*default_diagnostics(model.task), clock])
    trainer.fit(model, train_dataloaders=loader(shape.batches(warmup + reps + 1)))
    return clock.times[warmup:]


def time_data(shape: Shape, batches: int) -> float | None:
    """Seconds a batch of the task's own train loader takes to serve, or None without its data."""
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
    it = iter(data.train_dataloader())
    next(it)  # the first batch builds what is built once
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return (time.perf_counter() - start) / batches


def attainable_gflops(shape: Shape, cell: str, reps: int = 200) -> float:
    """GFLOP/s of torch.mm at the per-time-step recurrent GEMM shape, (B, H) @ (H, gates * H)."""
    gates = GATES[CELLS[cell]["cell"]] * shape.hidden
    a, b = torch.rand(shape.batch, shape.hidden), torch.rand(shape.hidden, gates)
    for _ in range(10):
        a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * shape.batch * shape.hidden * gates * reps / (time.perf_counter() - start) / 1e9


def large_gemm_gflops(n: int = 1024, reps: int = 5) -> float:
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def denormal_ms(cell: str, shape: Shape, reps: int) -> dict[str, float]:
    """Median ms per step with denormals flushed and kept, each in a fresh child process (scripts/denormal_speed.py)."""
    from denormal_speed import flushed_and_kept

    flushed, kept = flushed_and_kept(["--cell", cell, "--batch", str(shape.batch), "--seq_len", str(shape.seq_len),
                                      "--hidden", str(shape.hidden), "--reps", str(reps)])
    return {"flushed": flushed["median_ms"], "kept": kept["median_ms"]}


def device_name() -> str:
    from zoo.records import cpu_name

    cpu = "".join(c if c.isalnum() else "_" for c in cpu_name()).strip("_")[:40]
    return f"cpu-{torch.get_num_threads()}t-{cpu}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="torch and Lightning measured in turn, this many times")
    parser.add_argument("--data_batches", type=int, default=50)
    parser.add_argument("--no_denormals", action="store_true", help="skip the (slow) denormals-kept measurement")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few steps: that the script works")
    parser.add_argument("--out", help="CSV path (default leaderboards/throughput/<device>-torch<version>.csv)")
    args = parser.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    shapes = [QUICK[s] for s in QUICK] if args.quick else [SHAPES[s] for s in args.shapes]
    if args.quick:
        args.warmup, args.reps, args.rounds, args.data_batches, args.no_denormals = 1, 2, 1, 3, True
    torch_version = torch.__version__.split("+")[0]
    setup = {"device": device_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
             "flush_denormal": flush_denormal_active()}
    print(f"setup: {setup['device']}, torch {setup['torch']}, {setup['threads']} threads, denormals "
          f"{'flushed' if setup['flush_denormal'] else 'kept'}; median of {args.rounds} x {args.reps} steps")
    peak = large_gemm_gflops()
    print(f"large GEMM (1024^3): {peak:.1f} GFLOP/s")
    rows: list[dict[str, Any]] = []

    def row(shape: Shape, cell: str, path: str, ms: float, baseline: str, base_ms: float, **extra: Any) -> None:
        gflops = shape.flops(cell) / (ms / 1e3) / 1e9
        rows.append({**setup, "shape": shape.name, "batch": shape.batch, "seq_len": shape.seq_len,
                     "hidden": shape.hidden, "layers": shape.layers, "cell": cell, "path": path,
                     "ms_per_step": round(ms, 2), "samples_per_s": round(shape.batch / (ms / 1e3), 1),
                     "tokens_per_s": round(shape.batch * shape.seq_len / (ms / 1e3), 1),
                     "baseline": baseline, "speed_vs_baseline": round(base_ms / ms, 3),
                     "gflops": round(gflops, 2), "share_of_large_gemm": round(gflops / peak, 3), **extra})

    for shape in shapes:
        print(f"\n{shape.name}: batch {shape.batch}, T {shape.seq_len}, {shape.layers} x {shape.hidden}"
              + (f", vocab {shape.vocab}" if shape.vocab else ""))
        print(f"  {'cell':<15} {'torch ms':>9} {'lightning ms':>13} {'L/torch speed':>14} {'GFLOP/s':>8} "
              f"{'of attainable':>14}")
        torch_ms = {}
        for cell in shape.cells:
            torch_times, lightning_times = [], []
            for _ in range(args.rounds):  # alternated, so a drift in the machine's speed hits both alike
                torch_times += time_torch(shape, cell, args.warmup, args.reps)
                lightning_times += time_lightning(shape, cell, args.warmup, args.reps)
            t, lit = 1e3 * statistics.median(torch_times), 1e3 * statistics.median(lightning_times)
            torch_ms[cell] = t
            attainable = attainable_gflops(shape, cell)
            row(shape, cell, "torch", t, "torch", t, attainable_gflops=round(attainable, 2),
                share_of_attainable=round(shape.flops(cell) / (t / 1e3) / 1e9 / attainable, 3))
            row(shape, cell, "lightning", lit, "torch", t)
            print(f"  {cell:<15} {t:9.1f} {lit:13.1f} {t / lit:13.3f}x {shape.flops(cell) / (t / 1e3) / 1e9:8.2f} "
                  f"{shape.flops(cell) / (t / 1e3) / 1e9 / attainable:13.1%}")
        if "rnn_tanh" in torch_ms:
            for cell in ("rnn_leaky_relu", "rnn_elu"):
                if cell in torch_ms:
                    print(f"  {cell} (loop) step time / fused rnn_tanh: {torch_ms[cell] / torch_ms['rnn_tanh']:.2f}x "
                          f"(goal <= 1.0)")
        data_s = time_data(shape, args.data_batches)
        if data_s is None:
            print("  data: no data folder (ZOO_DATA_DIR or ../shared/data): not measured")
        else:
            cell = shape.cells[-1] if not shape.vocab else "lstm"
            share = data_s * 1e3 / torch_ms[cell]
            row(shape, cell, "data", data_s * 1e3, "torch", torch_ms[cell], data_share=round(share, 4))
            print(f"  data: {data_s * 1e3:.2f} ms a batch = {share:.2%} of the {cell} step (goal <= 2 %)")
        if not args.no_denormals and shape.name == "smnist":
            for cell in ("lstm", "gru"):
                d = denormal_ms(cell, shape, max(2, args.reps // 2))
                row(shape, cell, "denormals_kept", d["kept"], "denormals_flushed", d["flushed"])
                print(f"  denormals, {cell}: flushed {d['flushed']:.0f} ms, kept {d['kept']:.0f} ms: "
                      f"flushing is {d['kept'] / d['flushed']:.1f}x faster")

    out = Path(args.out) if args.out else ROOT / "leaderboards" / "throughput" / (
        f"{setup['device']}-torch{torch_version}" + ("-quick" if args.quick else "") + ".csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with replaced_atomically(out) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
