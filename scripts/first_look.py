"""The README's main job: the seeds' story in a few minutes on a laptop's two cores.

    python scripts/first_look.py                 # two runs at a time, live bars, then the table and figure
    python scripts/first_look.py --jobs 1 --quiet --out /tmp/first_look

On the adding problem at T = 100, a vanilla tanh RNN learns nothing (its gradient from
the answer dies out long before it reaches the two marked numbers), while a well
initialised ReLU RNN (identity recurrence, clipped) and the GRU solve it; the LSTM with
chrono initialisation comes close within the budget. It is the ``first_look`` benchmark of the catalogue
(``zoo bench run first_look`` runs the same), so each run leaves a full run record that
``zoo reproduce`` replays; the board is built from those records like every other.
Started again, it skips the runs it has already recorded.
"""

from __future__ import annotations

import zoo  # noqa: F401  (first: flushes denormals before torch starts its threads)

import argparse
import sys
import time
from pathlib import Path

from zoo.app.boards import aggregate, build, fmt, load_board
from zoo.app.runner import quiet_lightning, run_benchmark
from zoo.errors import ZooError

BENCHMARK = "first_look"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/first_look", help="records, weights and the board (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, the cores split between them (default 2)")
    parser.add_argument("--tier", default="cpu", help="cpu (default), or smoke: ten steps a run, to check it works")
    parser.add_argument("--quiet", action="store_true", help="no progress bars: one line per run, then the table")
    args = parser.parse_args(argv)
    out = Path(args.out)
    start = time.perf_counter()
    quiet_lightning()
    try:
        run_benchmark(BENCHMARK, args.tier, records_dir=out / "records", weights_dir=out / "weights",
                      checkpoints_dir=out / "checkpoints", jobs=args.jobs, progress=not args.quiet)
        records = [r for r in load_board(out / "records") if r["tier"] == args.tier]
        # Records made from this checkout are the user's own: a working tree with changes is fine here.
        written = build(out / "records", out / "board", allow_dirty=True)
    except ZooError as err:
        parser.error(str(err))
    rows = aggregate(records)
    metric = rows[0]["metric"]
    print(f"\n{'model':<26} {'test ' + metric:>10} {'state':<24} {'steps to 0.01':>13} {'seconds':>8}")
    for row in rows:
        runs = [r for r in records if r["id"] in row["records"]]
        states = ", ".join(f"{s} {n}" for s, n in sorted({r["state"]: sum(x["state"] == r["state"] for x in runs)
                                                          for r in runs}.items()))
        value = fmt(row["median"]) if row["median"] is not None else "–"
        print(f"{row['model']:<26} {value:>10} {states:<24} {fmt(row['steps_to_target']):>13} "
              f"{fmt(row['seconds'], 3):>8}")
    stem = f"{BENCHMARK}.{args.tier}"
    table = next(p for p in written if p.name == f"{stem}.md")
    figure = next((p for p in written if p.name == f"{stem}.curves.png"), None)
    print(f"\ntable:  {table}\nfigure: {figure}\nrecords: {out / 'records'}  (zoo reproduce RECORD re-runs one)")
    print(f"{time.perf_counter() - start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
