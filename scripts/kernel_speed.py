"""Where the zoo's own LSTM/GRU kernels beat PyTorch's fused CPU kernels: the evidence behind ``own_kernel_wins``.

    python scripts/kernel_speed.py                 # the grid below, a few minutes on 2 cores
    python scripts/kernel_speed.py --quick         # tiny, seconds: that the script works

For each cell and shape it times the layer alone (no head, no optimizer), forward +
backward of a last-state loss ("train") and forward under no_grad ("eval"), the fused
kernel and ours alternated call by call, and prints the median of the per-pair ratios
(fused time / ours: above 1 ours is faster) next to what ``own_kernel_wins`` picks. A
pick that disagrees with the measurement is flagged; run it on a new machine before
trusting the rule there. The CSV goes to leaderboards/throughput/kernels-<device>-torch<version>.csv.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from zoo.models.sequence_kernels import own_kernel_wins, run_stack

# (batch, seq_len, input, hidden, layers): sMNIST, adding T=200 and T=1000, the word LM, and smaller and wider ones
GRID = [(128, 784, 1, 128, 1), (64, 784, 1, 128, 1), (32, 784, 1, 128, 1), (128, 200, 2, 128, 1),
        (128, 1000, 2, 128, 1), (20, 35, 200, 200, 2), (64, 100, 32, 512, 1), (32, 100, 8, 64, 1), (1, 100, 4, 128, 1)]
QUICK = [(8, 30, 2, 16, 1), (4, 10, 3, 8, 2)]


def paired_speed(module: nn.Module, x: torch.Tensor, train: bool, reps: int) -> tuple[float, float, float]:
    """(fused ms, ours ms, median of fused/ours over pairs)."""
    def call(own: bool) -> float:
        start = time.perf_counter()
        with torch.set_grad_enabled(train):
            out, state = run_stack(module, x) if own else module(x)
            if train:
                h_n = state[0] if isinstance(state, tuple) else state
                h_n[-1].pow(2).sum().backward()
        return time.perf_counter() - start

    call(False), call(True)  # warm-up: allocations, the pool
    fused, ours = [], []
    for _ in range(reps):
        fused.append(call(False))
        ours.append(call(True))
    return (1e3 * statistics.median(fused), 1e3 * statistics.median(ours),
            statistics.median(a / b for a, b in zip(fused, ours)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget_s", type=float, default=4.0, help="about this many seconds a cell, shape and mode")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", help="CSV path")
    args = parser.parse_args(argv)
    grid = QUICK if args.quick else GRID
    from throughput import default_csv, device_name, write_csv  # one place for the label and the CSV

    device = device_name()
    rows, disagreements = [], 0
    print(f"{device}, torch {torch.__version__}; fused time / ours, median of pairs (> 1: ours faster)")
    print(f"{'cell':<5} {'B':>4} {'T':>5} {'I':>4} {'H':>4} {'L':>2} {'mode':<6} {'fused ms':>9} {'ours ms':>9} "
          f"{'speed':>6}  auto picks")
    for cell in ("lstm", "gru"):
        for batch, seq_len, inputs, hidden, layers in grid:
            torch.manual_seed(0)
            module = (nn.LSTM if cell == "lstm" else nn.GRU)(inputs, hidden, num_layers=layers, batch_first=True)
            x = torch.rand(batch, seq_len, inputs)
            for train in (True, False):
                probe = paired_speed(module, x, train, reps=1)
                reps = 1 if args.quick else max(3, min(30, int(args.budget_s / ((probe[0] + probe[1]) / 1e3))))
                fused_ms, own_ms, speed = paired_speed(module, x, train, reps)
                picks_own = own_kernel_wins(cell, batch=batch, seq_len=seq_len, training=train)
                # a pick is wrong only where the measurement is clear of the +-10 % this machine drifts
                wrong = (picks_own and speed < 0.9) or (not picks_own and speed > 1.1)
                disagreements += wrong
                mode = "train" if train else "eval"
                print(f"{cell:<5} {batch:>4} {seq_len:>5} {inputs:>4} {hidden:>4} {layers:>2} {mode:<6} {fused_ms:9.1f} "
                      f"{own_ms:9.1f} {speed:6.2f}  {'zoo' if picks_own else 'fused'}{'  <- disagrees' if wrong else ''}",
                      flush=True)
                rows.append({"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
                             "cell": cell, "batch": batch, "seq_len": seq_len, "input": inputs, "hidden": hidden,
                             "layers": layers, "mode": mode, "fused_ms": round(fused_ms, 2), "zoo_ms": round(own_ms, 2),
                             "pairs": reps, "zoo_speed_vs_fused": round(speed, 3),
                             "auto_picks": "zoo" if picks_own else "fused"})
    print(f"\n{disagreements} pick(s) clearly disagree with the measurement")
    out = Path(args.out) if args.out else default_csv(f"kernels-{device}", args.quick)
    write_csv(out, rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
