"""What the cpu tier costs: per benchmark and model, budget steps x seconds a step x seeds, in CPU-hours.

    python scripts/cpu_hours.py                            # every benchmark's cpu tier: the table and the total
    python scripts/cpu_hours.py --benchmarks adding_t100 smnist --timing_steps 5
    python scripts/cpu_hours.py --json cpu_hours.json      # the rows too, for a script

A run's cost is its budget in optimizer steps times the CPU-seconds one of its steps takes:

- budget steps: the tier's ``max_steps``, or ``max_epochs`` times the batches of an epoch,
  counted from the task's own train loader (data from ``--data_dir``, default
  ``$ZOO_DATA_DIR`` or ``../shared/data`` beside the checkout). Every run is counted at
  its whole budget; runs that stop at their task's target (the synthetic tasks) take
  fewer, so in this the total is an upper bound.
- CPU-seconds a step, **from records** where the model has committed records of this
  benchmark and tier (``leaderboards/records``): their wall time over their steps, times
  the torch threads they ran with (a CPU-second is a core busy for a second). A record's
  wall time covers validation, test, diagnostics and the length tests as well, so this is
  what a whole run costs a step.
- otherwise **from a short timing**: ``--timing_steps`` training steps of the model
  (forward, backward, the recipe's clipping, the optimizer step) on one batch of the
  task's own shape, after one warm-up step, in this process on 1 thread; the median. It
  leaves out evaluation, so it undercounts a run by the share validation and testing take;
  and it is measured beside whatever else this machine is running then (the load average
  is printed), which overcounts. ``--calibrate`` also times the models that have records,
  and prints each record's rate over its short timing.

The total is CPU-hours, i.e. core-hours: ``zoo bench run NAME --tier cpu --jobs 2`` on a
2-core machine takes about half as many hours of wall-clock time.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads, as every run does)

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from tasks.datafiles import ENV_DATA_DIR, shared_data_dir
from zoo.app.catalogue import BENCHMARKS, check_tier, get_benchmark
from zoo.app.runner import build_data, build_model, quiet_lightning
from zoo.errors import ZooError, check_int
from zoo.records import find_records, read_record
from zoo.train import seed_run

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "leaderboards" / "records"


def record_rates(records_dir: Path, tier: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(benchmark, model) -> CPU-seconds a step over its committed records of ``tier``, and how many there are."""
    seconds: dict[tuple[str, str], float] = defaultdict(float)
    steps: dict[tuple[str, str], int] = defaultdict(int)
    seeds: dict[tuple[str, str], set[int]] = defaultdict(set)
    for path in find_records(records_dir) if records_dir.exists() else []:
        record = read_record(path)
        if record["tier"] != tier or not record.get("steps") or not record.get("seconds"):
            continue
        key = (record["benchmark"], record["model"])
        threads = int(record["environment"].get("cpu_threads") or 1)
        seconds[key] += float(record["seconds"]) * threads
        steps[key] += int(record["steps"])
        seeds[key].add(int(record["seed"]))
    return {key: {"seconds_per_step": seconds[key] / steps[key], "records": len(seeds[key]), "seeds": seeds[key]}
            for key in seconds}


def budget_steps(config: dict[str, Any], data: Any) -> int:
    """The optimizer steps of a whole run: ``max_steps``, else ``max_epochs`` x the train loader's batches an epoch."""
    trainer = config["trainer"]
    if trainer["max_steps"] > 0:
        return int(trainer["max_steps"])
    data.setup("fit")
    batches = len(data.train_dataloader())
    limit = trainer["limit_train_batches"]
    per_epoch = min(batches, limit) if isinstance(limit, int) and not isinstance(limit, bool) else int(batches * limit)
    return int(trainer["max_epochs"]) * max(1, per_epoch)


def timed_seconds_per_step(config: dict[str, Any], data: Any, steps: int) -> float:
    """The median time of ``steps`` training steps on one of the task's batches, after one warm-up step, 1 thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seed_run(0)
        model = build_model(config, data.task_spec).train()
        optimizers = model.configure_optimizers()
        optimizer = optimizers["optimizer"] if isinstance(optimizers, dict) else optimizers
        data.setup("fit")
        x, y = next(iter(data.train_dataloader()))
        clip, algorithm = config["trainer"]["gradient_clip_val"], config["trainer"]["gradient_clip_algorithm"]
        times = []
        for step in range(steps + 1):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = model.task_loss(model(x), y)
            loss.backward()
            if clip:
                if algorithm == "value":
                    torch.nn.utils.clip_grad_value_(model.parameters(), clip)
                else:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            if step:  # the first step builds buffers and warms the caches
                times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        torch.set_num_threads(previous)


def estimate(names: list[str], tier: str, *, data_dir: str | None, records_dir: Path, timing_steps: int,
             progress: bool = True, calibrate: bool = False) -> list[dict[str, Any]]:
    """One row per (benchmark, model) of ``tier``: seeds, budget steps, CPU-seconds a step, where from, CPU-hours.

    ``calibrate``: the models with records are timed too (``timed_seconds_per_step``), to compare the two.
    """
    rates = record_rates(records_dir, tier)
    rows = []
    for name in names:
        bench = get_benchmark(name)
        seeds = bench.tier_seeds(tier)
        data, steps = None, None
        for model in bench.models:
            config = bench.run_config(tier, model)
            if data is None:  # one data module a benchmark: its models share the task and the budget
                data = build_data(config, data_dir)
                steps = budget_steps(config, data)
            rate = rates.get((name, model))
            timed = None
            if rate is None or calibrate:
                if progress:
                    print(f"  timing {name} {model} ...", file=sys.stderr, flush=True)
                timed = timed_seconds_per_step(config, data, timing_steps)
            if rate is not None:
                per_step, source = rate["seconds_per_step"], f"records ({rate['records']})"
                missing = sum(seed not in rate["seeds"] for seed in seeds)
            else:
                per_step, source, missing = timed, f"timed ({timing_steps} steps)", len(seeds)
            rows.append({"benchmark": name, "model": model, "seeds": len(seeds), "budget_steps": steps,
                         "seconds_per_step": per_step, "source": source, "from_records": rate is not None,
                         "timed_seconds_per_step": timed,
                         "cpu_hours": len(seeds) * steps * per_step / 3600,
                         "cpu_hours_to_run": missing * steps * per_step / 3600})
    return rows


def calibration(rows: list[dict[str, Any]]) -> str:
    """Each record-rated row that was timed too: the record's CPU-seconds a step over the short timing's."""
    pairs = [row for row in rows if row["from_records"] and row["timed_seconds_per_step"]]
    if not pairs:
        return ""
    lines = ["Record rate / short timing (evaluation, diagnostics and the records' own thread counts and loads "
             "against training steps alone now):"]
    ratios = []
    for row in pairs:
        ratios.append(row["seconds_per_step"] / row["timed_seconds_per_step"])
        lines.append(f"  {row['benchmark']:<15} {row['model']:<28} {row['seconds_per_step']:.3f} / "
                     f"{row['timed_seconds_per_step']:.3f} s = {ratios[-1]:.2f}")
    lines.append(f"  median {statistics.median(ratios):.2f} over {len(ratios)} models")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'benchmark':<15} {'model':<28} {'seeds':>5} {'budget steps':>12} {'s/step':>8} {'from':<17} "
             f"{'CPU-h':>8}"]
    for name in dict.fromkeys(row["benchmark"] for row in rows):
        mine = [row for row in rows if row["benchmark"] == name]
        for row in mine:
            lines.append(f"{row['benchmark']:<15} {row['model']:<28} {row['seeds']:>5} {row['budget_steps']:>12,} "
                         f"{row['seconds_per_step']:>8.3f} {row['source']:<17} {row['cpu_hours']:>8.2f}")
        lines.append(f"{name + ' in all':<44} {'':>12} {'':>8} {'':<17} {sum(r['cpu_hours'] for r in mine):>8.2f}")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]], tier: str) -> str:
    total = sum(row["cpu_hours"] for row in rows)
    recorded = sum(row["cpu_hours"] for row in rows if row["from_records"])
    runs = sum(row["seeds"] for row in rows)
    to_run = sum(row["cpu_hours_to_run"] for row in rows)
    return (f"{tier} tier: {runs} runs of {len(rows)} (benchmark, model) pairs, {total:,.1f} CPU-hours in all "
            f"({recorded:,.1f} at rates measured from committed records, {total - recorded:,.1f} at short timings); "
            f"{to_run:,.1f} CPU-hours for the runs without a committed record. Every run is counted at its whole "
            "budget.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), help="default: every benchmark")
    parser.add_argument("--tier", default="cpu", help="default %(default)s")
    parser.add_argument("--timing_steps", type=int, default=3, help="timed steps a model without records (default 3)")
    parser.add_argument("--data_dir", default=os.environ.get(ENV_DATA_DIR) or shared_data_dir(),
                        help=f"the data sets' folder (default ${ENV_DATA_DIR} or ../shared/data)")
    parser.add_argument("--records", default=str(RECORDS), help="committed records (default leaderboards/records)")
    parser.add_argument("--json", help="also write the rows and the total here")
    parser.add_argument("--calibrate", action="store_true",
                        help="also time the models that have records, and print record rate / short timing")
    parser.add_argument("--quiet", action="store_true", help="no line per timed model on stderr")
    args = parser.parse_args(argv)
    quiet_lightning()
    try:
        check_tier(args.tier)
        names = [get_benchmark(name).name for name in args.benchmarks]
        check_int("--timing_steps", args.timing_steps, low=1)
        load = os.getloadavg()[0]
        rows = estimate(names, args.tier, data_dir=None if args.data_dir is None else str(args.data_dir),
                        records_dir=Path(args.records), timing_steps=args.timing_steps, progress=not args.quiet,
                        calibrate=args.calibrate)
    except ZooError as err:
        parser.error(str(err))
    print(table(rows))
    print()
    print(summary(rows, args.tier))
    timed = [row for row in rows if not row["from_records"]]
    if timed:
        print(f"Short timings: 1 thread, training steps only (no evaluation); load average {load:.2f} when they "
              f"began and {os.getloadavg()[0]:.2f} when they ended, on {os.cpu_count()} cores.")
    if args.calibrate:
        print(calibration(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"tier": args.tier, "rows": rows,
                                               "cpu_hours": sum(r["cpu_hours"] for r in rows),
                                               "load_average": load}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
