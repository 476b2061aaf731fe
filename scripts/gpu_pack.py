"""Pack the full tier into short GPU windows: as many full-tier records as fit in one call, resumed on the next.

    python scripts/gpu_pack.py --call_seconds 540                         # one call of a 9-minute window
    python scripts/gpu_pack.py --benchmarks smnist psmnist --call_seconds 540 --state /scratch/pack
    python scripts/gpu_pack.py --tier smoke --call_seconds 60 --state /tmp/pack   # the CPU check (tests)

A GPU lent in windows of a few minutes cannot hold one full-tier run (sMNIST's 50 epochs
take hours). Each call runs the suite (``zoo bench run NAME --tier full``) in a child
process and stops it at ``--call_seconds``; every run checkpoints every 100 steps under
``--state`` and the next call resumes it from there, so a record made across ten calls
is the record one uninterrupted run makes (``zoo/resume.py``). The budget of every run
stays its steps or epochs: the window only decides where a call stops, never where a run
does. Records and weights go under ``--state`` too (copy them into the repository when
they land); each record names the device it ran on (``environment.device_name``).

When every pair of every benchmark has its record, the call ends by measuring the
throughput ratios on this device (``scripts/throughput.py --accelerator cuda``: Lightning
against a plain loop, ELU / leaky ReLU against cuDNN's tanh), once. Exit status: 0 when
everything is done, 3 when the call stopped at its deadline with work left (call again),
2 on bad input, 1 when a suite failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zoo.app.catalogue import BENCHMARKS, TIERS  # noqa: E402
from zoo.app.runner import suite  # noqa: E402
from zoo.errors import ZooError, check_choice  # noqa: E402
from zoo.records import record_path  # noqa: E402

UNFINISHED = 3  # exit status: the call's window ended with pairs left
MARGIN_S = 20  # stop the suite this long before the window's end: a killed child still needs a moment


def missing_pairs(records: Path, name: str, tier: str, models: list[str] | None = None) -> list[tuple[str, int]]:
    """The (model, seed) pairs of ``name`` at ``tier`` that have no record under ``records`` yet."""
    _, pairs = suite(name, tier, models=models)  # the very pairs `zoo bench run` would run
    return [(model, seed) for model, seed in pairs if not record_path(records, name, tier, model, seed).exists()]


def run_suite(name: str, tier: str, state: Path, seconds_left: float, accelerator: str | None,
              models: list[str] | None = None) -> str:
    """One benchmark's suite in a child process, stopped when the window closes: "done", "deadline" or "failed"."""
    command = [sys.executable, "-m", "zoo", "bench", "run", name, "--tier", tier, "--records", str(state / "records"),
               "--weights", str(state / "weights"), "--checkpoints", str(state / "checkpoints"), "--no_progress"]
    if accelerator:
        command += ["--accelerator", accelerator]
    if models:
        command += ["--models", *models]
    child = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
    try:
        code = child.wait(timeout=max(1.0, seconds_left))
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # its checkpoints are whole files (renamed into place)
        child.wait()
        return "deadline"
    return "done" if code == 0 else "failed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), help="default: every benchmark")
    parser.add_argument("--tier", default="full", help=f"one of {', '.join(TIERS)} (default full)")
    parser.add_argument("--call_seconds", type=float, default=540.0,
                        help="the length of this call's window (default 540: a 9-minute call)")
    parser.add_argument("--state", default="runs/gpu_pack",
                        help="records, weights, checkpoints and progress, kept across calls")
    parser.add_argument("--accelerator", help="passed to zoo bench run (default: the tier's)")
    parser.add_argument("--models", nargs="+", help="only these models of each benchmark (default: all of them)")
    parser.add_argument("--no_throughput", action="store_true", help="do not measure throughput at the end")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        check_choice("tier", args.tier, TIERS)
        for name in args.benchmarks:
            check_choice("benchmark", name, BENCHMARKS)
            suite(name, args.tier, models=args.models)  # an unknown model of a benchmark: one error naming its models
        if not args.call_seconds > MARGIN_S:
            raise ZooError(f"--call_seconds must be more than {MARGIN_S} (the margin kept to stop a suite), "
                           f"got {args.call_seconds:g}")
    except ZooError as err:
        parser.error(str(err))
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    deadline = start + args.call_seconds - MARGIN_S
    for name in args.benchmarks:
        left = missing_pairs(state / "records", name, args.tier, args.models)
        if not left:
            continue
        print(f"{name} [{args.tier}]: {len(left)} pair(s) to run", flush=True)
        outcome = run_suite(name, args.tier, state, deadline - time.monotonic(), args.accelerator, args.models)
        if outcome == "failed":
            print(f"{name}: the suite failed; see its output above", file=sys.stderr)
            return 1
        if outcome == "deadline" or time.monotonic() >= deadline:
            remaining = sum(len(missing_pairs(state / "records", b, args.tier, args.models)) for b in args.benchmarks)
            print(f"window over: {remaining} pair(s) left; call again to resume", flush=True)
            return UNFINISHED
    done = state / "throughput.done"
    if not args.no_throughput and not done.exists():
        if time.monotonic() + 60 > deadline:
            print("every record is in; call again to measure the throughput", flush=True)
            return UNFINISHED
        import torch

        wants_gpu = args.accelerator in (None, "auto", "cuda", "gpu")
        accelerator = "cuda" if wants_gpu and torch.cuda.is_available() else "cpu"
        command = [sys.executable, "scripts/throughput.py", "--accelerator", accelerator, "--no_denormals",
                   "--out", str(state / f"throughput-{accelerator}.csv")]
        if args.tier == "smoke":
            command.append("--quick")
        try:
            subprocess.run(command, cwd=ROOT, check=True, timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print("the throughput measurement did not fit this window; call again", flush=True)
            return UNFINISHED
        except subprocess.CalledProcessError as err:
            print(f"scripts/throughput.py failed (exit {err.returncode}); see its output above", file=sys.stderr)
            return 1
        done.write_text(json.dumps({"csv": f"throughput-{accelerator}.csv"}))
    print(f"all done: records under {state / 'records'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
