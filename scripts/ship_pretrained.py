"""Export one seed of each benchmark's top model into the package's shipped weights.

    python scripts/ship_pretrained.py --benchmarks adding_t100 copy_t100 smnist ptb_word --tier cpu

For each benchmark: the leaderboard's first model (seeds aggregated), then the seed
of that model with the best VALIDATION value (``zoo.app.release.select_by_validation``:
the test split only reports, it never picks); its record is exported with
``zoo.app.release.export`` into ``zoo/pretrained_weights`` (weights, card, manifest
entry with ``"selected_by": "val"``). A pick that did not beat the trivial baseline
(state failed or diverged) is refused. Stops if the shipped files would pass
``--max_mb`` together.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import sys
from pathlib import Path

from tasks.datafiles import shared_data_dir
from zoo import transport
from zoo.app.boards import aggregate, load_board
from zoo.app.release import export, select_by_validation
from zoo.app.runner import DEFAULT_RECORDS, DEFAULT_WEIGHTS
from zoo.errors import ZooError
from zoo.records import record_path


def top_model_runs(records: list[dict], benchmark: str, tier: str) -> list[dict]:
    """Every seed's record of the board's first model."""
    board = [r for r in records if r["benchmark"] == benchmark and r["tier"] == tier]
    if not board:
        raise ZooError(f"no records for {benchmark} [{tier}]")
    top = aggregate(board)[0]
    return sorted((r for r in board if r["model"] == top["model"]), key=lambda r: r["seed"])


def best_record(records: list[dict], benchmark: str, tier: str) -> dict:
    """The seed of the board's first model to ship: the best by validation, never by test."""
    return select_by_validation(top_model_runs(records, benchmark, tier))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", nargs="+", default=["adding_t100", "copy_t100", "smnist", "ptb_word"])
    parser.add_argument("--tier", default="cpu")
    parser.add_argument("--records", default=DEFAULT_RECORDS)
    parser.add_argument("--weights_dir", default=DEFAULT_WEIGHTS)
    parser.add_argument("--out", default=str(transport.PACKAGE_WEIGHTS))
    parser.add_argument("--max_mb", type=float, default=20.0)
    args = parser.parse_args(argv)
    records = load_board(args.records)
    data_dir = str(shared_data_dir()) if shared_data_dir() else None
    for benchmark in args.benchmarks:
        runs = top_model_runs(records, benchmark, args.tier)
        record = select_by_validation(runs)
        path = record_path(args.records, benchmark, args.tier, record["model"], record["seed"])
        name, card = export(path, args.out, weights_dir=args.weights_dir, data_dir=data_dir, runs=runs,
                            selected_by="val")
        seeds = card["seeds"]
        median = "-" if seeds["median"] is None else f"{seeds['median']:.5g}"
        print(f"{name}: seed {card['seed']} by {card['val']['metric']} {card['val']['value']:.5g}; test "
              f"{card['metric']} {card['metrics'][card['metric']]:.5g} (median {median}, n={seeds['n']}) from "
              f"{card['record']}, {card['state']}, {card['file']['bytes']:,} bytes")
    total = sum(p.stat().st_size for p in Path(args.out).iterdir() if p.is_file())
    print(f"shipped: {total / 2**20:.2f} MB in {args.out}")
    if total > args.max_mb * 2**20:
        print(f"over the {args.max_mb} MB budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
