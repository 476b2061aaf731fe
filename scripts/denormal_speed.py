"""How much flushing denormal floats speeds up a recurrent training step on this CPU.

    python scripts/denormal_speed.py                  # fused LSTM, sMNIST shapes (B=128, T=784, H=128)
    python scripts/denormal_speed.py --cell gru --seq_len 200

The flag lives in each thread and is copied by threads when they start, so each
setting is measured in a fresh child process that sets it (through
ZOO_FLUSH_DENORMAL) before any torch op; the parent prints both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def measure(cell: str, batch: int, seq_len: int, hidden: int, reps: int) -> dict:
    import zoo  # first: applies ZOO_FLUSH_DENORMAL before torch starts its threads
    import time

    import torch

    from zoo.models.rnn import RNNBackbone, RNNConfig

    torch.manual_seed(0)
    backbone = RNNBackbone(1, RNNConfig(cell=cell, hidden_size=hidden))
    head = torch.nn.Linear(hidden, 10)
    params = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3)
    x = torch.rand(batch, seq_len, 1)
    y = torch.randint(0, 10, (batch,))

    def step() -> float:
        start = time.perf_counter()
        _, state = backbone(x)
        loss = torch.nn.functional.cross_entropy(head(backbone.last_features(state)), y)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return time.perf_counter() - start

    step()  # warm-up
    times = [step() for _ in range(reps)]
    return {"flush": zoo.runtime.FLUSH_DENORMAL, "threads": torch.get_num_threads(), "median_ms": 1000 * statistics.median(times)}


def flushed_and_kept(args: list[str]) -> tuple[dict, dict]:
    """``measure`` with this script's ``args``, once with denormals flushed and once kept, each in a fresh child."""
    results = {}
    for flush in ("1", "0"):
        child = subprocess.run(
            [sys.executable, __file__, "--child", *args],
            env={**os.environ, "ZOO_FLUSH_DENORMAL": flush},
            capture_output=True,
            text=True,
            check=True,
        )
        results[flush] = json.loads(child.stdout.strip().splitlines()[-1])
    return results["1"], results["0"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", default="lstm", choices=["rnn", "lstm", "gru"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seq_len", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.cell, args.batch, args.seq_len, args.hidden, args.reps)))
        return 0
    on, off = flushed_and_kept(argv if argv is not None else sys.argv[1:])
    print(f"{args.cell} B={args.batch} T={args.seq_len} H={args.hidden}, forward+backward+clip+Adam, "
          f"{on['threads']} threads, median of {args.reps}")
    print(f"denormals flushed: {on['median_ms']:9.1f} ms/step")
    print(f"denormals kept:    {off['median_ms']:9.1f} ms/step")
    print(f"speed-up from flushing: {off['median_ms'] / on['median_ms']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
